"""Runs every row of a paper table and writes experiments/results/table<N>_<scale>.{md,json}.

  python experiments/run.py --table=2 --scale=demo      # minutes per row and seed on 2 CPU cores
  python experiments/run.py --table=sensitivity --scale=demo
  python experiments/run.py --table=3 --scale=paper --wider_dir=WIDER --data_dir=TFDS_DIR
  python experiments/run.py --table=mtgan5 --scale=demo  # MTGAN's COCO tables (after
                                                         # `make demo-coco`)
  python experiments/run.py --table=mtgan2 --scale=paper --coco_dir=COCO --data_dir=TFDS_DIR \
      --proposer=coco_results:faster_rcnn_minival2014.json \
      --baseline_proposers=mask_rcnn_r101_fpn_baseline=coco_results:mask_rcnn_minival2014.json

Each row = `tinyfaces-train --flagfile=<row>.cfg` (+ experiments/demo_scale.cfg at demo scale,
which also makes training deterministic) -> export -> detect the val split on the baseline's
proposals -> official WIDER evaluation, once per seed (`--seeds`, five by default). Each row is
compared with its reference row (table_rows.py): the paired difference over seeds with a 95 %
t interval, and whether it shows the paper's claim. The baseline row is the proposer's own
scores. Rows run in subprocesses, so each gets a clean TF runtime; a finished row and seed (its
eval/wider_ap.json exists) is not re-run. Each group of runs records the demo data version it was
made from (demo_data.json); after `make demo` writes another version, the runner refuses to
reuse that group and says which folder to remove.

`--table=sensitivity` is the journal's section 4.3 study: for each proposer (MTCNN, the LBP
cascade, sliding windows) its proposals cut the training RoIs and are re-scored at test time;
the table gives the proposer's AP, ours, and the proposer's recall by face height.

The MTGAN COCO tables (`--table=mtgan2` ... `mtgan6`) run the same way on a COCO layout
(`--coco_dir`, the COCO-format demo by default) with pycocotools' AP, AP50, AP75, APs, APm, APl;
their proposer (`--proposer`: selective search at demo scale, a detector's COCO results file at
paper scale) cuts the training RoIs at demo scale and is re-scored at test time, and the
baseline row is its own detections.
"""
import collections
import dataclasses
import json
import math
import os
import subprocess
import sys

from absl import app
from absl import flags
from absl import logging

# experiments/table_rows.py and ledger.py, beside this script.
import ledger
import table_rows
from table_rows import SETTINGS, slug

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BASELINE, OURS = "baseline", "ours"  # labels in each row's eval/wider_ap.json
SENSITIVITY = "sensitivity"
FIG4_CONTEXTS = (1.0, 1.5, 2.0, 3.0, 4.0)  # the journal's Fig. 4 / Table 3 factors

FLAGS = flags.FLAGS
flags.DEFINE_enum("table", "2", [*table_rows.TABLES, *table_rows.COCO_TABLES, SENSITIVITY],
                  "Journal Table 2/3, MTGAN Table 4 (WIDER), CVPR18, MTGAN's COCO Tables 2-6 "
                  "(mtgan2 ... mtgan6), or the journal's sensitivity study.")
flags.DEFINE_enum("scale", "demo", ["demo", "paper"], "demo: shrunk models/schedule, demo data.")
flags.DEFINE_string("wider_dir", "data/demo", "WIDER-layout root (demo data by default).")
flags.DEFINE_string("data_dir", None, "TFDS data_dir with wider_face_rois built (default: the "
                    "demo run's runs/demo/tfds at demo scale). The sensitivity study builds its "
                    "own per proposer under --runs_dir.")
flags.DEFINE_string("proposals_dir", None, "Baseline proposals of the val split (WIDER result "
                    "files; default <wider_dir>/proposals/val as `make demo` writes them).")
flags.DEFINE_string("coco_dir", "data/demo_coco", "COCO-layout root of the mtgan* tables (the "
                    "COCO-format demo by default, as `make demo-coco` writes it).")
flags.DEFINE_string("proposer", "selective_search:single",
                    "mtgan* tables: the baseline proposer "
                    "(a proposer spec, e.g. coco_results:FILE of the evaluation split).")
