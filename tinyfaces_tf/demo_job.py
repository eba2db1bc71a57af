"""The main job behind `make demo`: demo WIDER data -> MTCNN proposals -> RoIs (TFDS) -> GAN
training -> SavedModel -> detection on val -> official evaluation -> figures and metrics.json.

Every stage reuses what an earlier run left (dataset, proposals, built RoIs, checkpoints), so a
re-run after an interruption continues instead of starting over.
"""
import dataclasses
import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging

from tinyfaces_tf import boxes as box_ops
from tinyfaces_tf import config as config_lib
from tinyfaces_tf.data import eval_tools
from tinyfaces_tf.progress import Progress

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclasses.dataclass(frozen=True)
class DemoPaths:
  data_dir: str = "data/demo"
  run_dir: str = "runs/demo"

  @property
  def proposals(self):
    return os.path.join(self.data_dir, "proposals")

  @property
  def tfds_dir(self):
    return os.path.join(self.run_dir, "tfds")

  @property
  def export_dir(self):
    return os.path.join(self.run_dir, "export")

  @property
  def figures(self):
    return os.path.join(self.run_dir, "figures")

  def results(self, name):
    return os.path.join(self.run_dir, "results", name)


def ensure_dataset(paths, train_images, val_images, seed):
  from tinyfaces_tf.data import demo
  marker = os.path.join(paths.data_dir, "demo_info.json")
  if os.path.exists(marker):
    logging.info("demo dataset present: %s", paths.data_dir)
    return
  logging.info("writing the demo WIDER dataset to %s", paths.data_dir)
  summary = demo.make_demo_dataset(paths.data_dir, train_images=train_images,
                                   val_images=val_images, seed=seed)
  logging.info("demo dataset: %s", {k: summary[k] for k in ("train", "val") if k in summary})


def ensure_proposals(paths, proposer, split):
  """The baseline detector's boxes for every image of a split, as WIDER result files (cached)."""
  from tinyfaces_tf.data import wider
  out = os.path.join(paths.proposals, split)
  marker = os.path.join(out, ".complete")
  if os.path.exists(marker):
    return out
  dataset = wider.WiderFace(paths.data_dir)
  names = dataset.names(split)
  logging.info("MTCNN proposals for %d %s images -> %s", len(names), split, out)
  bar = Progress(len(names))
  for i, name in enumerate(names):
    image = dataset.read_image(split, name)
    props = proposer.propose(image, name)
    eval_tools.write_result_file(out, name, box_ops.xyxy_to_xywh(props.boxes), props.scores)
    bar.update(i + 1)
  open(marker, "w").close()
  return out


def ensure_rois(paths, tfds_config):
  """Builds the wider_face_rois TFDS dataset from the demo data (+ proposals) if not built."""
  import tensorflow_datasets as tfds
  sys.path.insert(0, os.path.join(REPO_ROOT, "datasets"))
  from wider_face_rois import wider_face_rois_dataset_builder as builder_lib
  builder = builder_lib.Builder(config=tfds_config, data_dir=paths.tfds_dir)
  if not builder.is_prepared():
    logging.info("building wider_face_rois/%s RoIs into %s", tfds_config, paths.tfds_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=os.path.abspath(paths.data_dir)))
  return {split: info.num_examples for split, info in builder.info.splits.items()}


def sr_grid(generator, paths, tfds_config, out_path, rows=8):
  """LR | bicubic | SR | HR for validation face and background RoIs (papers' Fig. 3/5)."""
  from tinyfaces_tf import viz
  from tinyfaces_tf.data import pipeline
  ds = pipeline.load_split(paths.tfds_dir, "validation", tfds_config, decode=True)
  faces, backgrounds = [], []
  for ex in ds.take(400):
    bucket = faces if int(ex["label"]) >= 1 else backgrounds
    if len(bucket) < rows // 2:
      bucket.append(ex)
  picked = faces + backgrounds
  to_model = lambda key: np.stack([e[key].numpy() for e in picked]).astype(np.float32) / 127.5 - 1
  lr, hr = to_model("lr"), to_model("hr")
  bicubic = tf.image.resize(lr, hr.shape[1:3], method="bicubic").numpy()
  sr = generator(lr, training=False)["sr"].numpy()
  labels = [int(e["label"]) for e in picked]
  return viz.plot_sr_grid(lr, bicubic, sr, hr, labels, out_path, max_rows=rows)


def detections_figure(detector, paths, proposals_dir, out_path):
  """Ground truth (green) and our detections (red) on the val image with the most faces."""
  from tinyfaces_tf import proposals as proposals_lib
  from tinyfaces_tf import viz
  from tinyfaces_tf.data import wider
  dataset = wider.WiderFace(paths.data_dir)
  annotation = max(dataset.annotations("val"), key=lambda a: len(a.faces))
  image = dataset.read_image("val", annotation.name)
  props = proposals_lib.ResultsProposer(proposals_dir).propose(image, annotation.name)
  boxes, scores = detector(image, props.boxes, props.scores)
  return viz.draw_detections(image, boxes, scores, annotation.boxes_xyxy, out_path,
                             score_threshold=0.5)


