"""experiments/run.py end to end on its cheapest row: the baseline (the proposer's own scores) of a
small demo split, with ground-truth boxes as the 'proposer', must score AP 1.0 and fill the table."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyfaces_tf.data import demo
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_face

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_baseline_row_of_perfect_proposals_fills_the_table(tmp_path):
  data = tmp_path / "demo"
  demo.make_demo_dataset(data, train_images=0, val_images=3, test_images=0, seed=5)
  for image in wider_face.read_bbx_gt(wider_face.split_file(str(data), "val")):
    boxes = np.array([[f.x, f.y, f.w, f.h] for f in image.faces], np.float32).reshape(-1, 4)
    result_files.write_result_file(str(data / "proposals" / "val"), image.name, boxes,
                                 np.linspace(1.0, 0.5, len(boxes)))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "run.py"), "--table=2",
       "--rows=baseline_proposer", f"--wider_dir={data}", f"--data_dir={tmp_path}",
       f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'results'}"],
      env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert done.returncode == 0, done.stderr[-3000:]
  table = (tmp_path / "results" / "table2_demo.md").read_text().splitlines()
  rows = [line for line in table if line.startswith("| Baseline")]
  assert rows == ["| Baseline (proposer) | 1.000 | 1.000 | 1.000 | 0.932 | 0.922 | 0.858 |"]


def test_mean_sd_is_the_sample_standard_deviation():
  spec = importlib.util.spec_from_file_location("experiments_table_rows",
                                                os.path.join(REPO, "experiments", "table_rows.py"))
  table_rows = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(table_rows)
  values = [0.61, 0.68, 0.66]
  assert table_rows.mean_sd(values) == pytest.approx((np.mean(values), np.std(values, ddof=1)))
  assert table_rows.mean_sd([0.5]) == (0.5, None)