flags.DEFINE_list("baseline_proposers", [], "mtgan* tables: ROW=SPEC pairs giving a baseline "
                  "row its own proposer (ROW: the row's slug, e.g. Table 2's "
                  "mask_rcnn_r101_fpn_baseline=coco_results:FILE); the rows compared with that "
                  "baseline use it too, every other row --proposer.")
flags.DEFINE_string("runs_dir", "runs/experiments", "Where each row's run directory goes.")
flags.DEFINE_string("results_dir", os.path.join(HERE, "results"), "Where table<N>_<scale>.md, "
                    ".json and the figures go.")
flags.DEFINE_list("rows", None, "Only these rows (slugs of the row names; proposers for the "
                  "sensitivity study).")
flags.DEFINE_integer("steps", None, "Override the GAN steps of every row.", lower_bound=0)
flags.DEFINE_integer("pretrain_steps", None, "Override the MSE pre-training steps of every row "
                     "(with --steps, a quick smoke run of a whole table).", lower_bound=0)
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Train every row once per seed; the table "
                  "gives mean +- sample sd and the paired difference to the reference row.")
flags.DEFINE_bool("reuse_ledger", True, "WIDER tables: take a row-seed's metrics from the ledger "
                  "(<results_dir>/run_ledger_<scale>.json, every finished row-seed with the "
                  "fingerprint of its config and inputs) instead of training it again; finished "
                  "row-seeds are recorded there either way.")


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
  wider_dir: str      # the dataset root (WIDER layout; COCO layout for the mtgan* tables)
  data_dir: str       # TFDS data_dir of the training RoIs
  proposals_dir: str  # the val split's proposals (WIDER result files); unused for COCO
  proposer: str = ""  # COCO: the proposer spec (training RoIs at demo scale, and detection)

  @property
  def gt_dir(self):
    return ground_truth_dir(self.wider_dir)

  @property
  def coco(self):
    return bool(self.proposer)


def is_coco_table():
  return FLAGS.table in table_rows.COCO_TABLES


def table_rows_of(table):
  return {**table_rows.TABLES, **table_rows.COCO_TABLES}[table]


def is_accuracy_table():
  return FLAGS.table in table_rows.RUNS_OF


def metrics_of_table():
  if is_accuracy_table():
    return table_rows.ACCURACY_METRICS
  return table_rows.COCO_METRICS if is_coco_table() else SETTINGS


ACCURACY_FILE = "d_accuracy.json"  # MTGAN Table 9, in a row's eval directory


def d_accuracy(out, inputs: Inputs):
  """The exported D's classification accuracy on the proposer's val RoIs (cached)."""
  import json
  path = os.path.join(out, "eval", ACCURACY_FILE)
  if not os.path.exists(path):
    from tinyfaces_tf import atomic
    from tinyfaces_tf import export
    from tinyfaces_tf import task as task_lib
    from tinyfaces_tf.detection import jobs
    detector = export.SavedModelDetector(os.path.join(out, "export"))
    task = task_lib.Task(detector.config, inputs.wider_dir)
    adapter = task.adapter
    records = [(r.name, r.boxes_xyxy, r.labels)
               for r in adapter.dataset().images(adapter.eval_split)]
    atomic.write_json(path, jobs.classification_accuracy_split(
        detector.model.score_rois, detector.config.crop, adapter.image_root(adapter.eval_split),
        records, task.build_proposer(inputs.proposer)))
  with open(path) as f:
    return json.load(f)


def evaluate_runs(inputs: Inputs, runs, eval_dir, config=None):
  """{label: metrics} of result dirs with the dataset's protocol, written into ``eval_dir``."""
  if not inputs.coco:
    from tinyfaces_tf.evaluation import report
    return report.evaluate_dirs(runs, inputs.gt_dir, eval_dir)
  from tinyfaces_tf import config as config_lib
  from tinyfaces_tf import task as task_lib
  return task_lib.Task(config or config_lib.get_preset("demo_coco"),
                       inputs.wider_dir).build_evaluator()(runs, eval_dir)


def metrics_file(inputs: Inputs, eval_dir):
  from tinyfaces_tf.data import adapters
  from tinyfaces_tf.evaluation import report
  return os.path.join(eval_dir, adapters.CocoAdapter.METRICS_FILE if inputs.coco
                      else report.AP_FILE)


