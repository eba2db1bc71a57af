"""The user-facing CLIs end to end: tinyfaces-data demo -> tinyfaces-detect (one image and a
split) -> tinyfaces-eval, on a small demo dataset and an exported (untrained) tiny model."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinyfaces_tf import config as config_lib
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
  model = export.export_saved_model(g, d, str(tmp_path / "export"), config_lib.ExperimentConfig())

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

  # A score fusion the export does not have: one line naming the flag, exit 2, nothing written.
  done = run_failing("tinyfaces_tf.cli.detect", f"--model={model}", f"--image={image}",
                     "--proposer=windows", f"--out={tmp_path / 'fused.png'}",
                     "--score_fusion=sum")
  lines = done.stderr.strip().splitlines()
  assert done.returncode == 2 and len(lines) == 1 and "--score_fusion" in lines[0], done.stderr
  assert not (tmp_path / "fused.png").exists()

  # A split on the proposer's result files, then the official evaluation of both.
  results, baseline = tmp_path / "ours", tmp_path / "baseline"
  run_cli("tinyfaces_tf.cli.detect", f"--model={model}", f"--wider_dir={data}", "--split=val",
          "--proposer=windows", f"--results_dir={results}", f"--baseline_dir={baseline}")
  assert len(list(results.rglob("*.txt"))) == 3
  out = tmp_path / "eval"
  run_cli("tinyfaces_tf.cli.evaluate", f"--results={results}", f"--wider_dir={data}",
          f"--out={out}", f"--baseline_results={baseline}")
  aps = json.loads((out / "wider_ap.json").read_text())
  assert list(aps) == ["baseline", "ours"]
  for ap in aps.values():
    assert set(ap) == {"easy", "medium", "hard"}
    assert all(0.0 <= v <= 1.0 for v in ap.values() if v == v)
  assert (out / "pr_curves.png").stat().st_size > 1000


def run_failing(module, *args):
  env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the tools' own quiet defaults
  return subprocess.run([sys.executable, "-m", module, *args], env=env, capture_output=True,
                        text=True, timeout=300)


def test_input_errors_are_one_line_without_a_traceback(tmp_path):
  missing = tmp_path / "nothing"
  for module, args, expected in (
      ("tinyfaces_tf.cli.detect", [f"--model={missing}", f"--image={missing}.jpg",
                                   f"--out={tmp_path}/o.png"], "not a SavedModel"),
      ("tinyfaces_tf.cli.export", [f"--run_dir={missing}"], "not a run directory"),
      ("tinyfaces_tf.cli.train", ["--config=demo", "--synthetic", f"--out_dir={tmp_path}/r",
                                  "--config.train.batch_size=0"], "train.batch_size must be >= 1"),
      ("tinyfaces_tf.cli.train", ["--config=nope", "--synthetic", f"--out_dir={tmp_path}/r"],
       "unknown config 'nope'")):
    done = run_failing(module, *args)
    assert done.returncode == 2, (module, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in done.stderr, lines
    assert not (tmp_path / "r").exists()


def test_help_lists_the_tools_own_flags():
  # The console script (argv[0] is its launcher, not the module) is where absl showed nothing.
  script = os.path.join(os.path.dirname(sys.executable), "tinyfaces-train")
  if not os.path.exists(script):
    pytest.skip("console scripts not installed (pip install -e .)")
  done = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
  text = " ".join(done.stdout.split())
  assert "tinyfaces-train: train (or resume) one experiment." in text  # the tool's own usage
  assert "--config.train.batch_size" in text and "--out_dir" in text, done.stdout
  assert "--config.crop.context" in text and "One of: tinyfaces, mtgan, bilinear" in text
