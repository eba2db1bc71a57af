"""Runs every row of a paper table and writes experiments/results/table<N>_<scale>.{md,json}.

  python experiments/run.py --table=2 --scale=demo      # minutes per row and seed on 2 CPU cores
  python experiments/run.py --table=sensitivity --scale=demo
  python experiments/run.py --table=3 --scale=paper --wider_dir=WIDER --data_dir=TFDS_DIR

Each row = `tinyfaces-train --flagfile=<row>.cfg` (+ experiments/demo_scale.cfg at demo scale,
which also makes training deterministic) -> export -> detect the val split on the baseline's
proposals -> official WIDER evaluation, once per seed (`--seeds`, five by default). Each row is
compared with its reference row (table_rows.py): the paired difference over seeds with a 95 %
t interval, and whether it shows the paper's claim. The baseline row is the proposer's own
scores. Rows run in subprocesses, so each gets a clean TF runtime; a finished row and seed (its
eval/wider_ap.json exists) is not re-run.

`--table=sensitivity` is the journal's section 4.3 study: for each proposer (MTCNN, the LBP
cascade, sliding windows) its proposals cut the training RoIs and are re-scored at test time;
the table gives the proposer's AP, ours, and the proposer's recall by face height.
"""
import dataclasses
import math
import os
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging

# experiments/table_rows.py, beside this script.
import table_rows
from table_rows import SETTINGS, slug

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BASELINE, OURS = "baseline", "ours"  # labels in each row's eval/wider_ap.json
SENSITIVITY = "sensitivity"
FIG4_CONTEXTS = (1.0, 1.5, 2.0, 3.0, 4.0)  # the journal's Fig. 4 / Table 3 factors

FLAGS = flags.FLAGS
flags.DEFINE_enum("table", "2", [*table_rows.TABLES, SENSITIVITY],
                  "Journal Table 2/3, MTGAN Table 4, CVPR18, or the journal's sensitivity study.")
flags.DEFINE_enum("scale", "demo", ["demo", "paper"], "demo: shrunk models/schedule, demo data.")
flags.DEFINE_string("wider_dir", "data/demo", "WIDER-layout root (demo data by default).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir with wider_face_rois built (default: the "
                    "demo run's runs/demo/tfds at demo scale). The sensitivity study builds its "
                    "own per proposer under --runs_dir.")
flags.DEFINE_string("proposals_dir", None, "Baseline proposals of the val split (WIDER result "
                    "files; default <wider_dir>/proposals/val as `make demo` writes them).")
flags.DEFINE_string("runs_dir", "runs/experiments", "Where each row's run directory goes.")
flags.DEFINE_string("results_dir", os.path.join(HERE, "results"), "Where table<N>_<scale>.md, "
                    ".json and the figures go.")
flags.DEFINE_list("rows", None, "Only these rows (slugs of the row names; proposers for the "
                  "sensitivity study).")
flags.DEFINE_integer("steps", None, "Override the GAN steps of every row.")
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Train every row once per seed; the table "
                  "gives mean +- sample sd and the paired difference to the reference row.")


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
    if flagfile in table_rows.DEMO_EXTRA:
      files.append(os.path.join(HERE, table_rows.DEMO_EXTRA[flagfile]))
  return files


def row_config(flagfile):
  """The ExperimentConfig a row trains with, parsed by tinyfaces-train's own flags."""
  from tinyfaces_tf.cli import config_flags
  flag_values = flags.FlagValues()
  config_flags.define_config_flags(flag_values=flag_values)
  flag_values(["run.py", *(f"--flagfile={p}" for p in row_flagfiles(flagfile))])
  return config_flags.config_from_flags(flag_values)


@dataclasses.dataclass(frozen=True)
class Inputs:
  """Where a row's data comes from."""
  wider_dir: str      # WIDER layout: images, ground truth
  data_dir: str       # TFDS data_dir of the training RoIs
  proposals_dir: str  # the val split's proposals (result files)

  @property
  def gt_dir(self):
    return ground_truth_dir(self.wider_dir)


