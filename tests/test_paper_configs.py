"""Every paper configuration builds at full size, trains a step and exports; every experiment
flagfile parses into the configuration its table row describes."""
import dataclasses
import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from tinyfaces_tf import config as config_lib
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.cli import config_flags

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments")


@pytest.mark.parametrize("preset", ["journal", "cvpr18", "mtgan", "sbu"])
def test_paper_preset_trains_and_exports(preset, tmp_path, restore_policy):
  cfg = config_lib.replace(config_lib.get_preset(preset), train={
      "batch_size": 2, "steps": 1, "pretrain_steps": 1, "checkpoint_every": 1})
  task = task_lib.Task(cfg)
  result, gan = task.train(task.build_synthetic_dataset(), str(tmp_path))
  assert result.steps == 1 and np.isfinite(result.metrics["d_loss"])
  path = task.export(gan.generator, gan.discriminator, str(tmp_path / "export"))
  loaded = tf.saved_model.load(path)
  lr = np.zeros((1, 16, 16, 3), np.float32)
  # precision="auto" trains these in mixed_bfloat16 on bf16 CPUs: the graph's fused kernels
  # round differently from eager ones at bfloat16's 8-bit mantissa (float32 export: test_detect_export).
  atol = 1e-5 if result.precision == "float32" else 2e-2
  np.testing.assert_allclose(loaded.signatures["score_rois"](lr=lr)["face_prob"],
                             tf.sigmoid(gan(lr)["cls_logits"][:, 0]), rtol=1e-4, atol=atol)


@pytest.mark.parametrize("preset", ["mtgan_coco", "mtgan_coco_r101"])
def test_mtgan_coco_preset_trains_exports_and_detects_classes(preset, tmp_path, restore_policy):
  """MTGAN's COCO presets (K = 80, ResNet-50 / ResNet-101 D): a step, an export whose detect
  returns class ids and class-specific boxes with per-class NMS."""
  from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
  cfg = config_lib.replace(config_lib.get_preset(preset), train={
      "batch_size": 2, "steps": 1, "checkpoint_every": 1, "precision": "float32"})
  assert cfg.discriminator.num_classes == 81 and cfg.detect.max_rois == 100
  task = task_lib.Task(cfg)
  result, gan = task.train(task.build_synthetic_dataset(), str(tmp_path))
  assert result.steps == 1 and np.isfinite(result.metrics["d_loss"])
  assert gan.discriminator.output["box_deltas"].shape[-1] == 4 * 81
  detector = export.SavedModelDetector(task.export(gan.generator, gan.discriminator,
                                                   str(tmp_path / "export")))
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (96, 128, 3), np.uint8)
  xy = rng.uniform(0, 60, (5, 2)).astype(np.float32)
  boxes, scores, labels = detector.detect_classes(image, np.concatenate([xy, xy + 30], 1),
                                                  np.linspace(1, 0.5, 5))
  assert len(boxes) == len(scores) == len(labels) and 0 < len(labels) <= 100
  assert labels.dtype == np.int32 and labels.min() >= 1 and labels.max() <= 80
  assert np.all(np.diff(scores) <= 1e-7)


def parse(*args):
  """tinyfaces-train's config flags on flagfile paths (or other arguments)."""
  fv = flags.FlagValues()
  config_flags.define_config_flags(flag_values=fv)
  fv(["tinyfaces-train"] + [a if a.startswith("--") else f"--flagfile={a}" for a in args])
  return config_flags.config_from_flags(fv)


def test_every_flagfile_parses():
  files = sorted(glob.glob(os.path.join(EXPERIMENTS, "*", "*.cfg")))
  # + mtgan/demo_sgd_d.cfg, a demo-scale addition; + 10 MTGAN COCO rows.
  assert len(files) == 7 + 5 + 2 + 1 + 1 + 10
  for path in files:
    assert isinstance(parse(path), config_lib.ExperimentConfig), path


def test_mtgan_coco_rows_switch_what_the_paper_says():
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location("experiments_table_rows",
                                                os.path.join(EXPERIMENTS, "table_rows.py"))
  table_rows = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(table_rows)
  row = lambda name: parse(os.path.join(EXPERIMENTS, "mtgan_coco", name))
  mtgan = row("mtgan_r50.cfg")
  assert mtgan == config_lib.get_preset("mtgan_coco")
  assert (mtgan.data.family, mtgan.data.train_split, mtgan.data.eval_split) == (
      "coco", "trainval35k2014", "minival2014")
  assert row("mtgan_r101.cfg").discriminator.backbone == "resnet101"
  for name in ("plain_rcnn.cfg", "d_wo_adv_branch.cfg"):
    cfg = row(name)  # the proposal resized to 224x224, no generator, no adversarial branch
    assert (cfg.generator.kind, cfg.crop.hr_size, cfg.crop.scale) == ("bilinear", 224, 1)
    assert cfg.discriminator.adv_branch is False
  assert row("plain_rcnn.cfg").discriminator.reg_branch is False
  assert row("d_wo_adv_branch.cfg").discriminator.reg_branch is True
  assert (row("sbu.cfg").generator.kind, row("sbu.cfg").crop.scale) == ("bilinear", 4)
  assert row("w_o_reg_branch.cfg").discriminator.reg_branch is False
  assert row("w_o_adv_loss.cfg").loss.g_adv is False
  assert row("w_o_cls_loss.cfg").loss.g_cls is False
  assert row("w_o_reg_loss.cfg").loss.g_reg is False
  assert row("ensemble.cfg").detect.score_fusion == "product"
  # A detection-only row trains exactly what its trainer row trains: only detect.* differs.
  for name, trained_by in table_rows.TRAINED_BY.items():
    detect_only = parse(os.path.join(EXPERIMENTS, name))
    trainer = parse(os.path.join(EXPERIMENTS, trained_by))
    assert detect_only.detect != trainer.detect
    assert dataclasses.replace(detect_only, detect=trainer.detect) == trainer
  # Every row's flagfile exists; at demo scale it becomes the COCO-format demo's 4 classes.
  for table, rows in table_rows.COCO_TABLES.items():
    metrics = (table_rows.ACCURACY_METRICS if table in table_rows.RUNS_OF
               else table_rows.COCO_METRICS)
    for r in rows:
      if r.flagfile:
        demo = parse(os.path.join(EXPERIMENTS, r.flagfile),
                     os.path.join(EXPERIMENTS, "demo_scale.cfg"),
                     os.path.join(EXPERIMENTS, table_rows.DEMO_EXTRA[r.flagfile]))
        assert demo.discriminator.num_classes == 4 and demo.discriminator.backbone == "tiny"
        assert (demo.data.train_split, demo.optimizer.decay_steps) == ("train2017", ())
      assert len(r.paper) == len(metrics)


