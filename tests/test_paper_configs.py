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
from tinyfaces_tf import export
from tinyfaces_tf import train
from tinyfaces_tf.cli import train as train_cli

EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "experiments")


@pytest.mark.parametrize("preset", ["journal", "cvpr18", "mtgan", "sbu"])
def test_paper_preset_trains_and_exports(preset, tmp_path, restore_policy):
  cfg = config_lib.get_preset(preset)
  cfg = dataclasses.replace(cfg, train=dataclasses.replace(
      cfg.train, batch_size=2, steps=1, pretrain_steps=1, checkpoint_every=1))
  result, gan = train.train(cfg, lambda seed: train.synthetic_dataset(2, seed), str(tmp_path))
  assert result.steps == 1 and np.isfinite(result.metrics["d_loss"])
  path = export.export_saved_model(gan.generator, gan.discriminator, str(tmp_path / "export"),
                                   context=cfg.context)
  loaded = tf.saved_model.load(path)
  lr = np.zeros((1, 16, 16, 3), np.float32)
  # precision="auto" trains these in mixed_bfloat16 on bf16 CPUs: the graph's fused kernels
  # round differently from eager ones at bfloat16's 8-bit mantissa (float32 export: test_detect_export).
  atol = 1e-5 if result.precision == "float32" else 2e-2
  np.testing.assert_allclose(loaded.signatures["score_rois"](lr=lr)["face_prob"],
                             tf.sigmoid(gan(lr)["cls_logits"][:, 0]), rtol=1e-4, atol=atol)


def parse(*paths):
  fv = flags.FLAGS
  try:
    fv(["tinyfaces-train"] + [f"--flagfile={p}" for p in paths])
    return train_cli.config_from_flags(fv)
  finally:
    fv.unparse_flags()


def test_every_flagfile_parses():
  files = sorted(glob.glob(os.path.join(EXPERIMENTS, "*", "*.cfg")))
  assert len(files) == 7 + 5 + 2 + 1 + 1  # + mtgan/demo_sgd_d.cfg, a demo-scale addition
  for path in files:
    assert isinstance(parse(path), config_lib.ExperimentConfig), path


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
  assert [row(f"table3/context_x{m}.cfg").context for m in ("1.0", "1.5", "2.0", "3.0", "4.0")] \
      == [1.0, 1.5, 2.0, 3.0, 4.0]
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