def read_metrics(inputs: Inputs, eval_dir):
  import json
  with open(metrics_file(inputs, eval_dir)) as f:
    return json.load(f)


def ground_truth_dir(wider_dir):
  """eval_tools/ground_truth of a WIDER root, or None."""
  from tinyfaces_tf.data import wider_face
  return wider_face.WiderFace(wider_dir).ground_truth_dir if os.path.isdir(wider_dir) else None


DATA_STAMP = "demo_data.json"  # in each group of runs: the demo data version they were made from


def demo_data_version(root):
  """The version of the demo dataset at ``root`` (1 if its info file names none), None when
  ``root`` is not a demo dataset (real WIDER FACE / COCO)."""
  from tinyfaces_tf.data import demo  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import demo_coco  # pylint: disable=g-import-not-at-top
  for meta in (demo.META_FILE, demo_coco.META_FILE):
    version = demo.written_version(root, meta)
    if version is not None:
      return version
  return None


def holds_runs(group):
  """Whether ``group`` has a run in it (a folder with a config.json); a proposer's own data
  beside the runs (the sensitivity study's wider/ and tfds/) is not one."""
  from tinyfaces_tf import config as config_lib  # pylint: disable=g-import-not-at-top
  return os.path.isdir(group) and any(
      os.path.exists(os.path.join(group, entry, config_lib.CONFIG_FILE))
      for entry in os.listdir(group))


def check_demo_data(group, root):
  """Refuses to mix runs made from another version of the demo data into ``group`` (a finished
  run is reused as it is); stamps a new group with the version."""
  version = demo_data_version(root)
  if version is None:
    return
  stamp = os.path.join(group, DATA_STAMP)
  if os.path.exists(stamp):
    with open(stamp) as f:
      recorded = json.load(f)["version"]
  else:  # runs written before stamps existed were made from version 1
    recorded = 1 if holds_runs(group) else version
  if recorded != version:
    raise app.UsageError(
        f"{group}: its runs were made from version {recorded} of the demo data, and {root} is "
        f"now version {version}; remove {group} (or pass another --runs_dir) to run them again")
  if not os.path.exists(stamp):
    os.makedirs(group, exist_ok=True)
    with open(stamp, "w") as f:
      json.dump({"root": root, "version": version}, f)


def schedule_overrides() -> dict:
  """{train config field: value} that --steps and --pretrain_steps set for every row."""
  overrides = {"steps": FLAGS.steps, "pretrain_steps": FLAGS.pretrain_steps}
  return {name: value for name, value in overrides.items() if value is not None}


def ledger_fingerprint(flagfile, seed, inputs: Inputs) -> dict:
  """The ledger's fingerprint parts of a WIDER row-seed, what decides its numbers: its config with
  seed and schedule overrides, the demo data version, and the split files, ground truth and
  proposals its RoIs and detections come from."""
  from tinyfaces_tf import config as config_lib
  from tinyfaces_tf.data import wider_face
  train = {"seed": seed, **schedule_overrides()}
  config = config_lib.replace(row_config(flagfile), train=train)
  dataset = wider_face.WiderFace(inputs.wider_dir)
  paths = [dataset.split_file(split) for split in ("train", "val")]
  paths += [dataset.proposals_dir("train"), inputs.proposals_dir, inputs.gt_dir]
  return ledger.fingerprint_parts(config_lib.to_json(config),
                                 demo_data_version(inputs.wider_dir), [p for p in paths if p])


# {run key: its ledger record, "reused": whether this command took it from the ledger} of every
# WIDER row-seed this command used, for the provenance line of its report.
USED_RECORDS = {}