def run_demo(paths=DemoPaths(), train_images=160, val_images=60, seed=0, steps=None,
             preset="demo"):
  """Runs every stage; returns the metrics dict written to <run_dir>/metrics.json."""
  from tinyfaces_tf import detect
  from tinyfaces_tf import export
  from tinyfaces_tf import proposals as proposals_lib
  from tinyfaces_tf import train as train_lib
  from tinyfaces_tf.evaluation import report
  from tinyfaces_tf.data import pipeline
  from tinyfaces_tf.data import wider
  timings = {}
  t0 = time.time()
  cfg = config_lib.get_preset(preset)
  if steps is not None:
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))
  tfds_config = f"x{cfg.context:.1f}"
  os.makedirs(paths.figures, exist_ok=True)

  ensure_dataset(paths, train_images, val_images, seed)
  timings["dataset_seconds"] = time.time() - t0
  t = time.time()
  mtcnn = proposals_lib.MtcnnProposer()
  for split in ("train", "val"):
    ensure_proposals(paths, mtcnn, split)
  timings["proposals_seconds"] = time.time() - t
  t = time.time()
  counts = ensure_rois(paths, tfds_config)
  timings["rois_seconds"] = time.time() - t
  logging.info("RoIs: %s", counts)

  source = pipeline.load_split(paths.tfds_dir, "train", tfds_config)
  steps_per_epoch = max(1, counts["train"] // cfg.train.batch_size)
  make_dataset = lambda s: pipeline.make_training_dataset(source, pipeline.PipelineConfig(
      batch_size=cfg.train.batch_size, face_fraction=cfg.train.face_fraction, seed=s))
  previous = _previous_train_result(paths.run_dir)
  result, gan = train_lib.train(cfg, make_dataset, paths.run_dir, steps_per_epoch)
  if previous and result.resumed_from == result.steps == previous.steps:
    # Already trained by an earlier `make demo`: report that run's training figures.
    result = previous
    with open(os.path.join(paths.run_dir, "train_result.json"), "w") as f:
      json.dump(dataclasses.asdict(previous), f, indent=2)
    logging.info("training already complete (%d steps); reusing %s", result.steps, paths.run_dir)
  timings["train_seconds"] = result.seconds
  keras_policy_reset()

  t = time.time()
  export.export_saved_model(gan.generator, gan.discriminator, paths.export_dir,
                            context=cfg.context)
  detector = export.SavedModelDetector(paths.export_dir)
  dataset = wider.WiderFace(paths.data_dir)
  val_proposals = os.path.join(paths.proposals, "val")
  summary = detect.detect_split(detector, dataset.images_dir("val"), dataset.names("val"),
                                proposals_lib.ResultsProposer(val_proposals),
                                paths.results("gan"))
  timings["detect_seconds"] = time.time() - t
  aps = report.evaluate_dirs(paths.results("gan"), dataset.ground_truth_dir,
                                   os.path.join(paths.run_dir, "eval"), val_proposals,
                                   label="GAN (ours)", baseline_label="MTCNN (baseline)")
  # The PR figure of the evaluation goes to figures/ as well.
  os.replace(os.path.join(paths.run_dir, "eval", "pr_curves.png"),
             os.path.join(paths.figures, "pr_curves.png"))
  sr_grid(gan.generator, paths, tfds_config, os.path.join(paths.figures, "sr_grid.png"))
  detections_figure(detector, paths, val_proposals, os.path.join(paths.figures, "detections.png"))
  metrics = {
      "baseline_ap": aps["MTCNN (baseline)"], "gan_ap": aps["GAN (ours)"],
      "train_seconds": round(result.seconds, 1),
      "train_rois_per_second": round(result.rois_per_second, 1),
      "steps": result.steps, "pretrain_steps": result.pretrain_steps,
      "batch_size": cfg.train.batch_size, "precision": result.precision or cfg.train.precision,
      "rois": counts, "val_images": summary["images"], "detections": summary["detections"],
      "timings_seconds": {k: round(v, 1) for k, v in timings.items()},
      "total_seconds": round(time.time() - t0, 1)}
  with open(os.path.join(paths.run_dir, "metrics.json"), "w") as f:
    json.dump(metrics, f, indent=2)
  return metrics


def _previous_train_result(run_dir):
  from tinyfaces_tf import train as train_lib
  path = os.path.join(run_dir, "train_result.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return train_lib.TrainResult(**json.load(f))


def keras_policy_reset():
  import keras
  keras.mixed_precision.set_dtype_policy("float32")


def format_summary(metrics, paths):
  rows = ["", "WIDER-format demo validation AP (official protocol):",
          f"{'':22s}{'Easy':>8s}{'Medium':>8s}{'Hard':>8s}"]
  for label, key in (("MTCNN (baseline)", "baseline_ap"), ("GAN re-scored (ours)", "gan_ap")):
    ap = metrics[key]
    rows.append(f"{label:22s}{ap['easy']:8.3f}{ap['medium']:8.3f}{ap['hard']:8.3f}")
  rows += [f"trained {metrics['steps']} steps in {metrics['train_seconds']:.0f}s "
           f"({metrics['train_rois_per_second']:.0f} RoIs/s); total {metrics['total_seconds']:.0f}s",
           f"files: {paths.run_dir}/metrics.json, {paths.figures}/{{pr_curves,sr_grid,detections}}.png,",
           f"       {paths.export_dir} (SavedModel), {paths.run_dir}/checkpoints, {paths.run_dir}/tb"]
  return "\n".join(rows)
