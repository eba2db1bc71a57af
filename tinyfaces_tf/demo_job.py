"""The main job behind `make demo` and `make demo-coco`: demo data -> baseline proposals -> RoIs
(TFDS) -> GAN training -> SavedModel -> detection on val -> official evaluation -> figures and
metrics.json; the WIDER demo also scores its detections on the val split as FDDB folds (the
journal's Fig. 9).

One job for both dataset families; what differs is a ``DemoKind``: the WIDER demo
(``data/demo.py``, MTCNN proposals stored as result files, eval_tools AP) or the COCO-format demo
(``data/demo_coco.py``, class-agnostic selective-search proposals run in the RoI builder and at
detection, pycocotools AP). Every stage goes through the task layer (``task.py``) and reuses what
an earlier run left (dataset, proposals, built RoIs, checkpoints), so a re-run after an
interruption continues instead of starting over.
"""
import dataclasses
import os
import re
import shutil
import time

import numpy as np

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import task as task_lib

BASELINE_LABEL = "MTCNN (baseline)"
OURS_LABEL = "GAN (ours)"
STAGES = 6


@dataclasses.dataclass(frozen=True)
class DemoKind:
  """What a dataset family's demo uses.

  Attributes:
    preset: the config preset trained.
    proposer: the baseline proposer's spec.
    stored_proposals: True: the proposer's boxes are written once per split as result files and
      read back (slow proposers: MTCNN); False: the proposer runs in the RoI builder and at
      detection.
    baseline_label: the baseline's name in the report.
    data_dir, run_dir: default folders.
    train_images, val_images: the dataset's size when the job makes it.
  """
  preset: str
  proposer: str
  stored_proposals: bool
  baseline_label: str
  data_dir: str
  run_dir: str
  train_images: int
  val_images: int


KINDS = {
    "wider_face": DemoKind("demo", "mtcnn", True, BASELINE_LABEL, "data/demo", "runs/demo",
                           160, 60),
    # Selective search is class-agnostic: its baseline reports every box for every class. It
    # runs in the RoI build and at detection, in the paper's "single" mode (one grouping; "fast"
    # takes about 0.8 s per image here), on a smaller dataset: the COCO demo stays within 10
    # minutes on 2 cores.
    "coco": DemoKind("demo_coco", "selective_search:single", False,
                     "selective search (class-agnostic baseline)", "data/demo_coco",
                     "runs/demo_coco", 120, 50),
}


class CachedProposer:
  """A proposer whose proposals are kept per image name: the COCO demo's accuracy pass sees the
  detection pass's proposals without running selective search twice."""

  def __init__(self, proposer):
    self.proposer, self.cache = proposer, {}
    self.max_rois = proposer.max_rois

  def propose(self, image, image_name=None):
    if image_name not in self.cache:
      self.cache[image_name] = self.proposer.propose(image, image_name)
    return self.cache[image_name]


@dataclasses.dataclass(frozen=True)
class DemoPaths:
  data_dir: str = KINDS["wider_face"].data_dir
  run_dir: str = KINDS["wider_face"].run_dir

  def proposals(self, split):
    from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
    return wider_face.WiderFace(self.data_dir).proposals_dir(split)

  @property
  def tfds_dir(self):
    return os.path.join(self.run_dir, "tfds")

  @property
  def export_dir(self):
    return os.path.join(self.run_dir, "export")

  @property
  def eval_dir(self):
    return os.path.join(self.run_dir, "eval")

  @property
  def figures(self):
    return os.path.join(self.run_dir, "figures")

  def results(self, name):
    return os.path.join(self.run_dir, "results", name)

  @property
  def fddb_dir(self):
    """The val split as an FDDB layout (hard links to its images, ellipse lists)."""
    return os.path.join(self.run_dir, "fddb")


def _stage(number, text):
  print(f"[{number}/{STAGES}] {text}", flush=True)


# What a demo run derives from its dataset (under run_dir): stale once the dataset is rewritten.
DERIVED = ("tfds", "checkpoints", "tb", "export", "eval", "results", "fddb", "config.json",
           "metrics.json")