def train_and_evaluate(flagfile, seed, out, inputs: Inputs, baseline_label=None):
  """One row with one seed: its metrics from the ledger when recorded there with the same
  fingerprint, else trained, exported, detected, evaluated and recorded. Returns {label: metrics}
  (ours, and the proposer's own scores as ``baseline_label`` if given)."""
  if inputs.coco:  # COCO runs share exports across tables (the ensemble): no ledger
    return _train_and_evaluate(flagfile, seed, out, inputs, baseline_label)
  path = ledger.path_of(FLAGS.results_dir, FLAGS.scale)
  key = os.path.relpath(out, FLAGS.runs_dir)
  parts = ledger_fingerprint(flagfile, seed, inputs)
  labels = [OURS] + ([baseline_label] if baseline_label else [])
  found, why_not = ledger.lookup(path, key, parts, labels)
  finished_here = os.path.exists(metrics_file(inputs, os.path.join(out, "eval")))
  if not found and not finished_here:
    logging.info("%s: %s in %s; training it", key, why_not, path)
  if found and FLAGS.reuse_ledger and not finished_here:
    logging.info("%s: recorded in %s (%s, %s, commit %s); not trained again", key, path,
                 found["machine"], found["date"], found["commit"])
    USED_RECORDS[key] = {**found, "reused": True}
    return found["metrics"]
  metrics = _train_and_evaluate(flagfile, seed, out, inputs, baseline_label)
  if found is None or found["metrics"] != metrics:
    found = ledger.record(path, key, parts, metrics, REPO)
  USED_RECORDS[key] = {**found, "reused": False}
  return metrics


def provenance():
  """{run key: machine, date, commit, reused} of the row-seeds this command used."""
  return {key: {field: record[field] for field in ("machine", "date", "commit", "reused")}
          for key, record in sorted(USED_RECORDS.items())}


def provenance_line():
  """Where this report's trained row-seeds were made: counts per machine, and how many came from
  the ledger (empty when none were used)."""
  if not USED_RECORDS:
    return ""
  machines = collections.Counter(record["machine"] for record in USED_RECORDS.values())
  reused = sum(record["reused"] for record in USED_RECORDS.values())
  return (f"Trained row-seeds: {len(USED_RECORDS)}, {reused} of them taken from the run ledger "
          f"`{os.path.basename(ledger.path_of(FLAGS.results_dir, FLAGS.scale))}`; made on "
          + "; ".join(f"{name} ({count})" for name, count in sorted(machines.items())) + ".")


def _train_and_evaluate(flagfile, seed, out, inputs: Inputs, baseline_label=None):
  check_demo_data(os.path.dirname(out), inputs.wider_dir)
  eval_dir = os.path.join(out, "eval")
  if os.path.exists(metrics_file(inputs, eval_dir)):
    metrics = read_metrics(inputs, eval_dir)
    if baseline_label is None or baseline_label in metrics:
      return metrics
    # A COCO run shared with a table that did not need its baseline: the proposer's detections
    # were written beside ours when it detected, so only their evaluation is missing.
    return evaluate_runs(inputs, {baseline_label: os.path.join(out, "baseline"),
                                  OURS: os.path.join(out, "results")}, eval_dir,
                         row_config(flagfile))
  config = row_config(flagfile)
  model = os.path.join(out, "export")
  detect_args = []
  if flagfile in table_rows.TRAINED_BY:  # the same training as another row: detect only
    trained_by = table_rows.TRAINED_BY[flagfile]
    trained_out = coco_run_dir(trained_by, inputs.proposer, seed)
    train_and_evaluate(trained_by, seed, trained_out, inputs)
    model = os.path.join(trained_out, "export")
    detect_args.append(f"--score_fusion={config.detect.score_fusion}")
  else:
    if FLAGS.scale == "demo" or FLAGS.table == SENSITIVITY:
      from tinyfaces_tf import task as task_lib
      task_lib.Task(config, inputs.wider_dir).build_rois(
          inputs.data_dir, proposer=inputs.proposer if inputs.coco else None)
    train_args = [f"--flagfile={path}" for path in row_flagfiles(flagfile)]
    train_args += [f"--config.train.{name}={value}"
                   for name, value in schedule_overrides().items()]
    train_args.append(f"--config.train.seed={seed}")
    _python("tinyfaces_tf.cli.train", *train_args, f"--data_dir={inputs.data_dir}",
            f"--out_dir={out}", "--export")
  results = os.path.join(out, "results")
  if inputs.coco:  # the proposer runs here; its own detections are written beside ours
    baseline_dir = os.path.join(out, "baseline")
    _python("tinyfaces_tf.cli.detect", f"--model={model}", *detect_args,
            f"--root={inputs.wider_dir}", f"--proposer={inputs.proposer}",
            f"--results_dir={results}", f"--baseline_dir={baseline_dir}")
  else:
    baseline_dir = inputs.proposals_dir
    _python("tinyfaces_tf.cli.detect", f"--model={os.path.join(out, 'export')}",
            f"--wider_dir={inputs.wider_dir}", "--split=val",
            f"--proposer=results:{inputs.proposals_dir}", f"--results_dir={results}")
  runs = {OURS: results}
  if baseline_label:
    runs = {baseline_label: baseline_dir, **runs}
  return evaluate_runs(inputs, runs, eval_dir, config)


