"""The main job behind `make demo`: demo WIDER data -> MTCNN proposals -> RoIs (TFDS) -> GAN
training -> SavedModel -> detection on val -> official evaluation -> figures and metrics.json.

Every stage goes through the task layer (``task.py``) and reuses what an earlier run left
(dataset, proposals, built RoIs, checkpoints), so a re-run after an interruption continues
instead of starting over.
"""
import dataclasses
import os
import time

import numpy as np

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import task as task_lib

BASELINE_LABEL = "MTCNN (baseline)"
OURS_LABEL = "GAN (ours)"
STAGES = 6


@dataclasses.dataclass(frozen=True)
class DemoPaths:
  data_dir: str = "data/demo"
  run_dir: str = "runs/demo"

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


def _stage(number, text):
  print(f"[{number}/{STAGES}] {text}", flush=True)


def ensure_dataset(paths, train_images, val_images, seed):
  from tinyfaces_tf.data import demo  # pylint: disable=g-import-not-at-top
  if os.path.exists(os.path.join(paths.data_dir, demo.META_FILE)):
    print(f"      present in {paths.data_dir}")
    return
  summary = demo.make_demo_dataset(paths.data_dir, train_images=train_images,
                                   val_images=val_images, seed=seed)
  print(f"      {summary['train']['images']} train / {summary['val']['images']} val images "
        f"-> {paths.data_dir}")


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
  """LR | bicubic | SR | HR for validation face and background RoIs (papers' Fig. 3/5)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import imaging  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import viz  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import pipeline  # pylint: disable=g-import-not-at-top
  ds = pipeline.load_split(tfds_dir, "validation", task.rois_config_name, decode=True,
                           dataset_name=task.adapter.rois_dataset)
  faces, backgrounds = [], []
  for ex in ds.take(400):
    bucket = faces if int(ex["label"]) >= 1 else backgrounds
    if len(bucket) < rows // 2:
      bucket.append(ex)
  picked = faces + backgrounds
  to_model = lambda key: imaging.to_model_range(np.stack([e[key].numpy() for e in picked])).numpy()
  lr, hr = to_model("lr"), to_model("hr")
  bicubic = tf.image.resize(lr, hr.shape[1:3], method="bicubic").numpy()
  sr = generator(lr, training=False)["sr"].numpy()
  labels = [int(e["label"]) for e in picked]
  return viz.plot_sr_grid(lr, bicubic, sr, hr, labels, out_path, max_rows=rows)


def detections_figure(detector, paths, proposer, out_path):
  """Ground truth (green) and our detections (red) on the val image with the most faces."""
  from tinyfaces_tf import viz  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
  dataset = wider_face.WiderFace(paths.data_dir)
  annotation = max(dataset.annotations("val"), key=lambda a: len(a.faces))
  image = dataset.read_image("val", annotation.name)
  props = proposer.propose(image, annotation.name)
  boxes, scores = detector(image, props.boxes, props.scores)
  return viz.draw_detections(image, boxes, scores, annotation.boxes_xyxy, out_path,
                             score_threshold=0.5)


def run_demo(paths=DemoPaths(), train_images=160, val_images=60, seed=0, steps=None,
             preset="demo"):
  """Runs every stage; returns the metrics dict written to <run_dir>/metrics.json."""
  from tinyfaces_tf import export  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  timings = {}
  t0 = time.time()
  cfg = config_lib.get_preset(preset)
  if steps is not None:
    cfg = config_lib.replace(cfg, train={"steps": steps})
  task = task_lib.Task(cfg, paths.data_dir)
  os.makedirs(paths.figures, exist_ok=True)

  _stage(1, "Demo dataset (WIDER FACE layout, from images shipped in scikit-image)")
  ensure_dataset(paths, train_images, val_images, seed)
  timings["dataset_seconds"] = time.time() - t0
  t = time.time()
  _stage(2, "Baseline proposals (MTCNN) for the train and val images")
  mtcnn = task.build_proposer("mtcnn")
  for split in (task.adapter.train_split, task.adapter.eval_split):
    ensure_proposals(task, paths, mtcnn, split)
  timings["proposals_seconds"] = time.time() - t
  t = time.time()
  _stage(3, f"Training RoIs ({task.adapter.rois_dataset}/{task.rois_config_name})")
  counts = task.build_rois(paths.tfds_dir)
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
  val_proposals = task.build_proposer(f"results:{paths.proposals(adapter.eval_split)}")
  summary = jobs.detect_split(detector, adapter.image_root(adapter.eval_split),
                              adapter.image_names(adapter.eval_split), val_proposals,
                              paths.results("gan"), write=adapter.write_detections)
  timings["detect_seconds"] = time.time() - t
  _stage(6, "Official evaluation and figures")
  aps = task.build_evaluator()({BASELINE_LABEL: paths.proposals(adapter.eval_split),
                                OURS_LABEL: paths.results("gan")}, paths.eval_dir)
  from tinyfaces_tf.evaluation import report  # pylint: disable=g-import-not-at-top
  os.replace(os.path.join(paths.eval_dir, report.PR_FIGURE),
             os.path.join(paths.figures, report.PR_FIGURE))
  sr_grid(gan.generator, task, paths.tfds_dir, os.path.join(paths.figures, "sr_grid.png"))
  detections_figure(detector, paths, val_proposals,
                    os.path.join(paths.figures, "detections.png"))
  metrics = {
      "baseline_ap": aps[BASELINE_LABEL], "gan_ap": aps[OURS_LABEL],
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
  rows = ["", "WIDER-format demo validation AP (official protocol):",
          f"{'':22s}{'Easy':>8s}{'Medium':>8s}{'Hard':>8s}"]
  for label, key in (("MTCNN (baseline)", "baseline_ap"), ("GAN re-scored (ours)", "gan_ap")):
    ap = metrics[key]
    rows.append(f"{label:22s}{ap['easy']:8.3f}{ap['medium']:8.3f}{ap['hard']:8.3f}")
  rows += [f"trained {metrics['steps']} steps in {metrics['train_seconds']:.0f}s "
           f"({metrics['train_rois_per_second']:.0f} RoIs/s); total {metrics['total_seconds']:.0f}s",
           f"files: {paths.run_dir}/metrics.json, {paths.figures}/{{pr_curves,sr_grid,detections}}.png,",
           f"       {paths.export_dir} (SavedModel + config), {paths.run_dir}/checkpoints, "
           f"{paths.run_dir}/tb"]
  return "\n".join(rows)
