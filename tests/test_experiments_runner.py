"""experiments/run.py end to end on its cheapest row: the baseline (the proposer's own scores) of a
small demo split, with ground-truth boxes as the 'proposer', must score AP 1.0 and fill the table."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tinyfaces_tf.data import demo
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_face

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def demo_with_perfect_proposals(data, val_images):
  """A small demo val split whose proposals are its ground-truth boxes (scores 1.0 down to 0.5)."""
  demo.make_demo_dataset(data, train_images=0, val_images=val_images, test_images=0, seed=5)
  for image in wider_face.read_bbx_gt(wider_face.split_file(str(data), "val")):
    boxes = np.array([[f.x, f.y, f.w, f.h] for f in image.faces], np.float32).reshape(-1, 4)
    result_files.write_result_file(str(data / "proposals" / "val"), image.name, boxes,
                                   np.linspace(1.0, 0.5, len(boxes)))


def test_baseline_row_of_perfect_proposals_fills_the_table(tmp_path):
  data = tmp_path / "demo"
  demo_with_perfect_proposals(data, val_images=3)
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
  # The group of runs remembers the demo data version it was made from; once the demo data is
  # another version its finished runs are not reused: one line naming the folder, exit non-zero.
  group = tmp_path / "runs" / "table2_demo"
  assert json.loads((group / "demo_data.json").read_text())["version"] == demo.DATA_VERSION
  meta = data / demo.META_FILE
  meta.write_text(meta.read_text().replace(f'"version": {demo.DATA_VERSION}', '"version": 99'))
  again = subprocess.run(done.args, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert again.returncode != 0
  assert f"{group}: its runs were made from version {demo.DATA_VERSION}" in again.stderr
  assert "now version 99" in again.stderr


def test_mean_sd_is_the_sample_standard_deviation():
  table_rows = load_table_rows()
  values = [0.61, 0.68, 0.66]
  assert table_rows.mean_sd(values) == pytest.approx((np.mean(values), np.std(values, ddof=1)))
  assert table_rows.mean_sd([0.5]) == (0.5, None)


def load_experiments_module(name):
  """experiments/<name>.py (flag-free helpers beside run.py), imported without run.py's flags."""
  spec = importlib.util.spec_from_file_location(f"experiments_{name}",
                                                os.path.join(REPO, "experiments", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_table_rows():
  return load_experiments_module("table_rows")


def test_paired_difference_is_the_t_interval_worked_by_hand():
  rows = load_table_rows()
  # Differences 0.05, 0.06, 0.07, 0.05, 0.07: mean 0.06, sd 0.01, se 0.01 / sqrt(5);
  # t(0.975, 4) = 2.776445 (printed t tables) -> half-width 0.0124164.
  reference = [0.5, 0.6, 0.7, 0.4, 0.3]
  row = [r + d for r, d in zip(reference, (0.05, 0.06, 0.07, 0.05, 0.07))]
  d = rows.paired_difference(row, reference)
  assert d.mean == pytest.approx(0.06)
  assert (d.low, d.high) == pytest.approx((0.06 - 0.0124164, 0.06 + 0.0124164), abs=1e-6)
  assert d.distinguishable and d.seeds == 5
  # Three differences 0.01, 0.02, 0.03: t(0.975, 2) = 4.302653, half-width 0.0248414 -> 0 inside.
  d = rows.paired_difference([0.51, 0.52, 0.53], [0.5])  # one baseline value pairs every seed
  assert (d.low, d.high) == pytest.approx((0.02 - 0.0248414, 0.02 + 0.0248414), abs=1e-6)
  assert not d.distinguishable
  assert rows.paired_difference([0.6], [0.5]).low is None
  with pytest.raises(ValueError):
    rows.paired_difference([0.1, 0.2], [0.1, 0.2, 0.3])


def test_verdicts_follow_the_papers_direction():
  rows = load_table_rows()
  up = rows.PairedDifference(0.06, 0.05, 0.07, 5)
  down = rows.PairedDifference(-0.06, -0.07, -0.05, 5)
  zero = rows.PairedDifference(0.01, -0.02, 0.04, 5)
  assert [rows.verdict(d, +1) for d in (up, down, zero)] == ["shown", "reversed", "not shown"]
  assert [rows.verdict(d, -1) for d in (up, down, zero)] == ["reversed", "shown", "not shown"]
  assert rows.verdict(up, None) == "no paper claim" and rows.verdict(up, 0) == "paper: equal"
  # Directions from the paper's numbers: w/o cls loss (0.936) below Ours (0.944) on Easy; Table 3
  # x3.0 above x2.0 on Easy (0.960 vs 0.955) and below it on Hard (0.872 vs 0.889).
  by_name = {row.name: row for table in rows.TABLES.values() for row in table}
  w_o_cls, ours = by_name["w/o cls loss"], by_name[by_name["w/o cls loss"].reference]
  assert rows.claim_sign(w_o_cls, ours, 0) == -1
  x3, x2 = by_name["x3.0"], by_name["x2.0"]
  assert x3.reference == "x2.0"
  assert (rows.claim_sign(x3, x2, 0), rows.claim_sign(x3, x2, 2)) == (+1, -1)
  mtgan = by_name["MTGAN"]
  assert rows.claim_sign(mtgan, by_name[mtgan.reference], 0) == +1  # stated: COCO Table 4
  # Every reference names a row of the same table.
  for table in rows.TABLES.values():
    names = {row.name for row in table}
    assert all(row.reference in names for row in table if row.reference)


def test_coco_table_baseline_and_ensemble_rows(tmp_path):
  """--table=mtgan6 on a small COCO-format demo: the baseline row (the proposer's own
  detections, written while the MTGAN row detects) equals pycocotools' AP of those detections;
  the ensemble row (MTGAN's trained model with product score fusion) trains nothing, and with
  the windows proposer (every score 1.0) the product equals MTGAN's own scores: same AP."""
  from pycocotools.coco import COCO  # pylint: disable=g-import-not-at-top
  from pycocotools.cocoeval import COCOeval  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import demo_coco  # pylint: disable=g-import-not-at-top
  data = tmp_path / "coco"
  demo_coco.make_coco_demo(data, train_images=4, val_images=3, seed=2)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  # First without the baseline row (as Table 5 runs MTGAN), then with it: the baseline comes from
  # the shared MTGAN run, which must then score the proposer's detections it wrote.
  for rows in ("mtgan_resnet_50,ensemble", "baseline_proposer,mtgan_resnet_50,ensemble"):
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "experiments", "run.py"), "--table=mtgan6",
         f"--rows={rows}", "--seeds=0", "--steps=1", "--pretrain_steps=1",
         "--proposer=windows",
         f"--coco_dir={data}", f"--data_dir={tmp_path / 'tfds'}",
         f"--runs_dir={tmp_path / 'runs'}", f"--results_dir={tmp_path / 'results'}"],
        env=env, capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
  table = (tmp_path / "results" / "tablemtgan6_demo.md").read_text().splitlines()
  assert "| row | AP | AP50 | AP75 | APs | APm | APl |" in table[5]
  cells = lambda name: [c.strip() for c in next(
      line for line in table if line.startswith(f"| {name} |")).split("|")[2:8]]
  # The proposer's detections, scored here with pycocotools directly.
  runs = tmp_path / "runs" / "mtgan_coco_demo_windows"
  baseline = runs / "mtgan_r50" / "baseline"
  detections = [d for p in sorted(baseline.rglob("*.json")) if p.name != "coco_results.json"
                for d in json.loads(p.read_text())]
  gt = COCO(str(data / "annotations" / "instances_val2017.json"))
  evaluator = COCOeval(gt, gt.loadRes(detections), "bbox")
  evaluator.evaluate()
  evaluator.accumulate()
  evaluator.summarize()
  expected = ["-" if v < 0 else f"{v:.3f}" for v in evaluator.stats[:6]]
  assert cells("Baseline (proposer)") == expected, (cells("Baseline (proposer)"), expected)
  assert (runs / "mtgan_r50" / "export").is_dir()
  assert not (runs / "ensemble" / "export").exists()
  assert any((runs / "ensemble" / "results").rglob("*.json"))
  assert cells("Ensemble") == cells("MTGAN (ResNet-50)")

