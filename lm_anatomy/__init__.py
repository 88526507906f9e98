"""lm_anatomy: one JAX/Flax engine for the whole family of neural language models."""
from lm_anatomy.api import Pretrained, from_pretrained, restore  # noqa: F401

__version__ = '0.1.0'