def ground_truth_dir(wider_dir):
  """eval_tools/ground_truth of a WIDER root, or None."""
  from tinyfaces_tf.data import wider_face
  return wider_face.WiderFace(wider_dir).ground_truth_dir if os.path.isdir(wider_dir) else None


def train_and_evaluate(flagfile, seed, out, inputs: Inputs, baseline_label=None):
  """Trains, exports, detects and evaluates one row with one seed; returns {label: AP dict}
  (ours, and the proposer's own scores as ``baseline_label`` if given)."""
  from tinyfaces_tf.evaluation import report
  eval_dir = os.path.join(out, "eval")
  if os.path.exists(os.path.join(eval_dir, report.AP_FILE)):
    return report.read_aps(eval_dir)
  if FLAGS.scale == "demo" or FLAGS.table == SENSITIVITY:
    from tinyfaces_tf import task as task_lib
    task_lib.Task(row_config(flagfile), inputs.wider_dir).build_rois(inputs.data_dir)
  train_args = [f"--flagfile={path}" for path in row_flagfiles(flagfile)]
  if FLAGS.steps:
    train_args.append(f"--config.train.steps={FLAGS.steps}")
  train_args.append(f"--config.train.seed={seed}")
  _python("tinyfaces_tf.cli.train", *train_args, f"--data_dir={inputs.data_dir}",
          f"--out_dir={out}", "--export")
  results = os.path.join(out, "results")
  _python("tinyfaces_tf.cli.detect", f"--model={os.path.join(out, 'export')}",
          f"--wider_dir={inputs.wider_dir}", "--split=val",
          f"--proposer=results:{inputs.proposals_dir}", f"--results_dir={results}")
  runs = {OURS: results}
  if baseline_label:
    runs = {baseline_label: inputs.proposals_dir, **runs}
  return report.evaluate_dirs(runs, inputs.gt_dir, eval_dir)


def run_dir(table, name, seed):
  return os.path.join(FLAGS.runs_dir, f"table{table}_{FLAGS.scale}",
                      slug(name) if seed == 0 else f"{slug(name)}_seed{seed}")


def run_table_row(row, seed, inputs: Inputs):
  """AP dict of one row and seed of a paper table."""
  out = run_dir(FLAGS.table, row.name, seed)
  if row.flagfile is None:  # the baseline: the proposer's own scores
    from tinyfaces_tf.evaluation import report
    path = os.path.join(out, "eval", report.AP_FILE)
    if not os.path.exists(path):
      report.evaluate_dirs({BASELINE: inputs.proposals_dir}, inputs.gt_dir,
                           os.path.dirname(path))
    return report.read_aps(os.path.dirname(path))[BASELINE]
  return train_and_evaluate(row.flagfile, seed, out, inputs)[OURS]


def fmt(value):
  missing = value is None or (isinstance(value, float) and math.isnan(value))
  return "-" if missing else f"{value:.3f}"


def mean_cell(aps, setting):
  mean, sd = table_rows.mean_sd([ap[setting] for ap in aps])
  return fmt(mean) if sd is None else f"{mean:.3f} ± {sd:.3f}"


def difference_cell(d):
  if d.low is None:
    return f"{d.mean:+.3f}"
  return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def compare_rows(rows, aps_by_name):
  """{row name: {setting: (PairedDifference, verdict)}} for every row with a reference."""
  by_name = {row.name: row for row in rows}
  comparisons = {}
  for row in rows:
    if row.reference not in aps_by_name or row.name not in aps_by_name:
      continue
    reference = by_name[row.reference]
    comparisons[row.name] = {}
    for i, setting in enumerate(SETTINGS):
      d = table_rows.paired_difference([ap[setting] for ap in aps_by_name[row.name]],
                                       [ap[setting] for ap in aps_by_name[row.reference]])
      comparisons[row.name][setting] = (d, table_rows.verdict(
          d, table_rows.claim_sign(row, reference, i)))
  return comparisons


def write_report(path, lines, payload):
  """Writes the markdown ``lines`` to ``path`` and ``payload`` as JSON beside it; prints them."""
  from tinyfaces_tf import atomic
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    f.write("\n".join(lines) + "\n")
  atomic.write_json(os.path.splitext(path)[0] + ".json", payload)
  print("\n".join(lines))


