"""The default tiny-Shakespeare GPT (6 × 384, block 256, batch 64, 5,000 steps, dropout 0.2) at four seeds.

A GPU job (each run took 129-133 s on an H200 in session 21; on a 2-core CPU it would take about 20 hours):

  python -m lm_anatomy.sweep --sweep=experiments/sweeps/shakespeare_char_seeds.py --workdir=runs/sweeps/shakespeare_char_seeds

The config overfits after about 2,000 steps, as nanoGPT's does, so the figure to compare is each run's best
val loss (`best_val_loss`, the checkpoint in its `best/` folder), against nanoGPT's 1.4697 (its README, one
run, the best of its periodic estimates). Issue 2's bar is ≤ 1.47; the seeds show how often one run meets it.
"""


def get_sweep():
  return dict(
      config='experiments/configs/shakespeare_char.py',
      axes={'seed': [1337, 1, 2, 3]},
      points=[{'tags': {'nanogpt_best_val_loss': 1.4697}}],
      columns=['name', 'best_step', 'best_val_loss', 'nanogpt_best_val_loss', 'val_loss', 'train_loss',
               'tokens_per_sec', 'elapsed_sec', 'wall_sec'],
      metric='best_val_loss',
  )