def baseline_proposers():
  """{baseline row slug: proposer spec} from --baseline_proposers."""
  known = {slug(row.name) for row in table_rows_of(FLAGS.table) if row.flagfile is None}
  pairs = {}
  for item in FLAGS.baseline_proposers:
    name, sep, spec = item.partition("=")
    if not sep or not spec or slug(name) not in known:
      raise app.UsageError(f"--baseline_proposers: {item!r} is not ROW=SPEC with ROW a baseline "
                           f"row of table {FLAGS.table} ({sorted(known) or 'none'})")
    pairs[slug(name)] = spec
  return pairs


def proposer_of(row):
  """A COCO row's proposer: its own (a baseline row in --baseline_proposers), its reference
  baseline's, or --proposer."""
  pairs = baseline_proposers()
  for name in (row.name, row.reference):
    if name and slug(name) in pairs:
      return pairs[slug(name)]
  return FLAGS.proposer


def inputs_of(row, inputs: Inputs) -> Inputs:
  """``inputs`` with the row's proposer; at demo scale another proposer's RoIs get their own
  TFDS folder beside the default one (training RoIs are cut with the proposer)."""
  proposer = proposer_of(row)
  if not inputs.coco or proposer == inputs.proposer:
    return inputs
  data_dir = inputs.data_dir
  if FLAGS.scale == "demo":
    data_dir = f"{data_dir.rstrip(os.sep)}_{slug(proposer)}"
  return dataclasses.replace(inputs, proposer=proposer, data_dir=data_dir)


def run_dir(table, name, seed):
  """A WIDER row's run is its table's; a COCO row's is its flagfile's on its proposer, whichever
  MTGAN table lists it (MTGAN (ResNet-50) is a row of five tables: trained once per seed)."""
  if table in table_rows.COCO_TABLES:
    row = next(row for row in table_rows_of(table) if row.name == name)
    if row.flagfile:
      return coco_run_dir(row.flagfile, proposer_of(row), seed)
    group, key = f"mtgan_coco_{FLAGS.scale}_{slug(proposer_of(row))}", slug(name)
  else:
    group, key = f"table{table}_{FLAGS.scale}", slug(name)
  return os.path.join(FLAGS.runs_dir, group, key if seed == 0 else f"{key}_seed{seed}")


def coco_run_dir(flagfile, proposer, seed):
  key = os.path.splitext(os.path.basename(flagfile))[0]
  return os.path.join(FLAGS.runs_dir, f"mtgan_coco_{FLAGS.scale}_{slug(proposer)}",
                      key if seed == 0 else f"{key}_seed{seed}")


def run_table_row(row, seed, inputs: Inputs, baseline_flagfile=None):
  """Metrics dict of one row and seed of a paper table. COCO baseline rows are the proposer's
  own detections, written by the run of ``baseline_flagfile`` (the table's first trained row)."""
  out = run_dir(FLAGS.table, row.name, seed)
  inputs = inputs_of(row, inputs)
  check_demo_data(os.path.dirname(out), inputs.wider_dir)
  if row.flagfile is None and inputs.coco:
    name = next(r.name for r in table_rows_of(FLAGS.table) if r.flagfile == baseline_flagfile)
    trained = train_and_evaluate(baseline_flagfile, seed, run_dir(FLAGS.table, name, seed),
                                 inputs, baseline_label=BASELINE)
    return trained[BASELINE]
  if row.flagfile is None:  # the baseline: the proposer's own scores
    eval_dir = os.path.join(out, "eval")
    if not os.path.exists(metrics_file(inputs, eval_dir)):
      evaluate_runs(inputs, {BASELINE: inputs.proposals_dir}, eval_dir)
    return read_metrics(inputs, eval_dir)[BASELINE]
  metrics = train_and_evaluate(row.flagfile, seed, out, inputs)[OURS]
  return d_accuracy(out, inputs) if is_accuracy_table() else metrics


