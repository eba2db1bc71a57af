"""Runs every row of a paper table and writes experiments/results/table<N>_<scale>.md.

  python experiments/run.py --table=2 --scale=demo      # here, minutes per row on 2 CPU cores
  python experiments/run.py --table=3 --scale=paper --wider_dir=WIDER --data_dir=TFDS_DIR

Each row = `tinyfaces-train --flagfile=<row>.cfg` (+ experiments/demo_scale.cfg at demo scale)
-> export -> detect the val split on the baseline's proposals -> official WIDER evaluation.
The baseline row is the proposer's own scores on the same images. Rows run in subprocesses, so
each gets a clean TF runtime; a finished row (its eval/wider_ap.json exists) is not re-run.
A row's config is read through the same flags as tinyfaces-train (cli/config_flags.py).
"""
import os
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging

# experiments/table_rows.py, beside this script.
from table_rows import DEMO_EXTRA, TABLES, mean_sd, slug

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BASELINE, OURS = "baseline", "ours"  # labels in each row's eval/wider_ap.json

FLAGS = flags.FLAGS
flags.DEFINE_enum("table", "2", ["2", "3", "4", "cvpr18"], "Journal Table 2/3, MTGAN Table 4, CVPR18.")
flags.DEFINE_enum("scale", "demo", ["demo", "paper"], "demo: shrunk models/schedule, demo data.")
flags.DEFINE_string("wider_dir", "data/demo", "WIDER-layout root (demo data by default).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir with wider_face_rois built (default: the "
                    "demo run's runs/demo/tfds at demo scale).")
flags.DEFINE_string("proposals_dir", None, "Baseline proposals of the val split (WIDER result "
                    "files; default <wider_dir>/proposals/val as `make demo` writes them).")
flags.DEFINE_string("runs_dir", "runs/experiments", "Where each row's run directory goes.")
flags.DEFINE_string("results_dir", os.path.join(HERE, "results"), "Where table<N>_<scale>.md goes.")
flags.DEFINE_list("rows", None, "Only these rows (names as in ROWS).")
flags.DEFINE_integer("steps", None, "Override the GAN steps of every row.")
flags.DEFINE_list("seeds", ["0"], "Train every row once per seed; the table gives mean +- sample "
                  "standard deviation. Seed 0 reuses a finished single-seed run.")

