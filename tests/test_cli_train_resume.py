"""Acceptance: SIGKILL `tinyfaces-train` mid-run, re-run the same command: it resumes where the
checkpoint and the input stream were, and ends with exactly the weights of an uninterrupted run."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf


def _final_variables(run_dir):
  reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
  # save_counter counts saves, which a killed run makes a different number of.
  return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(
      str(run_dir / "checkpoints")) if "save_counter" not in name}


def test_sigkill_then_resume(tmp_path):
  out = tmp_path / "run"
  cmd = [sys.executable, "-m", "tinyfaces_tf.cli.train", "--config=demo", "--synthetic",
         f"--out_dir={out}", "--config.train.steps=400", "--config.train.pretrain_steps=2",
         "--config.train.checkpoint_every=4", "--config.train.batch_size=4",
         "--config.generator.width=4", "--config.generator.upsample_width=4",
         "--config.train.precision=float32", "--config.train.deterministic=true", "--noexport"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  ckpt_dir = out / "checkpoints"
  deadline = time.time() + 240
  try:
    # Wait for a GAN-phase checkpoint (numbers count pre-training + GAN steps, 2 + 8 = 10) to be
    # recorded in the checkpoint state file (written last, atomically, by the CheckpointManager):
    # its .index file alone can appear before the save completes.
    while time.time() < deadline and proc.poll() is None:
      state = tf.train.get_checkpoint_state(str(ckpt_dir)) if ckpt_dir.exists() else None
      if state and int(state.model_checkpoint_path.rsplit("-", 1)[1]) >= 10:
        break
      time.sleep(0.2)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
  finally:
    proc.kill()
    proc.wait()
  assert not (out / "train_result.json").exists()  # it really died before finishing
  # Same command with a shorter schedule so the test stays fast: the step counter continues.
  cmd = [c if not c.startswith("--config.train.steps=") else "--config.train.steps=60"
         for c in cmd]
  done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  result = json.loads((out / "train_result.json").read_text())
  assert 8 <= result["resumed_from"] < 60  # continued from the checkpoint we waited for
  assert result["steps"] == 60 and result["pretrain_steps"] == 2

  # The same schedule without the kill: every variable equal, tolerance 0 (op determinism, the
  # input stream continued at the checkpoint's step).
  reference = tmp_path / "reference"
  cmd = [c if not c.startswith("--out_dir=") else f"--out_dir={reference}" for c in cmd]
  done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-2000:]
  resumed, uninterrupted = _final_variables(out), _final_variables(reference)
  assert sorted(resumed) == sorted(uninterrupted) and len(resumed) > 50
  for name, value in uninterrupted.items():
    np.testing.assert_array_equal(resumed[name], value, err_msg=name)