def write_table(rows, aps_by_name, seeds, path):
  """The markdown table, the paired comparisons, and the same as JSON beside it."""
  comparisons = compare_rows(rows, aps_by_name)
  seed_text = ",".join(map(str, seeds))
  lines = [f"# Table {FLAGS.table} at {FLAGS.scale} scale", "",
           f"WIDER-layout val AP (official protocol) on `{FLAGS.wider_dir}`; paper numbers are "
           f"WIDER FACE val. Command: `python experiments/run.py --table={FLAGS.table} "
           f"--scale={FLAGS.scale} --seeds={seed_text}`.",
           f"Trained rows: mean ± sample sd over seeds {seed_text}; the baseline (the "
           "proposer's own scores) has one value.", "",
           "| row | Easy | Medium | Hard | paper Easy | paper Medium | paper Hard |",
           "|---|---|---|---|---|---|---|"]
  for row in rows:
    if row.name in aps_by_name:
      aps = aps_by_name[row.name]
      lines.append(f"| {row.name} | " + " | ".join(mean_cell(aps, s) for s in SETTINGS) + " | "
                   + " | ".join(fmt(p) for p in row.paper) + " |")
  lines += ["", "Paired differences row - reference over the seeds (mean "
            f"[{table_rows.CONFIDENCE:.0%} t interval]; a one-sample t test of the per-seed "
            "differences), and whether each shows the paper's direction (shown: the interval "
            "excludes 0 on the paper's side; "
            "reversed: on the other side; not shown: it includes 0).", "",
            "| row | reference | Δ Easy | Δ Medium | Δ Hard | paper Δ Easy/Medium/Hard |",
            "|---|---|---|---|---|---|"]
  by_name = {row.name: row for row in rows}
  for name, per_setting in comparisons.items():
    row, reference = by_name[name], by_name[by_name[name].reference]
    paper = "/".join("-" if a is None or b is None else f"{a - b:+.3f}"
                     for a, b in zip(row.paper, reference.paper))
    lines.append(f"| {name} | {reference.name} | " + " | ".join(
        f"{difference_cell(d)} {v}" for d, v in per_setting.values()) + f" | {paper} |")
  write_report(path, lines, {
      "table": FLAGS.table, "scale": FLAGS.scale, "seeds": seeds,
      "rows": [{"name": row.name, "paper": row.paper, "reference": row.reference,
                "aps": aps_by_name.get(row.name)} for row in rows],
      "comparisons": {name: {s: {**dataclasses.asdict(d), "verdict": v}
                             for s, (d, v) in per_setting.items()}
                      for name, per_setting in comparisons.items()}})


def write_context_figure(inputs: Inputs, path):
  """The journal's Fig. 4: the first valid val face of 16-32 px at every context factor."""
  import numpy as np
  from tinyfaces_tf import roi_crop
  from tinyfaces_tf import viz
  from tinyfaces_tf.data import wider_face
  dataset = wider_face.WiderFace(inputs.wider_dir)
  for annotation in dataset.annotations("val"):
    boxes = annotation.boxes_xyxy[annotation.valid]
    heights = boxes[:, 3] - boxes[:, 1]
    medium = np.flatnonzero((heights >= 16) & (heights < 32))
    if len(medium):
      image, box = dataset.read_image("val", annotation.name), boxes[medium[:1]]
      break
  else:
    logging.warning("no valid 16-32 px val face in %s: Fig. 4 not drawn", inputs.wider_dir)
    return
  crops = [roi_crop.crop_rois_with_context(image, box, roi_crop.CropConfig(context=m))
           for m in FIG4_CONTEXTS]
  viz.plot_context_crops(FIG4_CONTEXTS, np.concatenate([hr for hr, _ in crops]),
                         np.concatenate([lr for _, lr in crops]), path)