def undefined(value):
  """No value: missing, NaN, or pycocotools' -1 for an area range without ground truth."""
  return value is None or (isinstance(value, float) and math.isnan(value)) or value < 0


def fmt(value):
  return "-" if undefined(value) else f"{value:.3f}"


def mean_cell(aps, setting):
  if any(undefined(ap[setting]) for ap in aps):
    return "-"
  mean, sd = table_rows.mean_sd([ap[setting] for ap in aps])
  return fmt(mean) if sd is None else f"{mean:.3f} ± {sd:.3f}"


def difference_cell(d):
  if d.low is None:
    return f"{d.mean:+.3f}"
  return f"{d.mean:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"


def compare_rows(rows, aps_by_name, metrics=SETTINGS):
  """{row name: {metric: (PairedDifference, verdict)}} for every row with a reference."""
  by_name = {row.name: row for row in rows}
  comparisons = {}
  for row in rows:
    if row.reference not in aps_by_name or row.name not in aps_by_name:
      continue
    reference = by_name[row.reference]
    comparisons[row.name] = {}
    for i, setting in enumerate(metrics):
      if any(undefined(ap[setting]) for name in (row.name, row.reference)
             for ap in aps_by_name[name]):
        continue
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
  metrics = metrics_of_table()
  comparisons = compare_rows(rows, aps_by_name, metrics)
  seed_text = ",".join(map(str, seeds))
  names = [table_rows.METRIC_NAMES.get(m, m) for m in metrics]
  if is_accuracy_table():
    what = (f"D classification accuracy on the proposer's val RoIs (positives IoU > 0.5, "
            f"negatives < 0.35) on `{FLAGS.coco_dir}` with proposer `{FLAGS.proposer}`; runs "
            f"of table {table_rows.RUNS_OF[FLAGS.table]}; paper numbers are COCO minival")
  elif is_coco_table():
    what = (f"COCO-layout {FLAGS.scale == 'demo' and 'demo ' or ''}val AP (pycocotools) on "
            f"`{FLAGS.coco_dir}` with proposer `{FLAGS.proposer}`"
            + "".join(f", `{spec}` for {name} and the rows compared with it"
                      for name, spec in baseline_proposers().items())
            + "; paper numbers are COCO minival")
  else:
    what = (f"WIDER-layout val AP (official protocol) on `{FLAGS.wider_dir}`; paper numbers are "
            "WIDER FACE val")
  lines = [f"# Table {FLAGS.table} at {FLAGS.scale} scale", "",
           f"{what}. Command: `python experiments/run.py --table={FLAGS.table} "
           f"--scale={FLAGS.scale} --seeds={seed_text}`.",
           f"Trained rows: mean ± sample sd over seeds {seed_text}; a baseline (the "
           "proposer's own scores) has one value per seed it was written with.",
           *filter(None, [provenance_line()]), "",
           "| row | " + " | ".join(names) + " | " + " | ".join(f"paper {n}" for n in names)
           + " |", "|---|" + "---|" * (2 * len(names))]
  for row in rows:
    if row.name in aps_by_name:
      aps = aps_by_name[row.name]
      lines.append(f"| {row.name} | " + " | ".join(mean_cell(aps, s) for s in metrics) + " | "
                   + " | ".join(fmt(p) for p in row.paper) + " |")
  lines += ["", "Paired differences row - reference over the seeds (mean "
            f"[{table_rows.CONFIDENCE:.0%} t interval]; a one-sample t test of the per-seed "
            "differences), and whether each shows the paper's direction (shown: the interval "
            "excludes 0 on the paper's side; "
            "reversed: on the other side; not shown: it includes 0).", "",
            "| row | reference | " + " | ".join(f"Δ {n}" for n in names)
            + f" | paper Δ {'/'.join(names)} |", "|---|---|" + "---|" * (len(names) + 1)]
  by_name = {row.name: row for row in rows}
  for name, per_setting in comparisons.items():
    row, reference = by_name[name], by_name[by_name[name].reference]
    paper = "/".join("-" if a is None or b is None else f"{a - b:+.3f}"
                     for a, b in zip(row.paper, reference.paper))
    lines.append(f"| {name} | {reference.name} | " + " | ".join(
        f"{difference_cell(per_setting[m][0])} {per_setting[m][1]}" if m in per_setting else "-"
        for m in metrics) + f" | {paper} |")
  write_report(path, lines, {
      "table": FLAGS.table, "scale": FLAGS.scale, "seeds": seeds,
      "rows": [{"name": row.name, "paper": row.paper, "reference": row.reference,
                "aps": aps_by_name.get(row.name)} for row in rows],
      "comparisons": {name: {s: {**dataclasses.asdict(d), "verdict": v}
                             for s, (d, v) in per_setting.items()}
                      for name, per_setting in comparisons.items()},
      "runs": provenance()})


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
  rows = table_rows_of(FLAGS.table)
  wanted = {slug(row) for row in FLAGS.rows or []}
  selected = [row for row in rows if not wanted or slug(row.name) in wanted]
  # A COCO baseline row is the proposer's own detections written during a trained row's run
  # (the proposer runs at detection): the first trained row after it in the table (its MTGAN).
  def trained_after(row):
    later = [r.flagfile for r in rows[rows.index(row):] if r.flagfile]
    return (later or [r.flagfile for r in rows if r.flagfile])[0]

  aps_by_name = {}
  for row in selected:
    aps_by_name[row.name] = []
    baseline_seeds = seeds[:1] if inputs.coco else [0]
    for seed in (baseline_seeds if row.flagfile is None else seeds):
      logging.info("=== %s (seed %d) ===", row.name, seed)
      aps_by_name[row.name].append(run_table_row(row, seed, inputs, trained_after(row)))
      logging.info("%s seed %d: %s", row.name, seed, " ".join(
          f"{m} {aps_by_name[row.name][-1][m]:.3f}" for m in metrics_of_table()))
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
    results = os.path.join(root, f"seed{seeds[0]}", "results")
    if os.path.isdir(results):  # not when the row-seed's metrics came from the ledger
      curves_dirs[f"ours on {proposer}"] = results
    else:
      logging.warning("%s: not here (seed %d of %s taken from the ledger): no PR curve of ours",
                      results, seeds[0], proposer)
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
           f"`{SENSITIVITY}_{FLAGS.scale}_pr/pr_curves.png`.",
           *filter(None, [provenance_line()]), "",
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
  write_report(path, lines, {"scale": FLAGS.scale, "seeds": seeds, "rows": payload,
                             "runs": provenance()})


