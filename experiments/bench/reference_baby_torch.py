"""The PyTorch reference for the baby GPT: nanoGPT's CPU "baby" setting, re-implemented in PyTorch.

  pip install torch   # CPU build; not a dependency of lm_anatomy
  python experiments/bench/reference_baby_torch.py [--seed=1337] [--steps=2000]
      [--data_seed=S] [--windows=torch|lm_anatomy]

Runs the same model, optimiser, schedule and data as `experiments/configs/shakespeare_char.py:baby`
the way nanoGPT's `train.py` does (torch.randint windows, its warmup (s+1)/(W+1) then cosine, AdamW
with decay on matrices, clipping at 1, float32 on CPU) and prints ms/iter, tokens/s, the wall time of
the whole script and the val loss over the whole val split in non-overlapping blocks, as
`experiments/bench/train_throughput.py` does for ours. Run the two back to back to compare them on the
same machine at the same time: a shared VM's speed moves by ±15% from one minute to the next.

To separate the two sources of seed-to-seed spread, `--data_seed=S` keeps the initial weights of `--seed`
and reseeds only the stream of training windows (by default it continues the generator after the init,
as nanoGPT's does: the same scheme, not nanoGPT's exact batches, since nanoGPT also draws its evaluation
batches from that generator and initialises through an lm_head), and `--windows=lm_anatomy` trains on the windows that our engine draws for seed S (`--data_seed`,
else `--seed`), batch for batch.

The model (d = 128, 4 layers, 4 heads, block 64, no biases):
  h⁰ = E[x] + P;  h ← h + Attn(LN(h));  h ← h + W_2 GELU(W_1 LN(h));  logits = LN(h) Eᵀ
"""
import argparse
import math
import os
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

N_LAYER, N_HEAD, N_EMBD, BLOCK, BATCH = 4, 4, 128, 64, 12


class LayerNorm(nn.Module):
  """LN(x) = γ ⊙ (x − μ)/√(σ² + 1e-5), no bias."""

  def __init__(self, d):
    super().__init__()
    self.weight = nn.Parameter(torch.ones(d))

  def forward(self, x):
    return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)