def run_paper_table(seeds, inputs: Inputs):
  rows = table_rows.TABLES[FLAGS.table]
  wanted = {slug(row) for row in FLAGS.rows or []}
  selected = [row for row in rows if not wanted or slug(row.name) in wanted]
  aps_by_name = {}
  for row in selected:
    aps_by_name[row.name] = []
    for seed in ([0] if row.flagfile is None else seeds):
      logging.info("=== %s (seed %d) ===", row.name, seed)
      aps_by_name[row.name].append(run_table_row(row, seed, inputs))
      logging.info("%s seed %d: easy %.3f medium %.3f hard %.3f", row.name, seed,
                   *(aps_by_name[row.name][-1][s] for s in SETTINGS))
  path = os.path.join(FLAGS.results_dir, f"table{FLAGS.table}_{FLAGS.scale}.md")
  write_table(selected, aps_by_name, seeds, path)
  if FLAGS.table == "3":
    write_context_figure(inputs, os.path.join(FLAGS.results_dir,
                                              f"table3_{FLAGS.scale}_fig4_context.png"))


def proposer_wider_dir(proposer, root):
  """A WIDER root that is --wider_dir with ``proposer``'s proposals: links to its images, split
  files and ground truth, and proposals/<split> written by `tinyfaces-data proposals`
  (resumable: finished images are skipped)."""
  from tinyfaces_tf.data import wider_face
  wider = os.path.join(root, "wider")
  os.makedirs(wider, exist_ok=True)
  source = os.path.abspath(FLAGS.wider_dir)
  for entry in sorted(os.listdir(source)):
    link = os.path.join(wider, entry)
    if entry != wider_face.PROPOSALS_DIR and not os.path.lexists(link):
      os.symlink(os.path.join(source, entry), link)
  dataset = wider_face.WiderFace(wider)
  for split in ("train", "val"):
    _python("tinyfaces_tf.cli.data", "proposals", f"--wider_dir={wider}", f"--split={split}",
            f"--proposer={proposer}", f"--proposals_dir={dataset.proposals_dir(split)}")
  return wider


def run_sensitivity(seeds):
  """The journal's section 4.3 study, one row per proposer."""
  from tinyfaces_tf.data import result_files
  from tinyfaces_tf.data import wider_face
  from tinyfaces_tf.evaluation import recall as recall_lib
  from tinyfaces_tf.evaluation import report
  proposers = FLAGS.rows or table_rows.SENSITIVITY_PROPOSERS
  unknown = [p for p in proposers if p not in table_rows.SENSITIVITY_PROPOSERS]
  if unknown:
    raise app.UsageError(f"--rows: {unknown}; proposers: {table_rows.SENSITIVITY_PROPOSERS}")
  rows, curves_dirs = [], {}
  for proposer in proposers:
    root = os.path.join(FLAGS.runs_dir, f"{SENSITIVITY}_{FLAGS.scale}", proposer)
    dataset = wider_face.WiderFace(proposer_wider_dir(proposer, root))
    inputs = Inputs(dataset.root, os.path.join(root, "tfds"), dataset.proposals_dir("val"))
    aps = [train_and_evaluate(table_rows.SENSITIVITY_FLAGFILE, seed,
                              os.path.join(root, f"seed{seed}"), inputs, baseline_label=proposer)
           for seed in seeds]
    recall = recall_lib.recall_by_height(dataset.annotations("val"),
                                         result_files.read_result_dir(inputs.proposals_dir))
    rows.append((proposer, aps[0][proposer], [ap[OURS] for ap in aps], recall))
    curves_dirs[proposer] = inputs.proposals_dir
    curves_dirs[f"ours on {proposer}"] = os.path.join(root, f"seed{seeds[0]}", "results")
  figure_dir = os.path.join(FLAGS.results_dir, f"{SENSITIVITY}_{FLAGS.scale}_pr")
  report.evaluate_dirs(curves_dirs, ground_truth_dir(FLAGS.wider_dir), figure_dir)
  write_sensitivity_table(rows, seeds, os.path.join(FLAGS.results_dir,
                                                    f"{SENSITIVITY}_{FLAGS.scale}.md"))


