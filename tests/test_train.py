"""The training driver: both phases run, checkpoints are written, and a re-run resumes."""
import dataclasses
import json

import keras
import numpy as np
import pytest

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.training import synthetic


def train(cfg, make_dataset, out_dir):
  return task_lib.Task(cfg).train(make_dataset, out_dir)


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
    return synthetic.synthetic_dataset(8, seed=seed)

  result, gan = train(cfg, make_dataset, str(tmp_path))
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
  result2, gan2 = train(longer, make_dataset, str(tmp_path))
  assert (result2.resumed_from, result2.steps, result2.pretrain_steps) == (4, 7, 2)
  assert (tmp_path / "checkpoints" / "ckpt-9.index").exists()  # 2 pre-training + 7 GAN steps
  # A resumed phase continues its stream (same seed, consumed batches skipped): 2 streams in all.
  assert len(set(seeds)) == 2 and seeds.count(seeds[0]) >= 2
  assert any(not np.array_equal(a, b.numpy()) for a, b in zip(weights, gan2.generator.variables))


def test_auto_precision_builds_the_models_under_the_chosen_policy(tmp_path, restore_policy):
  from tinyfaces_tf import precision
  cfg = small_demo_config()
  cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, precision="auto", steps=1,
                                                           pretrain_steps=0))
  result, gan = train(cfg, lambda seed: synthetic.synthetic_dataset(8, seed=seed), str(tmp_path))
  expected = precision.choose_policy(precision.gpu_compute_capabilities(), precision.cpu_flags())
  assert result.precision == expected
  compute = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}
  assert gan.generator.get_layer("g1_conv1").dtype_policy.compute_dtype == compute[expected]
  assert gan.discriminator.get_layer("backbone_tiny").dtype_policy.compute_dtype == compute[expected]
  assert np.isfinite(result.metrics["g_loss"])


def test_seed_fixes_the_initial_weights(tmp_path, restore_policy):
  def first_step_weights(seed, name):
    cfg = small_demo_config()
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed, steps=1,
                                                             pretrain_steps=0))
    _, gan = train(cfg, lambda s: synthetic.synthetic_dataset(8, seed=s), str(tmp_path / name))
    return np.concatenate([v.numpy().ravel() for v in gan.generator.trainable_variables])

  a, b, c = first_step_weights(3, "a"), first_step_weights(3, "b"), first_step_weights(4, "c")
  np.testing.assert_allclose(a, b, atol=1e-5)  # float32 sums may reorder across threads
  assert np.abs(a - c).max() > 1e-2


def test_run_directory_config_round_trips_and_guards_the_run(tmp_path, restore_policy):
  cfg = config_lib.replace(small_demo_config(), crop={"context": 1.5},
                           optimizer={"decay_epochs": (3.0,)}, pipeline={"face_fraction": None})
  train(cfg, lambda seed: synthetic.synthetic_dataset(8, seed=seed, crop=cfg.crop), str(tmp_path))
  text = (tmp_path / "config.json").read_text()
  assert config_lib.from_json(text) == cfg == config_lib.load_run_config(str(tmp_path))
  assert json.loads(text)["crop"]["context"] == 1.5  # plain JSON a user can read
  # Resuming with another crop or model would mix settings in one run: refused, naming them.
  other = config_lib.replace(cfg, crop={"context": 2.0}, generator={"width": 8})
  with pytest.raises(ValueError, match=r"crop\.context.*generator\.width|generator\.width"):
    train(other, lambda seed: synthetic.synthetic_dataset(8, seed=seed), str(tmp_path))


def test_training_restores_the_dtype_policy_it_found(tmp_path, restore_policy):
  keras.mixed_precision.set_dtype_policy("float32")
  cfg = config_lib.replace(small_demo_config(), train={"precision": "mixed_bfloat16",
                                                       "steps": 1, "pretrain_steps": 0})
  result, gan = train(cfg, lambda seed: synthetic.synthetic_dataset(8, seed=seed), str(tmp_path))
  assert result.precision == "mixed_bfloat16"
  assert gan.generator.get_layer("g1_conv1").dtype_policy.compute_dtype == "bfloat16"
  assert keras.mixed_precision.dtype_policy().name == "float32"


def test_a_finished_run_keeps_its_result_file(tmp_path, restore_policy):
  cfg = small_demo_config()
  make = lambda seed: synthetic.synthetic_dataset(8, seed=seed)
  first, _ = train(cfg, make, str(tmp_path))
  before = (tmp_path / "train_result.json").read_bytes()
  again, _ = train(cfg, make, str(tmp_path))  # nothing left to train
  assert (tmp_path / "train_result.json").read_bytes() == before
  assert again == first and again.rois_per_second > 0


@pytest.mark.parametrize("deterministic,traces", [(False, 1), (True, 3)])
def test_deterministic_runs_retrace_the_step_function_before_the_executor_inlines(
    tmp_path, restore_policy, monkeypatch, deterministic, traces):
  """TensorFlow's executor inlines kernels it measured as cheap from about the 90th call of a
  function on, differently per process (BUILD_NOTES "Noise floor"); deterministic runs get a new
  function every loop.STEP_FUNCTION_CALLS calls. Counted here as traces of the GAN step."""
  from tinyfaces_tf import models  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.training import loop  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(loop, "STEP_FUNCTION_CALLS", 2)
  traced = []
  step = models.TinyFacesGAN.train_step
  monkeypatch.setattr(models.TinyFacesGAN, "train_step",
                      lambda self, data: traced.append(1) or step(self, data))
  cfg = config_lib.replace(small_demo_config(deterministic=deterministic),
                          train={"steps": 6, "pretrain_steps": 0, "checkpoint_every": 6})
  result, _ = train(cfg, lambda seed: synthetic.synthetic_dataset(8, seed), str(tmp_path))
  assert result.steps == 6
  assert len(traced) == traces  # once, or at calls 0, 2 and 4 (the one made at 6 is never called)