class Block(nn.Module):
  def __init__(self):
    super().__init__()
    d = N_EMBD
    self.ln_1, self.ln_2 = LayerNorm(d), LayerNorm(d)
    self.c_attn = nn.Linear(d, 3 * d, bias=False)
    self.attn_proj = nn.Linear(d, d, bias=False)
    self.c_fc = nn.Linear(d, 4 * d, bias=False)
    self.mlp_proj = nn.Linear(4 * d, d, bias=False)

  def forward(self, x):
    b, t, d = x.shape
    q, k, v = self.c_attn(self.ln_1(x)).split(d, 2)
    q, k, v = (z.view(b, t, N_HEAD, d // N_HEAD).transpose(1, 2) for z in (q, k, v))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
    x = x + self.attn_proj(y)
    return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
  def __init__(self, vocab):
    super().__init__()
    self.wte = nn.Embedding(vocab, N_EMBD)
    self.wpe = nn.Embedding(BLOCK, N_EMBD)
    self.h = nn.ModuleList([Block() for _ in range(N_LAYER)])
    self.ln_f = LayerNorm(N_EMBD)
    for m in self.modules():  # GPT-2's initialisation, as nanoGPT
      if isinstance(m, (nn.Linear, nn.Embedding)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    for name, p in self.named_parameters():
      if name.endswith('_proj.weight'):
        nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * N_LAYER))

  def forward(self, idx):
    x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
    for block in self.h:
      x = block(x)
    return self.ln_f(x) @ self.wte.weight.T


def lr_at(it, steps, warmup=100, lr=1e-3, min_lr=1e-4):
  if it < warmup:
    return lr * (it + 1) / (warmup + 1)
  ratio = (it - warmup) / (steps - warmup)
  return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument('--seed', type=int, default=1337)
  ap.add_argument('--steps', type=int, default=2000)
  ap.add_argument('--data_seed', type=int, default=None, help='reseed the training windows only')
  ap.add_argument('--windows', choices=['torch', 'lm_anatomy'], default='torch',
                  help="torch.randint windows (nanoGPT's), or our engine's for the same seed")
  ap.add_argument('--data', default=None,
                  help="tinyshakespeare's input.txt (default: lm_anatomy's lookup: $LM_ANATOMY_DATA, the cache, the URL)")
  args = ap.parse_args()
  if args.data is None:
    local = os.path.join(os.environ.get('LM_ANATOMY_DATA', ''), 'tinyshakespeare', 'input.txt')
    if os.environ.get('LM_ANATOMY_DATA') and os.path.exists(local):
      args.data = local   # without importing lm_anatomy (and JAX) into the timed run
    else:
      from lm_anatomy.data import corpora
      from lm_anatomy.registry import CORPORA
      args.data = str(corpora.locate(CORPORA.get('tinyshakespeare', 'data.corpus').files['text']))
  torch.manual_seed(args.seed)
  text = open(args.data).read()
  chars = sorted(set(text))
  stoi = {c: i for i, c in enumerate(chars)}
  ids = np.array([stoi[c] for c in text], np.int64)
  n = int(len(ids) * 0.9)
  train, val = torch.from_numpy(ids[:n]), ids[n:]
  model = GPT(len(chars))
  decay = [p for p in model.parameters() if p.dim() >= 2]
  no_decay = [p for p in model.parameters() if p.dim() < 2]
  opt = torch.optim.AdamW([{'params': decay, 'weight_decay': 0.1}, {'params': no_decay, 'weight_decay': 0.0}],
                          lr=1e-3, betas=(0.9, 0.99))
  if args.data_seed is not None:
    torch.manual_seed(args.data_seed)
  if args.windows == 'lm_anatomy':
    from lm_anatomy import data as data_lib, sweep
    config = sweep.experiment_config('shakespeare_char', 'baby')
    config.seed = args.seed if args.data_seed is None else args.data_seed
    ours = data_lib.build(config)
    assert ours.tokenizer.chars == chars and len(ours.splits['train']) == n
  t_train = time.perf_counter()
  for it in range(args.steps):
    for group in opt.param_groups:
      group['lr'] = lr_at(it, args.steps)
    if args.windows == 'lm_anatomy':
      starts = torch.from_numpy(ours.train_starts(it, BATCH))
    else:
      starts = torch.randint(len(train) - BLOCK, (BATCH,))
    x = torch.stack([train[i:i + BLOCK] for i in starts])
    y = torch.stack([train[i + 1:i + 1 + BLOCK] for i in starts])
    loss = F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
  train_sec = time.perf_counter() - t_train
  model.eval()
  padded = torch.from_numpy(np.concatenate([val, np.zeros(BLOCK + 1, np.int64)]))
  starts = list(range(0, len(val) - 1, BLOCK))
  total = count = 0.0
  with torch.no_grad():
    for b in range(0, len(starts), 64):
      chunk = starts[b:b + 64]
      x = torch.stack([padded[s:s + BLOCK] for s in chunk])
      y = torch.stack([padded[s + 1:s + 1 + BLOCK] for s in chunk])
      w = torch.stack([(torch.arange(BLOCK) + s + 1 < len(val)).float() for s in chunk])
      per_token = F.cross_entropy(model(x).view(-1, len(chars)), y.view(-1), reduction='none').view(len(chunk), BLOCK)
      total += float((per_token * w).sum())
      count += float(w.sum())
  ms = 1000 * train_sec / args.steps
  print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, seed {args.seed}, '
        f'windows: {args.windows}, data seed {args.seed if args.data_seed is None else args.data_seed}')
  print(f'whole run ({args.steps} steps, start-up included): {time.perf_counter() - T0:.1f} s')
  print(f'training: {ms:.2f} ms/iter, {BATCH * BLOCK * 1000 / ms:,.0f} tokens/s')
  print(f'final val loss (whole val split): {total / count:.4f}')


if __name__ == '__main__':
  main()