def test_table2_baselines_each_have_their_proposer_and_their_rows_follow():
  """--baseline_proposers gives Table 2's second baseline its own detector: that row, the row
  compared with it (MTGAN ResNet-101) and their run folders use it; the others --proposer.
  In a subprocess: run.py defines its flags on absl's global FLAGS."""
  script = f"""
import os, sys
sys.path.insert(0, os.path.join({REPO!r}, "experiments"))
sys.argv = ["run.py"]
import run
from absl import flags
flags.FLAGS(["run.py", "--table=mtgan2", "--proposer=windows",
             "--baseline_proposers=Mask R-CNN R101-FPN (baseline)=coco_results:m.json",
             "--runs_dir=R"])
rows = {{r.name: r for r in run.table_rows_of("mtgan2")}}
inputs = run.Inputs("coco", "tfds", "", "windows")
for name in rows:
  got = run.inputs_of(rows[name], inputs)
  print(name, got.proposer, got.data_dir)
print(run.run_dir("mtgan2", "MTGAN (ResNet-101)", 1))
print(run.run_dir("mtgan2", "MTGAN (ResNet-50)", 0))
flags.FLAGS.unparse_flags()
flags.FLAGS(["run.py", "--table=mtgan2", "--baseline_proposers=MTGAN (ResNet-50)=windows"])
try:
  run.baseline_proposers()
except Exception as e:
  print("refused:", e)
"""
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=120, cwd=REPO)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = done.stdout.splitlines()
  assert lines[:4] == [
      "Faster R-CNN R50-C4 (baseline) windows tfds",
      "MTGAN (ResNet-50) windows tfds",
      # Demo scale: another proposer's training RoIs go to their own TFDS folder.
      "Mask R-CNN R101-FPN (baseline) coco_results:m.json tfds_coco_results_m_json",
      "MTGAN (ResNet-101) coco_results:m.json tfds_coco_results_m_json"]
  assert lines[4] == os.path.join("R", "mtgan_coco_demo_coco_results_m_json", "mtgan_r101_seed1")
  assert lines[5] == os.path.join("R", "mtgan_coco_demo_windows", "mtgan_r50")
  assert lines[6].startswith("refused: --baseline_proposers: 'MTGAN (ResNet-50)=windows' is not "
                             "ROW=SPEC with ROW a baseline row of table mtgan2")


