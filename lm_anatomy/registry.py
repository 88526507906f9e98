"""Name → object registries, so that configs choose models, tasks and corpora by name."""
from typing import Callable, Generic, TypeVar

from lm_anatomy.errors import ConfigError

T = TypeVar('T')


class Registry(Generic[T]):
  """A dict of named entries with a decorator to add to it and a clear error for unknown names."""

  def __init__(self, kind: str):
    self.kind = kind
    self._entries: dict[str, T] = {}

  def register(self, name: str) -> Callable[[T], T]:
    def add(obj: T) -> T:
      if name in self._entries:
        raise ValueError(f'{self.kind} {name!r} is registered twice')
      self._entries[name] = obj
      return obj
    return add

  def get(self, name: str, key: str | None = None) -> T:
    if name not in self._entries:
      where = f'{key}={name!r}' if key else repr(name)
      raise ConfigError(f'unknown {self.kind} {where}; choose one of {sorted(self._entries)}')
    return self._entries[name]

  def names(self) -> list[str]:
    return sorted(self._entries)

  def __contains__(self, name: str) -> bool:
    return name in self._entries


MODELS: Registry = Registry('model')
TASKS: Registry = Registry('task')
CORPORA: Registry = Registry('corpus')
