"""One of two OS processes training together through jax.distributed on the CPU backend.

  python tests/multiprocess_check.py PROCESS_ID PORT WORKDIR STOP_AFTER DATA_DIR [MODE]

Both processes run the same config in `parallel.mode='data'`; each builds only its half of every
global batch and Orbax writes the checkpoints collectively. tests/test_multiprocess.py launches the
pair twice (stop at 10, then resume to 20) and compares with a single-process run.
"""
import os
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent))


def main(process_id: int, port: int, workdir: str, stop_after: int, data_dir: str, mode: str = 'data'):
  os.environ['LM_ANATOMY_DATA'] = data_dir
  from lm_anatomy import engine
  from conftest import load_config
  c = load_config('shakespeare_char.py', 'tiny')
  c.model.n_layer, c.model.n_head, c.model.n_embd, c.model.block_size = 2, 2, 32, 16
  c.batch_size, c.eval_batch_size, c.eval_batches = 6, 6, 2  # 3 rows a process: 2 divides it, 2² does not
  c.steps, c.eval_every, c.checkpoint_every, c.steps_per_dispatch = 20, 10, 10, 5
  c.parallel.mode = mode
  c.parallel.distributed = True
  c.parallel.coordinator_address = f'127.0.0.1:{port}'
  c.parallel.num_processes = 2
  c.parallel.process_id = process_id
  engine.train(c, workdir, stop_after=stop_after or None, progress=False)
  import jax
  print(f'process {jax.process_index()} of {jax.process_count()}, {jax.device_count()} devices: done')


if __name__ == '__main__':
  main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5], *sys.argv[6:])