def _python(module, *args):
  """Runs a tinyfaces_tf CLI in the caller's working directory, so relative path flags mean what
  they mean here (REPO on PYTHONPATH keeps an uninstalled checkout working)."""
  cmd = [sys.executable, "-m", module, *args]
  logging.info("$ %s", " ".join(cmd))
  env = dict(os.environ, PYTHONPATH=os.pathsep.join(
      p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
  subprocess.run(cmd, check=True, env=env)


def row_flagfiles(flagfile):
  """The flagfiles of a row at the chosen scale, in order."""
  files = [os.path.join(HERE, flagfile)]
  if FLAGS.scale == "demo":
    files.append(os.path.join(HERE, "demo_scale.cfg"))
    if flagfile in DEMO_EXTRA:
      files.append(os.path.join(HERE, DEMO_EXTRA[flagfile]))
  return files


def row_config(flagfile):
  """The ExperimentConfig a row trains with, parsed by tinyfaces-train's own flags."""
  from tinyfaces_tf.cli import config_flags
  flag_values = flags.FlagValues()
  config_flags.define_config_flags(flag_values=flag_values)
  flag_values(["run.py", *(f"--flagfile={p}" for p in row_flagfiles(flagfile))])
  return config_flags.config_from_flags(flag_values)


def ensure_demo_rois(flagfile, data_dir):
  """At demo scale, builds the RoIs a row's config needs from the demo data."""
  from tinyfaces_tf import task as task_lib
  task_lib.Task(row_config(flagfile), FLAGS.wider_dir).build_rois(data_dir)


def run_row(name, flagfile, data_dir, proposals_dir, gt_dir, seed=0):
  """Trains, exports, detects and evaluates one row with one seed; returns its AP dict."""
  run_name = slug(name) if seed == 0 else f"{slug(name)}_seed{seed}"
  out = os.path.join(FLAGS.runs_dir, f"table{FLAGS.table}_{FLAGS.scale}", run_name)
  from tinyfaces_tf.evaluation import report
  eval_dir = os.path.join(out, "eval")
  label = BASELINE if flagfile is None else OURS
  if os.path.exists(os.path.join(eval_dir, report.AP_FILE)):
    return report.read_aps(eval_dir)[label]
  if flagfile is None:  # the baseline: the proposer's own scores
    return report.evaluate_dirs({BASELINE: proposals_dir}, gt_dir, eval_dir)[BASELINE]
  if FLAGS.scale == "demo":
    ensure_demo_rois(flagfile, data_dir)
  train_args = [f"--flagfile={path}" for path in row_flagfiles(flagfile)]
  if FLAGS.steps:
    train_args.append(f"--config.train.steps={FLAGS.steps}")
  train_args.append(f"--config.train.seed={seed}")
  _python("tinyfaces_tf.cli.train", *train_args, f"--data_dir={data_dir}", f"--out_dir={out}",
          "--export")
  _python("tinyfaces_tf.cli.detect", f"--model={os.path.join(out, 'export')}",
          f"--wider_dir={FLAGS.wider_dir}", "--split=val",
          f"--proposer=results:{proposals_dir}", f"--results_dir={os.path.join(out, 'results')}")
  _python("tinyfaces_tf.cli.evaluate", f"--results={os.path.join(out, 'results')}",
          f"--gt_dir={gt_dir}", f"--out={eval_dir}", f"--label={OURS}")
  return report.read_aps(eval_dir)[OURS]


def write_table(rows, path, seeds):
  """rows: (name, [AP dict per seed], paper triple); seeds: the int seeds trained."""
  fmt = lambda v: "-" if v is None else f"{v:.3f}"

  def cell(aps, setting):
    mean, sd = mean_sd([ap[setting] for ap in aps])
    return fmt(mean) if sd is None else f"{mean:.3f} ± {sd:.3f}"

  seed_flag = "" if seeds == [0] else f" --seeds={','.join(map(str, seeds))}"
  lines = [f"# Table {FLAGS.table} at {FLAGS.scale} scale",
           "",
           f"WIDER-layout val AP (official protocol) on `{FLAGS.wider_dir}`; paper numbers are "
           "WIDER FACE val. Command: `python experiments/run.py --table="
           f"{FLAGS.table} --scale={FLAGS.scale}{seed_flag}`."]
  if len(seeds) > 1:
    lines.append(f"Trained rows: mean ± sample sd over seeds {', '.join(map(str, seeds))}; the "
                 "baseline (the proposer's own scores) is deterministic.")
  lines += ["",
            "| row | Easy | Medium | Hard | paper Easy | paper Medium | paper Hard |",
            "|---|---|---|---|---|---|---|"]
  for name, aps, paper in rows:
    lines.append(f"| {name} | {cell(aps, 'easy')} | {cell(aps, 'medium')} | {cell(aps, 'hard')} | "
                 f"{fmt(paper[0])} | {fmt(paper[1])} | {fmt(paper[2])} |")
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")


def main(argv):
  del argv
  data_dir = FLAGS.data_dir or ("runs/demo/tfds" if FLAGS.scale == "demo" else None)
  if not data_dir:
    raise app.UsageError("--data_dir (a built wider_face_rois) is required at paper scale")
  proposals_dir = FLAGS.proposals_dir or os.path.join(FLAGS.wider_dir, "proposals", "val")
  gt_dir = os.path.join(FLAGS.wider_dir, "eval_tools", "ground_truth")
  for path, what in ((data_dir, "--data_dir"), (proposals_dir, "--proposals_dir"),
                     (gt_dir, "--wider_dir ground truth")):
    if not os.path.exists(path):
      raise app.UsageError(f"{what}: {path} does not exist (run `make demo` first at demo scale)")
  try:
    seeds = [int(seed) for seed in FLAGS.seeds]
  except ValueError:
    raise app.UsageError(f"--seeds: integers expected, got {FLAGS.seeds}")
  known = {slug(name) for name, _, _ in TABLES[FLAGS.table]}
  wanted = {slug(row) for row in FLAGS.rows or []}
  unknown = [row for row in FLAGS.rows or [] if slug(row) not in known]
  if unknown:
    raise app.UsageError(f"--rows: {unknown} not in table {FLAGS.table}; rows: {sorted(known)}")
  rows = []
  for name, flagfile, paper in TABLES[FLAGS.table]:
    if wanted and slug(name) not in wanted:
      continue
    aps = []
    for seed in ([0] if flagfile is None else seeds):
      logging.info("=== %s (seed %d) ===", name, seed)
      aps.append(run_row(name, flagfile, data_dir, proposals_dir, gt_dir, seed))
      logging.info("%s seed %d: easy %.3f medium %.3f hard %.3f", name, seed, aps[-1]["easy"],
                   aps[-1]["medium"], aps[-1]["hard"])
    rows.append((name, aps, paper))
  path = os.path.join(FLAGS.results_dir, f"table{FLAGS.table}_{FLAGS.scale}.md")
  write_table(rows, path, seeds)
  print(open(path).read())


if __name__ == "__main__":
  app.run(main)
