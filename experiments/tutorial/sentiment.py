"""Sentiment with one neuron: logistic regression and an MLP on SST-2 bags of words, with baselines.

Trains, with the engine, experiments/configs/sst2_bow.py (logistic regression, one neuron
p(positive | x) = σ(xw + b)) and sst2_bow.py:mlp, then fits scikit-learn's LogisticRegression(C=1) and
LinearSVC(C=1) on the very same binary bag-of-words features. The engine's λ = 1/N makes its
objective scikit-learn's LogisticRegression(C=1) objective divided by N, so both reach the same optimum;
the script prints both objective values. Prints dev (val) accuracies and the most positive and most
negative words by weight w_j, and writes results.json.

  python experiments/tutorial/sentiment.py --workdir=runs/tutorial/sentiment
"""
from __future__ import annotations

import argparse
import json
import pathlib

from lm_anatomy import sweep, tutorial


def main(workdir: pathlib.Path, top: int = 15) -> dict:
  workdir.mkdir(parents=True, exist_ok=True)
  logistic = tutorial.Classifier.train(sweep.experiment_config('sst2_bow', ''), workdir / 'logistic')
  mlp = tutorial.Classifier.train(sweep.experiment_config('sst2_bow', 'mlp'), workdir / 'mlp')
  train, val = logistic.dataset.features('train'), logistic.dataset.features('val')
  baselines = tutorial.sklearn_baselines(train, val, C=1.0)
  sk_objective, lam = tutorial.logistic_objective_sklearn(train, C=1.0)
  results = {
      'engine logistic regression (log_linear)': logistic.accuracy('val'),
      'engine MLP (64 ReLU, dropout 0.5)': mlp.accuracy('val'),
      'scikit-learn LogisticRegression(C=1)': baselines['LogisticRegression'],
      'scikit-learn LinearSVC(C=1)': baselines['LinearSVC'],
  }
  print(f'SST-2 dev accuracy, {logistic.dataset.info["input_dim"]} binary bag-of-words features:')
  for name, acc in results.items():
    print(f'  {name:<42} {100 * acc:.2f}%')
  ours = logistic.objective('train')
  print(f'train objective (mean cross-entropy + λ·½‖w‖², λ = {lam:.3g}): engine {ours:.5f}, '
        f'scikit-learn {sk_objective:.5f}')
  positive, negative = tutorial.top_words(logistic, top)
  print('most positive words: ' + ', '.join(f'{w} ({v:+.2f})' for w, v in positive))
  print('most negative words: ' + ', '.join(f'{w} ({v:+.2f})' for w, v in negative))
  out = {'dev_accuracy': results, 'objective': {'engine': ours, 'sklearn': sk_objective, 'l2': lam},
         'most_positive': positive, 'most_negative': negative}
  (workdir / 'results.json').write_text(json.dumps(out, indent=2))
  return out


if __name__ == '__main__':
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='runs/tutorial/sentiment', type=pathlib.Path)
  parser.add_argument('--top', default=15, type=int, help='how many words to print each way')
  args = parser.parse_args()
  main(args.workdir, args.top)