def write_sensitivity_table(rows, seeds, path):
  from tinyfaces_tf.evaluation import recall as recall_lib
  seed_text = ",".join(map(str, seeds))
  bins = [recall_lib.bin_label(*b) for b in recall_lib.HEIGHT_BINS] + ["all"]
  lines = [f"# Sensitivity to the baseline detector (journal 4.3) at {FLAGS.scale} scale", "",
           f"Each proposer cuts the training RoIs and proposes at test time; ours = "
           f"`{table_rows.SENSITIVITY_FLAGFILE}` (+ demo_scale.cfg), seeds {seed_text}. Paper "
           "columns: the journal's default baseline (beside MTCNN) and its weaker one (beside "
           "the LBP cascade). Command: `python experiments/run.py --table=sensitivity "
           f"--scale={FLAGS.scale} --seeds={seed_text}`. PR curves: "
           f"`{SENSITIVITY}_{FLAGS.scale}_pr/pr_curves.png`.", "",
           "| proposer | proposer E/M/H | ours E/M/H | Δ ours - proposer E / M / H (95% t) | "
           "paper proposer | paper ours |", "|---|---|---|---|---|---|"]
  payload = []
  for proposer, own, ours, recall in rows:
    diffs = [table_rows.paired_difference([ap[s] for ap in ours], [own[s]]) for s in SETTINGS]
    paper = table_rows.SENSITIVITY_PAPER.get(proposer, ((None,) * 3, (None,) * 3))
    lines.append(f"| {proposer} | {'/'.join(fmt(own[s]) for s in SETTINGS)} | "
                 f"{' / '.join(mean_cell(ours, s) for s in SETTINGS)} | "
                 f"{' / '.join(difference_cell(d) for d in diffs)} | "
                 f"{'/'.join(fmt(v) for v in paper[0])} | {'/'.join(fmt(v) for v in paper[1])} |")
    payload.append({"proposer": proposer, "proposer_ap": own, "ours_ap": ours, "recall": recall,
                    "difference": {s: dataclasses.asdict(d) for s, d in zip(SETTINGS, diffs)}})
  lines += ["", f"Recall (IoU >= {recall_lib.RECALL_IOU}, every proposal) on the val split by "
            "face height:", "", "| proposer | " + " | ".join(bins) + " |",
            "|---|" + "---|" * len(bins)]
  for proposer, _, _, recall in rows:
    lines.append(f"| {proposer} | " + " | ".join(
        f"{fmt(recall[b]['recall'])} ({recall[b]['faces']})" for b in bins) + " |")
  write_report(path, lines, {"scale": FLAGS.scale, "seeds": seeds, "rows": payload})


def main(argv):
  del argv
  try:
    seeds = [int(seed) for seed in FLAGS.seeds]
  except ValueError:
    raise app.UsageError(f"--seeds: integers expected, got {FLAGS.seeds}")
  if not seeds:
    raise app.UsageError("--seeds: give at least one seed")
  if ground_truth_dir(FLAGS.wider_dir) is None:
    raise app.UsageError(f"--wider_dir: no eval_tools/ground_truth under {FLAGS.wider_dir} (run "
                         "`make demo` first at demo scale)")
  if FLAGS.table == SENSITIVITY:
    return run_sensitivity(seeds)
  data_dir = FLAGS.data_dir or ("runs/demo/tfds" if FLAGS.scale == "demo" else None)
  if not data_dir:
    raise app.UsageError("--data_dir (a built wider_face_rois) is required at paper scale")
  proposals_dir = FLAGS.proposals_dir or os.path.join(FLAGS.wider_dir, "proposals", "val")
  for path, what in ((data_dir, "--data_dir"), (proposals_dir, "--proposals_dir")):
    if not os.path.exists(path):
      raise app.UsageError(f"{what}: {path} does not exist (run `make demo` first at demo scale)")
  known = {slug(row.name) for row in table_rows.TABLES[FLAGS.table]}
  unknown = [row for row in FLAGS.rows or [] if slug(row) not in known]
  if unknown:
    raise app.UsageError(f"--rows: {unknown} not in table {FLAGS.table}; rows: {sorted(known)}")
  run_paper_table(seeds, Inputs(FLAGS.wider_dir, data_dir, proposals_dir))


if __name__ == "__main__":
  app.run(main)
