"""The training driver: both phases run, checkpoints are written, and a re-run resumes."""
import dataclasses
import json

import numpy as np

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import train


def small_demo_config(**train_overrides):
  base = config_lib.get_preset("demo")
  tc = dataclasses.replace(base.train, batch_size=8, steps=4, pretrain_steps=2, checkpoint_every=2,
                           precision="float32", **train_overrides)
  return dataclasses.replace(base, train=tc)


def test_train_then_resume(tmp_path, restore_policy):
  cfg = small_demo_config()
  seeds = []

  def make_dataset(seed):
    seeds.append(seed)
    return train.synthetic_dataset(8, seed=seed)

  result, gan = train.train(cfg, make_dataset, str(tmp_path))
  assert (result.steps, result.pretrain_steps, result.resumed_from) == (4, 2, 0)
  assert np.isfinite(result.metrics["g_loss"]) and result.rois_per_second > 0
  assert (tmp_path / "checkpoints" / "checkpoint").exists()
  assert any((tmp_path / "tb").rglob("events.out.tfevents*"))
  saved = json.loads((tmp_path / "train_result.json").read_text())
  assert saved["steps"] == 4
  weights = [v.numpy() for v in gan.generator.variables]

  # Longer schedule, same directory: continues at step 4, skips the finished warm start.
  # 7 is not a multiple of checkpoint_every=2: the run still stops at exactly 7.
  longer = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=7))
  result2, gan2 = train.train(longer, make_dataset, str(tmp_path))
  assert (result2.resumed_from, result2.steps, result2.pretrain_steps) == (4, 7, 2)
  assert (tmp_path / "checkpoints" / "ckpt-9.index").exists()  # 2 pre-training + 7 GAN steps
  assert len(set(seeds)) == len(seeds)  # a resumed run draws new batches rather than replaying
  assert any(not np.array_equal(a, b.numpy()) for a, b in zip(weights, gan2.generator.variables))