def test_a_group_beside_its_proposers_data_is_stamped_and_an_unstamped_run_is_version_1(tmp_path):
  """The sensitivity study writes a proposer's data (wider/, tfds/) into its group before the first
  run: that is not a run of an older demo version. A run (a folder with config.json) in a group
  without a stamp was made before stamps existed, from version 1."""
  data = tmp_path / "demo"
  demo.make_demo_dataset(data, train_images=0, val_images=1, test_images=0, seed=5)
  fresh, legacy = tmp_path / "fresh", tmp_path / "legacy"
  for folder in (fresh / "wider", fresh / "tfds", legacy / "seed0"):
    folder.mkdir(parents=True)
  (legacy / "seed0" / "config.json").write_text("{}")
  code = ("import sys\nsys.path.insert(0, sys.argv[1])\nimport run\n"
          "for group in sys.argv[3:]:\n"
          "  try:\n    run.check_demo_data(group, sys.argv[2]); print('ok')\n"
          "  except Exception as e:\n    print('refused', e)\n")
  done = subprocess.run(
      [sys.executable, "-c", code, os.path.join(REPO, "experiments"), str(data), str(fresh),
       str(legacy)], capture_output=True, text=True, timeout=120, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
  lines = done.stdout.splitlines()
  assert lines[0] == "ok", done.stderr[-2000:]
  assert json.loads((fresh / "demo_data.json").read_text())["version"] == demo.DATA_VERSION
  assert lines[1].startswith(f"refused {legacy}: its runs were made from version 1 ")
  assert not (legacy / "demo_data.json").exists()


def load_ledger():
  return load_experiments_module("ledger")


def test_ledger_fingerprint_covers_config_data_version_and_every_input_byte(tmp_path):
  ledger = load_ledger()
  proposals = tmp_path / "proposals" / "val" / "event"
  proposals.mkdir(parents=True)
  (proposals / "a.txt").write_text("a\n1\n0 0 10 10 0.9\n")
  split = tmp_path / "gt.txt"
  split.write_text("a.jpg\n0\n0 0 0 0 0 0 0 0 0 0\n")
  inputs = [str(tmp_path / "proposals"), str(split)]
  parts = ledger.fingerprint_parts('{"seed": 0}', 2, inputs)
  base = ledger.digest(parts)
  assert base == ledger.fingerprint('{"seed": 0}', 2, list(reversed(inputs)))  # order-free
  assert base != ledger.fingerprint('{"seed": 1}', 2, inputs)
  assert base != ledger.fingerprint('{"seed": 0}', 1, inputs)
  (proposals / "a.txt").write_text("a\n1\n0 0 10 10 0.8\n")  # one score changed
  changed_parts = ledger.fingerprint_parts('{"seed": 0}', 2, inputs)
  assert ledger.digest(changed_parts) != base
  (proposals / "a.txt").rename(proposals / "b.txt")  # same bytes, another image
  assert ledger.fingerprint('{"seed": 0}', 2, inputs) not in (base, ledger.digest(changed_parts))
  # Records: a lookup needs the same fingerprint and every label asked for, else says why not.
  path = str(tmp_path / "results" / "run_ledger_demo.json")
  assert ledger.lookup(path, "t/ours", parts, ["ours"]) == (None, "not recorded")
  entry = ledger.record(path, "t/ours", parts, {"ours": {"easy": 0.5}}, REPO)
  assert entry["machine"] and entry["date"]
  found, _ = ledger.lookup(path, "t/ours", parts, ["ours"])
  assert found["metrics"] == {"ours": {"easy": 0.5}}
  assert ledger.lookup(path, "t/ours", changed_parts, ["ours"]) == (
      None, "recorded with another inputs")
  assert ledger.lookup(path, "t/ours", parts, ["ours", "mtcnn"]) == (
      None, "recorded without mtcnn")
  assert ledger.lookup(path, "t/ours_seed1", parts, ["ours"])[0] is None
  assert json.loads(open(path).read())["t/ours"]["fingerprint"] == base
  # The machine: the CPU model and its widest extension (AMD EPYC has been AVX2 and AVX-512 here).
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f "
                     "avx512_bf16\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu\n")
  assert ledger.machine(str(cpuinfo)) == "AMD EPYC (avx512_bf16)"
  cpuinfo.write_text("model name\t: Some CPU\nflags\t\t: fpu sse2\n")
  assert ledger.machine(str(cpuinfo)) == "Some CPU"


