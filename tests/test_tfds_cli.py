"""Acceptance: `tfds build datasets/wider_face_rois --manual_dir=DIR --config=...` from the shell."""
import os
import subprocess
import sys

import tensorflow_datasets as tfds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tfds_build_command_line(tmp_path):
  tfds_bin = os.path.join(os.path.dirname(sys.executable), "tfds")
  cmd = [tfds_bin, "build", "datasets/wider_face_rois",
         "--manual_dir=datasets/wider_face_rois/dummy_data", "--config=x1.5",
         f"--data_dir={tmp_path}"]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
  done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  builder = tfds.builder_from_directory(str(tmp_path / "wider_face_rois" / "x1.5" / "1.0.0"))
  # Counts worked by hand from RoiConfig's defaults for the dummy data (see the builder test).
  assert builder.info.splits["train"].num_examples == 10
  assert builder.info.splits["validation"].num_examples == 18
  example = next(iter(builder.as_dataset(split="train")))
  assert example["hr"].shape == (64, 64, 3) and example["lr"].shape == (16, 16, 3)
