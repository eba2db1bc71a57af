"""Acceptance: `tfds build tinyfaces_tf/datasets/wider_face_rois --manual_dir=DIR --config=...`
from the shell (the `tfds-cli` extra: tensorflow-datasets' `tfds` command imports apache-beam and
mlcroissant at start-up)."""
import importlib.util
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


BUILDER_DIR = "tinyfaces_tf/datasets/wider_face_rois"
MISSING = [m for m in ("apache_beam", "mlcroissant") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"the tfds command needs {MISSING}: install the "
                    "[tfds-cli] extra")
def test_tfds_build_command_line(tmp_path):
  tfds_bin = os.path.join(os.path.dirname(sys.executable), "tfds")
  cmd = [tfds_bin, "build", BUILDER_DIR, f"--manual_dir={BUILDER_DIR}/dummy_data", "--config=x1.5",
         f"--data_dir={tmp_path}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
  done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  builder = tfds.builder_from_directory(str(tmp_path / "wider_face_rois" / "x1.5" / "1.0.0"))
  # Counts worked by hand from RoiSamplerConfig's defaults for the dummy data (see the builder test).
  assert builder.info.splits["train"].num_examples == 10
  assert builder.info.splits["validation"].num_examples == 18
  example = next(iter(builder.as_dataset(split="train")))
  assert example["hr"].shape == (64, 64, 3) and example["lr"].shape == (16, 16, 3)
