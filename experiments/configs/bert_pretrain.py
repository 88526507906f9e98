"""A small BERT pretrained from scratch on CPU: masked LM + next-sentence prediction on SST-2 sentences.

  python -m lm_anatomy.main --config=experiments/configs/bert_pretrain.py --workdir=runs/bert_pretrain

Data (`sst2_mlm`): the 6,920 SST-2 training sentences without their labels; val = the 872 dev
sentences. A byte-level BPE of 4,000 ids is trained on the training sentences and saved beside the run.
Each example cuts a sentence in two: A, then either the rest of it or the tail of another sentence
(NSP, 50% random); 15% of the tokens are predicted (80% [MASK], 10% random, 10% kept).
Model: 2 post-LN layers, 2 heads, d = 128, 64 positions (BERT-Tiny's size), sequences of up to 48 tokens,
batch 32, 800 steps (sized for a busy 2-core CPU).
`metrics.jsonl` reports val_accuracy (masked tokens) and val_nsp_accuracy; `data_info.json` holds the
unigram baseline on the same masked val tokens (val_unigram_accuracy, val_unigram_loss).

Then fine-tune it for sentiment: experiments/configs/sst2_bert_scratch.py.
`:tiny` is a seconds-long smoke run.
"""
from lm_anatomy.config import base, complete


def get_config(arg: str = ''):
  config = base()
  config.seed = 0
  config.data.corpus = 'sst2_mlm'
  config.data.tokenizer = 'bpe'
  config.data.tokenizer_vocab_size = 4000
  config.data.seq_len = 48
  config.data.mask_prob = 0.15
  config.data.next_sentence = True
  config.data.pad_to_multiple = 8
  config.task.name = 'masked_lm'
  m = config.model
  m.name = 'bert'
  m.head = 'pretrain'
  m.n_layer, m.n_head, m.n_embd, m.mlp_ratio, m.block_size = 2, 2, 128, 4, 64
  m.dropout, m.activation, m.layer_norm_eps = 0.1, 'gelu', 1e-12
  config.batch_size = 32
  config.steps = 800
  config.eval_every = 200
  config.eval_batch_size = 128
  config.checkpoint_every = 200
  config.keep_checkpoints = 1
  o = config.optimizer
  o.name, o.lr, o.min_lr, o.schedule, o.warmup_steps = 'adamw', 1e-3, 1e-5, 'linear', 80
  o.b1, o.b2, o.eps, o.weight_decay, o.grad_clip = 0.9, 0.999, 1e-6, 0.01, 1.0
  if arg == 'tiny':
    m.n_layer, m.n_head, m.n_embd = 2, 2, 32
    config.data.tokenizer_vocab_size = 600
    config.batch_size, config.steps, config.eval_every, config.checkpoint_every = 16, 20, 10, 10
    config.eval_batches = 2
    config.optimizer.warmup_steps = 5
  elif arg:
    raise ValueError(f'unknown variant {arg!r}; choose tiny')
  return complete(config)
