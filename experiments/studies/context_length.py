"""Eval loss against context length: what each architecture does with more of the past.

Train the models first (FFNN, RNN, GRU, LSTM, GPT on tiny Shakespeare):
  python -m lm_anatomy.sweep --sweep=experiments/sweeps/shakespeare_family.py --workdir=runs/sweeps/shakespeare_family
then
  python experiments/studies/context_length.py --runs=runs/sweeps/shakespeare_family --out=runs/studies/context_length

At the same evenly spaced positions p of the val text, each model predicts x_{p+1} from exactly c tokens
x_{p−c+1} … x_p, for c = 1, 2, 4, … . A model cannot use more than its context limit (the FFNN its
window, the GPT its block size): past it, its loss stays at the limit's value (dotted). The recurrent
models have no limit; their dashed line is stateful evaluation, where the state is carried over the whole
val text from its first character, so x_{p+1} is predicted from everything before it.
Writes context_length.png, context_length.json and context_length.md into --out.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
from absl import flags

from lm_anatomy import cli

_RUNS = flags.DEFINE_string('runs', 'runs/sweeps/shakespeare_family', 'Folder of trained runs (one per subfolder).')
_OUT = flags.DEFINE_string('out', 'runs/studies/context_length', 'Where the plot and numbers go.')
_CONTEXTS = flags.DEFINE_list('contexts', ['1', '2', '4', '8', '16', '32', '64', '128', '256', '512', '1024'],
                              'Context lengths c.')
_POSITIONS = flags.DEFINE_integer('positions', 2000, 'Scored positions of the val text.')
_CHUNK = flags.DEFINE_integer('chunk_len', 512, 'Chunk length of stateful evaluation.')

ORDER = ('ffnn', 'rnn', 'gru', 'lstm', 'gpt')


def study(run_dir: pathlib.Path, contexts: list[int], n_positions: int, chunk_len: int) -> dict:
  import lm_anatomy
  from lm_anatomy import analysis, data
  run = lm_anatomy.restore(run_dir)
  from lm_anatomy.errors import ConfigError
  val = data.build(run.config).splits['val']
  if max(contexts) > len(val) - 1 or min(contexts) < 1 or n_positions < 1:
    raise ConfigError(f'--contexts must lie in [1, {len(val) - 1}] (the val split has {len(val)} tokens) and '
                      f'--positions must be >= 1; got contexts {min(contexts)} … {max(contexts)}, positions {n_positions}')
  positions = np.linspace(max(contexts) - 1, len(val) - 2, n_positions).astype(np.int64)
  limit = run.model.context_limit()
  out = {'model': run.config.model.name, 'step': run.step, 'context_limit': limit, 'contexts': contexts,
         'loss': [], 'capped': []}
  for c in contexts:
    used = min(c, limit) if limit else c  # past its limit a model sees exactly its limit
    out['loss'].append(float(analysis.window_losses(run.model, run.params, val, positions, used).mean()))
    out['capped'].append(used < c)
  if analysis.has_carry(run.model):
    ell = analysis.stateful_losses(run.model, run.params, val, chunk_len)
    out['stateful_loss'] = float(ell[positions].mean())        # the same positions, the whole past
    out['stateful_loss_all'] = float(ell.mean())               # every val token
  return out


def plot(results: list[dict], path: pathlib.Path) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7.5, 5))
  for i, r in enumerate(results):
    color = f'C{i}'
    c, loss, capped = np.array(r['contexts']), np.array(r['loss']), np.array(r['capped'])
    free = ~capped
    label = r['model'] + (f' (limit {r["context_limit"]})' if r['context_limit'] else '')
    ax.plot(c[free], loss[free], marker='o', color=color, label=label)
    if capped.any():
      first = max(int(np.argmax(capped)) - 1, 0)  # from the last free point, if there is one
      ax.plot(c[first:], loss[first:], linestyle=':', marker='o' if first == 0 else None, color=color)
    if 'stateful_loss' in r:
      ax.axhline(r['stateful_loss'], linestyle='--', color=color, linewidth=1,
                 label=f'{r["model"]}, state carried over the whole text')
  ax.set_xscale('log', base=2)
  ax.set_xlabel('context length c (tokens seen before the predicted one)')
  ax.set_ylabel('val loss (nats per character)')
  ax.set_title('tiny Shakespeare: loss against context length')
  ax.grid(alpha=0.3)
  ax.legend(fontsize='small')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def table(results: list[dict]) -> str:
  contexts = results[0]['contexts']
  lines = ['| model | ' + ' | '.join(f'c={c}' for c in contexts) + ' | stateful |',
           '| --- |' + ' --- |' * (len(contexts) + 1)]
  for r in results:
    cells = [f'{l:.4f}' + ('*' if cap else '') for l, cap in zip(r['loss'], r['capped'])]
    lines.append(f'| {r["model"]} | ' + ' | '.join(cells) + f' | {r.get("stateful_loss", float("nan")):.4f} |')
  return '\n'.join(lines) + '\n\n(* = capped at the model\'s context limit)\n'


def main(argv):
  del argv
  from lm_anatomy.errors import ConfigError
  runs = pathlib.Path(_RUNS.value)
  dirs = sorted((d for d in runs.iterdir() if (d / 'config.json').exists()),
                key=lambda d: (ORDER.index(d.name) if d.name in ORDER else len(ORDER), d.name)) if runs.is_dir() else []
  if not dirs:
    raise ConfigError(f'no runs in {runs}; train them first (see this script\'s docstring)')
  contexts = sorted(int(c) for c in _CONTEXTS.value)
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  results = []
  for d in dirs:
    r = study(d, contexts, _POSITIONS.value, _CHUNK.value)
    print(f'{d.name}: ' + ', '.join(f'c={c} {l:.4f}' for c, l in zip(contexts, r['loss']))
          + (f', stateful {r["stateful_loss"]:.4f} (all tokens {r["stateful_loss_all"]:.4f})' if 'stateful_loss' in r else ''))
    results.append(r)
  (out / 'context_length.json').write_text(json.dumps(results, indent=2))
  (out / 'context_length.md').write_text(table(results))
  plot(results, out / 'context_length.png')
  print(f'wrote {out}/context_length.png, .json, .md')


if __name__ == '__main__':
  cli.run(main)
