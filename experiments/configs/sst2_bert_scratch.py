"""Fine-tunes our own from-scratch BERT (experiments/configs/bert_pretrain.py) for SST-2 sentiment.

The pretrain → fine-tune workflow, end to end:
  python -m lm_anatomy.main --config=experiments/configs/bert_pretrain.py --workdir=runs/bert_pretrain
  python -m lm_anatomy.main --config=experiments/configs/sst2_bert_scratch.py --workdir=runs/sst2_bert_scratch
  python -m lm_anatomy.evaluate --workdir=runs/sst2_bert_scratch --file=$LM_ANATOMY_DATA/sst2/stsa.binary.dev --best

`init_from` names the pretraining run: its best checkpoint gives the encoder and pooler weights (the
masked-LM and NSP heads are dropped, the classifier starts fresh) and its saved BPE tokenizer encodes
the sentences. Override it with --config.init_from=PATH. The recipe is MiniLM's (sst2_minilm.py):
batch 32, max length 64, AdamW, 10% warmup then linear decay, 3 epochs, best dev loss kept; the
learning rate is higher (3e-4) for this small model. `:noinit` trains the same model from random
weights, the baseline that shows what pretraining brought.
"""
from lm_anatomy.config import base, complete

TRAIN_SENTENCES = 6920


def get_config(arg: str = ''):
  config = base()
  config.seed = 0
  config.init_from = 'runs/bert_pretrain'
  config.data.corpus = 'sst2_text'
  config.data.tokenizer = 'bpe'
  config.data.seq_len = 64
  config.data.pad_to_multiple = 8
  config.data.group_by_length = 50   # batches of similar length (mega-batches of 50 batches sorted by length)
  config.task.name = 'classify'
  m = config.model
  m.name = 'bert'
  m.head = 'classify'
  m.n_layer, m.n_head, m.n_embd, m.mlp_ratio, m.block_size = 2, 2, 128, 4, 64
  m.dropout, m.activation, m.layer_norm_eps = 0.1, 'gelu', 1e-12
  config.batch_size = 32
  config.steps = 3 * -(-TRAIN_SENTENCES // config.batch_size)   # 651
  config.eval_every = 217             # once an epoch
  config.eval_batch_size = 128
  config.checkpoint_every = 217
  config.keep_checkpoints = 1
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.schedule = 'adamw', 3e-4, 0.0, 'linear'
  o.warmup_steps = round(0.1 * config.steps)
  o.b1, o.b2, o.eps, o.weight_decay, o.grad_clip = 0.9, 0.999, 1e-8, 0.01, 1.0
  if arg == 'noinit':
    config.init_from = ''
    config.data.tokenizer_vocab_size = 4000  # the same BPE as pretraining, trained afresh on the same text
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; choose noinit')
  return complete(config)
