"""The user-facing CLIs end to end: tinyfaces-data demo -> tinyfaces-detect (one image and a
split) -> tinyfaces-eval, on a small demo dataset and an exported (untrained) tiny model."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from tinyfaces_tf import export
from tinyfaces_tf import models
from tinyfaces_tf.data import demo


def run_cli(module, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  done = subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True,
                        text=True, timeout=300)
  assert done.returncode == 0, done.stderr[-3000:]
  return done


def test_detect_and_eval_clis(tmp_path):
  data = tmp_path / "demo"
  demo.make_demo_dataset(data, train_images=0, val_images=3, test_images=0, seed=3)
  g = models.build_generator("tinyfaces", width=8, upsample_width=8, residual_units=1)
  d = models.build_discriminator("tiny", tiny_width=8)
  model = export.export_saved_model(g, d, str(tmp_path / "export"))

  # One image: PNG + JSON with pixel xywh boxes, highest score first.
  image = next((data / "WIDER_val" / "images").rglob("*.jpg"))
  out_png = tmp_path / "det.png"
  run_cli("tinyfaces_tf.cli.detect", f"--model={model}", f"--image={image}",
          "--proposer=windows", f"--out={out_png}", "--min_score=0")
  record = json.loads(out_png.with_suffix(".json").read_text())
  assert record["image"] == str(image) and record["detections"]
  scores = [det["score"] for det in record["detections"]]
  assert scores == sorted(scores, reverse=True)
  width, height = Image.open(image).size
  for det in record["detections"]:
    x, y, w, h = det["box"]
    assert 0 <= x <= width and 0 <= y <= height and w > 0 and h > 0
  assert np.asarray(Image.open(out_png)).std() > 10

  # A split on the proposer's result files, then the official evaluation of both.
  results, baseline = tmp_path / "ours", tmp_path / "baseline"
  run_cli("tinyfaces_tf.cli.detect", f"--model={model}", f"--wider_dir={data}", "--split=val",
          "--proposer=windows", f"--results_dir={results}", f"--baseline_dir={baseline}")
  assert len(list(results.rglob("*.txt"))) == 3
  out = tmp_path / "eval"
  run_cli("tinyfaces_tf.cli.evaluate", f"--results={results}", f"--wider_dir={data}",
          f"--out={out}", f"--baseline_results={baseline}")
  aps = json.loads((out / "wider_ap.json").read_text())
  assert set(aps) == {"easy", "medium", "hard"}
  assert all(0.0 <= v <= 1.0 for v in aps.values() if v == v)
  assert (out / "pr_curves.png").stat().st_size > 1000