def test_a_row_seed_in_the_ledger_is_not_trained_again(tmp_path):
  """A trained row whose seed is recorded with the fingerprint of its config and inputs comes
  from the ledger: no run directory, no training (there is no training data here, so a training
  attempt would fail), its numbers in the table and a provenance line; once a proposal changes,
  the record no longer matches."""
  data = tmp_path / "demo"
  demo_with_perfect_proposals(data, val_images=2)
  results, runs = tmp_path / "results", tmp_path / "runs"
  args = ["--table=2", "--seeds=0", f"--wider_dir={data}", f"--data_dir={tmp_path / 'none'}",
          f"--runs_dir={runs}", f"--results_dir={results}"]
  script = f"""
import json, os, sys
sys.path.insert(0, os.path.join({REPO!r}, "experiments"))
sys.argv = ["run.py"]
import run
from absl import flags
flags.FLAGS(["run.py", *{args!r}])
inputs = run.Inputs({str(data)!r}, "none", {str(data / "proposals" / "val")!r})
print(json.dumps(run.ledger_fingerprint("table2/ours.cfg", 0, inputs)))
"""
  fingerprint = lambda: json.loads(subprocess.run(
      [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout)
  recorded = fingerprint()
  assert recorded["data_version"] == demo.DATA_VERSION
  ledger = load_ledger()
  ledger.record(str(results / "run_ledger_demo.json"),
                os.path.join("table2_demo", "ours_mse_adv_cls"), recorded, {"ours": {"easy": 0.5, "medium": 0.625, "hard": 0.75}}, REPO)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
  (tmp_path / "none").mkdir()
  done = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "run.py"), *args,
       "--rows=baseline_proposer,ours_mse_adv_cls"],
      env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
  assert done.returncode == 0, done.stderr[-3000:]
  assert not (runs / "table2_demo" / "ours_mse_adv_cls").exists()
  table = (results / "table2_demo.md").read_text()
  assert "| Ours (MSE + adv + cls) | 0.500 | 0.625 | 0.750 |" in table
  assert "Trained row-seeds: 1, 1 of them taken from the run ledger" in table
  # Ours - baseline (AP 1.0 on ground-truth proposals), one seed.
  assert "| Ours (MSE + adv + cls) | Baseline (proposer) | -0.500 one seed |" in table
  report = json.loads((results / "table2_demo.json").read_text())
  assert report["runs"][os.path.join("table2_demo", "ours_mse_adv_cls")]["reused"] is True
  # One proposal score changed: another fingerprint, the record is not this run's any more.
  first = sorted((data / "proposals" / "val").rglob("*.txt"))[0]
  lines = first.read_text().splitlines()  # name, count, then "x y w h score" per box
  lines[2] = lines[2].rsplit(" ", 1)[0] + " 0.99"
  first.write_text("\n".join(lines) + "\n")
  now = fingerprint()
  assert (now["config"], now["data_version"]) == (recorded["config"], recorded["data_version"])
  assert now["inputs"] != recorded["inputs"]
