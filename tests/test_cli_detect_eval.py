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


def test_fddb_detect_and_eval_clis(tmp_path):
  """A WIDER-trained export on an FDDB-layout copy of the demo's val split (journal Fig. 9)."""
  from tinyfaces_tf.data import fddb  # pylint: disable=g-import-not-at-top
  data = tmp_path / "demo"
  demo.make_demo_dataset(data, train_images=0, val_images=3, test_images=0, seed=3)
  fddb.write_fddb_layout_from_wider(data, tmp_path / "fddb", folds=2)
  g = models.build_generator("tinyfaces", width=8, upsample_width=8, residual_units=1)
  d = models.build_discriminator("tiny", tiny_width=8)
  model = export.export_saved_model(g, d, str(tmp_path / "export"), config_lib.ExperimentConfig())
  results = tmp_path / "ours"
  run_cli("tinyfaces_tf.cli.detect", f"--model={model}", "--dataset=fddb",
          f"--root={tmp_path / 'fddb'}", "--proposer=windows", f"--results_dir={results}")
  assert len(list(results.rglob("*.txt"))) == 3  # one file per image
  out = tmp_path / "eval"
  done = run_cli("tinyfaces_tf.cli.evaluate", "--dataset=fddb", f"--root={tmp_path / 'fddb'}",
                 f"--results={results}", f"--out={out}")
  tpr = json.loads((out / "fddb_tpr.json").read_text())
  assert set(tpr["ours"]) == {"discrete_tpr_at_500_fp", "continuous_tpr_at_500_fp"}
  assert 0.0 <= tpr["ours"]["continuous_tpr_at_500_fp"] <= 1.0
  assert (out / "ours-DiscROC.txt").exists() and (out / "ours-ContROC.txt").exists()
  assert (out / "fddb_roc.png").stat().st_size > 1000
  assert sorted(p.name for p in (results / "FDDB-folds-out").iterdir()) == [
      "fold-01-out.txt", "fold-02-out.txt"]
  assert "ours" in done.stdout
  # A split FDDB does not have: one line naming the flag, exit 2.
  failed = run_failing("tinyfaces_tf.cli.detect", f"--model={model}", "--dataset=fddb",
                       f"--root={tmp_path / 'fddb'}", "--split=fold-11",
                       f"--results_dir={tmp_path / 'x'}")
  assert failed.returncode == 2 and "--split" in failed.stderr.strip().splitlines()[-1]


def test_coco_detect_and_eval_clis(tmp_path):
  """A K + 1-class export on a COCO layout with a detector's COCO results as proposals."""
  import shutil  # pylint: disable=g-import-not-at-top
  root = tmp_path / "coco"
  shutil.copytree(os.path.join(os.path.dirname(os.path.dirname(__file__)), "tinyfaces_tf",
                               "datasets", "coco_rois", "dummy_data"), root)
  cfg = config_lib.get_preset("demo_coco")
  g = models.build_generator("tinyfaces", width=8, upsample_width=8, residual_units=1)
  d = models.build_discriminator("tiny", cfg.discriminator.num_classes, tiny_width=8)
  model = export.export_saved_model(g, d, str(tmp_path / "export"), cfg)
  results, baseline = tmp_path / "ours", tmp_path / "baseline"
  run_cli("tinyfaces_tf.cli.detect", f"--model={model}", f"--root={root}", "--split=val2017",
          f"--proposer=coco_results:{root / 'proposals' / 'val2017.json'}",
          f"--results_dir={results}", f"--baseline_dir={baseline}")
  entries = [e for p in results.rglob("*.json") for e in json.loads(p.read_text())]
  assert entries and {e["category_id"] for e in entries} <= {1, 3, 8}
  out = tmp_path / "eval"
  run_cli("tinyfaces_tf.cli.evaluate", "--dataset=coco", f"--root={root}", "--split=val2017",
          f"--results={results}", f"--baseline_results={baseline}", f"--out={out}")
  aps = json.loads((out / "coco_ap.json").read_text())
  assert list(aps) == ["baseline", "ours"]
  assert set(aps["ours"]) == {"AP", "AP50", "AP75", "APs", "APm", "APl"}
  # The baseline is the proposals file itself: face and cat found with their classes, the
  # coin missed (see the dummy data) -> AP50 = (1 + 1 + 0) / 3.
  assert aps["baseline"]["AP50"] == pytest.approx(2 / 3, abs=1e-3)
  assert (results / "coco_results.json").exists()
