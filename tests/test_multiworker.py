"""Two `tinyfaces-train --distribute=multiworker` processes on 127.0.0.1 (TF_CONFIG,
MultiWorkerMirroredStrategy, demo configuration): killed after the chief's first checkpoint and
started again, they resume from it, end with identical trainable weights and optimizer
state, and only the chief writes into
--out_dir (the other worker's saves go to a temporary directory that is removed)."""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

# Runs the real command line; only Task.train is wrapped to dump each worker's final weights.
WORKER = """
import sys
import numpy as np
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.cli import train as train_cli

dump, sys.argv = sys.argv[1], sys.argv[:1] + sys.argv[2:]
train = task_lib.Task.train

def train_and_dump(self, *args, **kwargs):
  result, gan = train(self, *args, **kwargs)
  # Batch-norm moving statistics are each worker's own (BUILD_NOTES: multi-worker training);
  # weights and optimizer state are all-reduced and must agree.
  variables = (gan.generator.trainable_weights + gan.discriminator.trainable_weights
               + gan.g_optimizer.variables + gan.d_optimizer.variables)
  np.savez(dump, *[v.numpy() for v in variables])
  return result, gan

task_lib.Task.train = train_and_dump
train_cli.run()
"""

STEPS = 12


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _start_workers(tmp_path, out_dir, run):
  ports = _free_ports(2)
  cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
  procs = []
  for index in range(2):
    env = dict(os.environ, TMPDIR=str(tmp_path / f"{run}-tmp{index}"), CUDA_VISIBLE_DEVICES="",
               TF_CPP_MIN_LOG_LEVEL="3",
               TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                                  "index": index}}))
    os.makedirs(env["TMPDIR"], exist_ok=True)
    log = open(tmp_path / f"{run}-worker{index}.log", "w")
    procs.append(subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path / f"weights{index}.npz"),
         "--config=demo", "--synthetic", "--distribute=multiworker", f"--out_dir={out_dir}",
         "--config.train.batch_size=8", f"--config.train.steps={STEPS}",
         "--config.train.pretrain_steps=0", "--config.train.checkpoint_every=2",
         "--config.train.precision=float32"],
        stdout=log, stderr=subprocess.STDOUT, env=env))
  return procs


def _log(tmp_path, run):
  return "\n".join((tmp_path / f"{run}-worker{i}.log").read_text()[-2000:] for i in range(2))


def test_two_workers_resume_from_the_chief_and_agree(tmp_path):
  out_dir = tmp_path / "run"
  procs = _start_workers(tmp_path, out_dir, "first")
  state = out_dir / "checkpoints" / "checkpoint"  # written last, atomically, by a save
  deadline = time.time() + 300
  while not state.exists() and time.time() < deadline and procs[0].poll() is None:
    time.sleep(0.2)
  for p in procs:
    p.send_signal(signal.SIGKILL)
    p.wait()
  assert state.exists(), _log(tmp_path, "first")
  assert not (out_dir / "train_result.json").exists()  # killed before the end

  procs = _start_workers(tmp_path, out_dir, "second")
  for p in procs:
    p.wait(timeout=420)
  assert [p.returncode for p in procs] == [0, 0], _log(tmp_path, "second")

  result = json.loads((out_dir / "train_result.json").read_text())
  assert result["steps"] == STEPS and 2 <= result["resumed_from"] < STEPS
  # Only the chief's files are in the run directory, and the other worker left nothing behind.
  assert sorted(os.listdir(out_dir)) == ["checkpoints", "config.json", "export", "tb",
                                         "train_result.json"]
  assert os.listdir(tmp_path / "second-tmp1") == []  # (a SIGKILLed worker cannot clean up)
  assert (out_dir / "export" / "saved_model.pb").exists()
  chief, worker = np.load(tmp_path / "weights0.npz"), np.load(tmp_path / "weights1.npz")
  assert len(chief.files) == len(worker.files) > 10
  for key in chief.files:
    np.testing.assert_array_equal(chief[key], worker[key])