def ensure_dataset(paths, train_images, val_images, seed, family="wider_face") -> bool:
  """Writes the demo dataset unless one of the maker's DATA_VERSION is there; when it writes one,
  removes what ``paths.run_dir`` derived from an earlier one (DERIVED). Returns whether it wrote."""
  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import demo
  if family == "coco":
    from tinyfaces_tf.data import demo_coco as maker
    make, meta = maker.make_coco_demo, maker.META_FILE
  else:
    maker = demo
    make, meta = maker.make_demo_dataset, maker.META_FILE
  version = demo.written_version(paths.data_dir, meta)
  if version is not None:
    if version == maker.DATA_VERSION:
      print(f"      present in {paths.data_dir}")
      return False
    print(f"      {paths.data_dir} holds version {version} of the demo; writing version "
          f"{maker.DATA_VERSION} and removing what {paths.run_dir} derived from it")
  stale = [n for n in DERIVED if os.path.exists(os.path.join(paths.run_dir, n))]
  for name in stale:
    path = os.path.join(paths.run_dir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  summary = make(paths.data_dir, train_images=train_images, val_images=val_images, seed=seed)
  images = lambda split: summary[split]["images"] if isinstance(summary[split], dict) else "?"
  print(f"      {images('train')} train / {images('val')} val images -> {paths.data_dir}")
  return True


def ensure_proposals(task, paths, proposer, split):
  """The baseline detector's boxes for every image of a split, as result files (cached)."""
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  out = paths.proposals(split)
  marker = os.path.join(out, ".complete")
  if os.path.exists(marker):
    return out
  adapter = task.adapter
  jobs.propose_split(proposer, adapter.image_root(split), adapter.image_names(split), out,
                     write=adapter.write_detections)
  open(marker, "w").close()
  return out


def sr_grid(generator, task, tfds_dir, out_path, rows=8):
  """LR | bicubic | SR | HR for validation RoIs of every class and backgrounds (papers' Fig. 3/5;
  MTGAN Fig. 5 per class), each row named by its class."""
  import math  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import viz  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  names = task.adapter.class_names()
  classes = len(names) - 1
  per_class = math.ceil(rows / 2 / classes)  # half the rows objects, every class in turn
  quota = {label: per_class for label in range(1, classes + 1)}
  quota[0] = max(1, rows - classes * per_class)
  ds = pipeline.load_split(tfds_dir, "validation", task.rois_config_name, decode=True,
                           dataset_name=task.adapter.rois_dataset)
  picked = []
  for ex in ds.take(2000):
    label = int(ex["label"])
    if quota.get(label, 0) > 0:
      quota[label] -= 1
      picked.append(ex)
    if not any(quota.values()):
      break
  to_model = lambda key: imaging.to_model_range(np.stack([e[key].numpy() for e in picked])).numpy()
  lr, hr = to_model("lr"), to_model("hr")
  bicubic = tf.image.resize(lr, hr.shape[1:3], method="bicubic").numpy()
  sr = generator(lr, training=False)["sr"].numpy()
  labels = [names[int(e["label"])] for e in picked]
  return viz.plot_sr_grid(lr, bicubic, sr, hr, labels, out_path, max_rows=rows)


def detections_figure(detector, task, proposer, out_path):
  """Ground truth (green) and our detections (red) on the val image with the most objects."""
  from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import viz  # pylint: disable=g-import-not-at-top
  adapter = task.adapter
  split = adapter.eval_split
  if adapter.family == "coco":
    record = max(adapter.dataset().images(split), key=lambda r: len(r.boxes_xyxy))
    name, gt = record.name, record.boxes_xyxy
  else:
    annotation = max(adapter.dataset().annotations(split), key=lambda a: len(a.faces))
    name, gt = annotation.name, annotation.boxes_xyxy
  image = imaging.load_image(os.path.join(adapter.image_root(split), *name.split("/")))
  props = proposer.propose(image, name)
  boxes, scores = detector(image, props.boxes, props.scores)
  return viz.draw_detections(image, boxes, scores, gt, out_path, score_threshold=0.5)


def coco_figures_and_accuracy(task, detector, proposer, paths):
  """MTGAN Fig. 6 (error analysis of our detections) and Table 9 (D accuracy on the proposer's
  val RoIs) for the COCO demo; returns {"d_accuracy": ...}."""
  import json  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.evaluation import coco_analysis  # pylint: disable=g-import-not-at-top
  adapter = task.adapter
  split = adapter.eval_split
  with open(os.path.join(paths.results("gan"), adapter.RESULTS_FILE)) as f:
    detections = json.load(f)
  ground_truth = adapter.dataset().annotation_files(split)[0]
  coco_analysis.plot_analysis(coco_analysis.analyze(ground_truth, detections),
                              os.path.join(paths.figures, "coco_error_analysis.png"),
                              title="GAN re-scored (ours), all classes")
  records = [(r.name, r.boxes_xyxy, r.labels) for r in adapter.dataset().images(split)]
  accuracy = jobs.classification_accuracy_split(
      detector.model.score_rois, detector.config.crop, adapter.image_root(split), records,
      proposer)
  return {"d_accuracy": accuracy}


def fddb_evaluation(task, runs, paths):
  """The journal's Fig. 9 at demo scale: the val split as an FDDB layout (ellipses around its face
  boxes, ``fddb.write_fddb_layout_from_wider``), the detections of ``runs`` ({label: WIDER result
  folder}) written per FDDB image and scored by FDDB's discrete and continuous ROC. Returns
  {label: {"discrete_tpr_at_500_fp": ..., "continuous_tpr_at_500_fp": ...}}."""
  import shutil  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import boxes as box_ops  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import adapters  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import fddb  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import result_files  # pylint: disable=g-import-not-at-top
  info = fddb.write_fddb_layout_from_wider(paths.data_dir, paths.fddb_dir,
                                           split=task.adapter.eval_split)
  adapter = adapters.FddbAdapter(paths.fddb_dir)
  fddb_runs = {}
  for label, results_dir in runs.items():
    by_wider_name = result_files.read_result_dir(results_dir)
    slug = "_".join(re.findall(r"[a-z0-9]+", label.lower()))  # "GAN (ours)" -> gan_ours
    out = fddb_runs[label] = paths.results(f"fddb_{slug}")
    for name, wider_name in info["names"].items():
      boxes_xywh, scores = by_wider_name.get(os.path.splitext(wider_name)[0],
                                             (np.zeros((0, 4)), np.zeros(0)))
      fddb.write_image_detections(out, name, box_ops.xywh_to_xyxy(boxes_xywh), scores)
  eval_dir = os.path.join(paths.eval_dir, "fddb")
  os.makedirs(eval_dir, exist_ok=True)
  metrics = adapter.evaluate(fddb_runs, eval_dir)
  shutil.copyfile(os.path.join(eval_dir, adapter.ROC_FIGURE),
                  os.path.join(paths.figures, adapter.ROC_FIGURE))
  return metrics


def run_demo(paths=DemoPaths(), train_images=None, val_images=None, seed=0, steps=None,
             preset=None, family="wider_face"):
  """Runs every stage of ``family``'s demo (``KINDS``; None: the kind's dataset size); returns
  the metrics dict written to <run_dir>/metrics.json."""
  from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  kind = KINDS[family]
  timings = {}
  t0 = time.time()
  cfg = config_lib.get_preset(preset or kind.preset)
  if steps is not None:
    cfg = config_lib.replace(cfg, train={"steps": steps})
  task = task_lib.Task(cfg, paths.data_dir)
  os.makedirs(paths.figures, exist_ok=True)

  layout = "COCO" if family == "coco" else "WIDER FACE"
  _stage(1, f"Demo dataset ({layout} layout, from images shipped in the dependencies)")
  ensure_dataset(paths, train_images or kind.train_images, val_images or kind.val_images, seed,
                 family)
  timings["dataset_seconds"] = time.time() - t0
  t = time.time()
  if kind.stored_proposals:
    _stage(2, f"Baseline proposals ({kind.proposer}) for the train and val images")
    proposer = task.build_proposer(kind.proposer)
    for split in (task.adapter.train_split, task.adapter.eval_split):
      ensure_proposals(task, paths, proposer, split)
  else:
    _stage(2, f"Baseline proposals ({kind.proposer}): run in the RoI builder and at detection")
  timings["proposals_seconds"] = time.time() - t
  t = time.time()
  _stage(3, f"Training RoIs ({task.adapter.rois_dataset}/{task.rois_config_name})")
  counts = task.build_rois(paths.tfds_dir,
                           proposer=None if kind.stored_proposals else kind.proposer)
  print(f"      {counts['train']} train / {counts['validation']} validation RoIs")
  timings["rois_seconds"] = time.time() - t

  _stage(4, f"GAN training ({cfg.train.pretrain_steps} MSE + {cfg.train.steps} GAN steps)")
  make_dataset, steps_per_epoch = task.build_train_dataset(paths.tfds_dir)
  result, gan = task.train(make_dataset, paths.run_dir, steps_per_epoch)
  timings["train_seconds"] = result.seconds

  t = time.time()
  _stage(5, "Export, then detection on the val split")
  task.export(gan.generator, gan.discriminator, paths.export_dir)
  detector = export.SavedModelDetector(paths.export_dir)
  adapter = task.adapter
  if kind.stored_proposals:
    val_proposals = task.build_proposer(f"results:{paths.proposals(adapter.eval_split)}")
    baseline_dir, baseline_written = paths.proposals(adapter.eval_split), None
  else:  # written beside ours, from the same proposals
    val_proposals = CachedProposer(task.build_proposer(kind.proposer))
    baseline_dir = baseline_written = paths.results("baseline")
  summary = jobs.detect_split(detector, adapter.image_root(adapter.eval_split),
                              adapter.image_names(adapter.eval_split), val_proposals,
                              paths.results("gan"), baseline_written,
                              write=adapter.write_detections)
  timings["detect_seconds"] = time.time() - t
  _stage(6, "Official evaluation and figures")
  aps = task.build_evaluator()({kind.baseline_label: baseline_dir,
                                OURS_LABEL: paths.results("gan")}, paths.eval_dir)
  extra = {}
  if family == "wider_face":
    from tinyfaces_tf.evaluation import report  # pylint: disable=g-import-not-at-top
    os.replace(os.path.join(paths.eval_dir, report.PR_FIGURE),
               os.path.join(paths.figures, report.PR_FIGURE))
    extra = {"fddb_tpr": fddb_evaluation(
        task, {kind.baseline_label: baseline_dir, OURS_LABEL: paths.results("gan")}, paths)}
  else:
    extra = coco_figures_and_accuracy(task, detector, val_proposals, paths)
  sr_grid(gan.generator, task, paths.tfds_dir, os.path.join(paths.figures, "sr_grid.png"))
  detections_figure(detector, task, val_proposals,
                    os.path.join(paths.figures, "detections.png"))
  metrics = {
      "family": family, "baseline_label": kind.baseline_label, **extra,
      "baseline_ap": aps[kind.baseline_label], "gan_ap": aps[OURS_LABEL],
      "train_seconds": round(result.seconds, 1),
      "train_rois_per_second": round(result.rois_per_second, 1),
      "steps": result.steps, "pretrain_steps": result.pretrain_steps,
      "batch_size": cfg.train.batch_size, "precision": result.precision or cfg.train.precision,
      "rois": counts, "val_images": summary.images, "detections": summary.detections,
      "skipped_images": [path for path, _ in summary.skipped],
      "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
      "total_seconds": round(time.time() - t0, 1)}
  atomic.write_json(os.path.join(paths.run_dir, "metrics.json"), metrics)
  return metrics


def format_summary(metrics, paths):
  if metrics.get("family") == "coco":
    from tinyfaces_tf.evaluation import coco as coco_eval  # pylint: disable=g-import-not-at-top
    columns, title = coco_eval.METRICS, "COCO-format demo validation AP (pycocotools):"
    width = len(metrics["baseline_label"]) + 2
  else:
    columns = ("easy", "medium", "hard")
    title = "WIDER-format demo validation AP (official protocol):"
    width = 22
  baseline = metrics.get("baseline_label", BASELINE_LABEL)
  header = lambda c: c if c[0].isupper() else c.capitalize()  # "AP50" stays, "easy" -> "Easy"
  rows = ["", title, f"{'':{width}s}" + "".join(f"{header(c):>8s}" for c in columns)]
  for label, key in ((baseline, "baseline_ap"), ("GAN re-scored (ours)", "gan_ap")):
    rows.append(f"{label:{width}s}" + "".join(f"{metrics[key][c]:8.3f}" for c in columns))
  if "fddb_tpr" in metrics:
    tpr = metrics["fddb_tpr"]
    rows.append("FDDB ROC of the same detections on the val split as FDDB folds (journal Fig. 9), "
                "true-positive rate at 500 false positives, discrete / continuous:")
    for label, key in ((baseline, baseline), ("GAN re-scored (ours)", OURS_LABEL)):
      rows.append(f"{label:{width}s}  {tpr[key]['discrete_tpr_at_500_fp']:.3f} / "
                  f"{tpr[key]['continuous_tpr_at_500_fp']:.3f}")
  if "d_accuracy" in metrics:
    acc = metrics["d_accuracy"]
    rows.append(f"D accuracy on the proposer's val RoIs (MTGAN Table 9): positives "
                f"{acc['positive_accuracy']:.3f}, negatives {acc['negative_accuracy']:.3f}, "
                f"all {acc['accuracy']:.3f}")
  rows += [f"trained {metrics['steps']} steps in {metrics['train_seconds']:.0f}s "
           f"({metrics['train_rois_per_second']:.0f} RoIs/s); total {metrics['total_seconds']:.0f}s",
           f"files: {paths.run_dir}/metrics.json, {paths.figures}/*.png, {paths.eval_dir},",
           f"       {paths.export_dir} (SavedModel + config), {paths.run_dir}/checkpoints, "
           f"{paths.run_dir}/tb"]
  return "\n".join(rows)