def test_table_rows_switch_what_the_paper_says():
  row = lambda name: parse(os.path.join(EXPERIMENTS, name))
  assert row("table2/w_o_refinement.cfg").generator.refinement is False
  assert row("table2/w_o_adv_loss.cfg").loss.g_adv is False
  assert row("table2/w_o_cls_loss.cfg").loss.g_cls is False
  ours = row("table2/ours.cfg")
  assert (ours.discriminator.backbone, ours.discriminator.reg_branch) == ("vgg19", False)
  assert row("table2/w_o_reg_branch.cfg").discriminator.reg_branch is False
  assert row("table2/w_o_reg_loss.cfg").loss.g_reg is False
  star = row("table2/ours_star.cfg")
  assert (star.discriminator.backbone, star.discriminator.reg_branch, star.loss.g_reg) == (
      "resnet50", True, True)
  assert [row(f"table3/context_x{m}.cfg").crop.context
          for m in ("1.0", "1.5", "2.0", "3.0", "4.0")] == [1.0, 1.5, 2.0, 3.0, 4.0]
  assert row("mtgan/sbu.cfg").generator.kind == "bilinear"
  mtgan = row("mtgan/mtgan.cfg")
  assert (mtgan.generator.kind, mtgan.optimizer.d_optimizer) == ("mtgan", "sgd")
  # Demo scale keeps the row's switches and shrinks the rest.
  demo = parse(os.path.join(EXPERIMENTS, "table2/w_o_cls_loss.cfg"),
               os.path.join(EXPERIMENTS, "demo_scale.cfg"))
  assert demo.loss.g_cls is False and demo.discriminator.backbone == "tiny"
  assert demo.generator.width == 16 and demo.optimizer.decay_epochs == ()
  mtgan_demo = parse(os.path.join(EXPERIMENTS, "mtgan/mtgan.cfg"),
                     os.path.join(EXPERIMENTS, "demo_scale.cfg"),
                     os.path.join(EXPERIMENTS, "mtgan/demo_sgd_d.cfg"))
  assert (mtgan_demo.optimizer.d_optimizer, mtgan_demo.optimizer.d_learning_rate) == ("sgd", 0.03)


def test_every_field_has_one_flag_with_its_type_and_choices():
  cfg = parse("--config=demo", "--config.train.batch_size=64", "--config.loss.g_adv=false",
              "--config.optimizer.decay_epochs=6,8", "--config.train.steps=none",
              "--config.crop.context=1.5", "--config.detect.score_fusion=product",
              "--config.pipeline.face_fraction=None", "--config.sampler.background_size_range=8,90")
  demo = config_lib.get_preset("demo")
  assert cfg == config_lib.replace(
      demo, train={"batch_size": 64, "steps": None}, loss={"g_adv": False},
      optimizer={"decay_epochs": (6.0, 8.0)}, crop={"context": 1.5},
      detect={"score_fusion": "product"}, pipeline={"face_fraction": None},
      sampler={"background_size_range": (8.0, 90.0)})
  with pytest.raises(flags.IllegalFlagValueError, match="one of"):
    parse("--config.detect.score_fusion=sum")
  with pytest.raises(flags.IllegalFlagValueError):
    parse("--config.train.batch_size=many")
  with pytest.raises(ValueError, match="train.batch_size must be >= 1"):
    parse("--config.train.batch_size=0")


def test_a_run_config_json_is_a_base_config(tmp_path):
  cfg = config_lib.replace(config_lib.get_preset("cvpr18"), train={"seed": 7})
  config_lib.save(cfg, str(tmp_path / config_lib.CONFIG_FILE))
  assert parse(f"--config={tmp_path}") == cfg
  assert parse(f"--config={tmp_path / config_lib.CONFIG_FILE}", "--config.train.seed=8") == \
      config_lib.replace(cfg, train={"seed": 8})
  with pytest.raises(ValueError, match="unknown config"):
    parse("--config=no_such_preset")


def test_config_json_errors_name_the_field():
  text = config_lib.to_json(config_lib.get_preset("demo"))
  with pytest.raises(ValueError, match=r"config\.train\.batch_size: expected an integer"):
    config_lib.from_json(text.replace('"batch_size": 32', '"batch_size": "32"'))
  with pytest.raises(ValueError, match=r"config\.loss: unknown field\(s\) \['alfa'\]"):
    config_lib.from_json(text.replace('"alpha"', '"alfa"'))