def run_coco_table(seeds):
  """An MTGAN COCO table on --coco_dir with --proposer."""
  from tinyfaces_tf.data import coco
  for split in ("train2017", "val2017") if FLAGS.scale == "demo" else ():
    for path in coco.CocoDataset(FLAGS.coco_dir).annotation_files(split):
      if not os.path.isfile(path):
        raise app.UsageError(f"--coco_dir: {path} does not exist (run `make demo-coco` first "
                             "at demo scale)")
  # At demo scale the RoIs `make demo-coco` built are reused (rows with other crops add theirs).
  data_dir = FLAGS.data_dir or ("runs/demo_coco/tfds" if FLAGS.scale == "demo" else None)
  if not data_dir:
    raise app.UsageError("--data_dir (a built coco_rois) is required at paper scale")
  known = {slug(row.name) for row in table_rows_of(FLAGS.table)}
  unknown = [row for row in FLAGS.rows or [] if slug(row) not in known]
  if unknown:
    raise app.UsageError(f"--rows: {unknown} not in table {FLAGS.table}; rows: {sorted(known)}")
  baseline_proposers()  # a bad --baseline_proposers fails before anything runs
  run_paper_table(seeds, Inputs(FLAGS.coco_dir, data_dir, "", FLAGS.proposer))


def main(argv):
  del argv
  try:
    seeds = [int(seed) for seed in FLAGS.seeds]
  except ValueError:
    raise app.UsageError(f"--seeds: integers expected, got {FLAGS.seeds}")
  if not seeds:
    raise app.UsageError("--seeds: give at least one seed")
  if is_coco_table():
    return run_coco_table(seeds)
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
