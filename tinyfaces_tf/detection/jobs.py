"""Split-level jobs that write files: a proposer's boxes and the detector's detections over every
image of a split, as WIDER result files (``data/result_files.py``), with one progress bar each.

Undecodable images are skipped, counted and returned with their paths; every other image is
processed, so one bad file never stops a job over thousands.
"""
import dataclasses
import os
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from tinyfaces_tf import imaging
from tinyfaces_tf.data import result_files
from tinyfaces_tf.progress import Progress


SKIPPED_FILE = "skipped_images.txt"  # in a job's output folder: "path<TAB>reason" per line


@dataclasses.dataclass
class JobSummary:
  images: int = 0                                   # images processed
  detections: int = 0                               # boxes written
  skipped: List[Tuple[str, str]] = dataclasses.field(default_factory=list)  # (path, reason)
  already_done: int = 0                             # images a resumed job found finished

  def write_skipped(self, out_dir: str) -> Optional[str]:
    """Lists the skipped images in ``out_dir/skipped_images.txt`` (only when there are any)."""
    if not self.skipped:
      return None
    return imaging.write_skipped_report(os.path.join(out_dir, SKIPPED_FILE), self.skipped)


def iter_images(image_root: str, names: Sequence[str], summary: JobSummary,
                what: str = "image") -> Iterator[Tuple[str, np.ndarray]]:
  """(name, uint8 image) of every decodable image of ``names`` under ``image_root``, with a
  progress bar; undecodable or missing files go to ``summary.skipped``."""
  progress = Progress(len(names), what)
  for i, name in enumerate(names):
    path = os.path.join(image_root, *name.split("/"))
    try:
      image = imaging.load_image(path)
    except (ValueError, FileNotFoundError) as e:
      summary.skipped.append((path, str(e)))
    else:
      summary.images += 1
      yield name, image
    progress.update(i + 1)


# (dir, image name, boxes xyxy, scores, labels or None) -> file: a family's result format.
Writer = Callable[..., str]


def write_wider(results_dir: str, image_name: str, boxes_xyxy, scores, labels=None) -> str:
  """WIDER result files (faces: ``labels`` unused)."""
  del labels
  return result_files.write_detections(results_dir, image_name, boxes_xyxy, scores)


def shard(names: Sequence[str], index: int, count: int) -> List[str]:
  """Shard ``index`` of ``count`` (every count-th name from the index-th: each shard gets a
  similar mix of events, and the shards together are ``names``, each name once)."""
  if not 0 <= index < count:
    raise ValueError(f"shard {index}/{count}: expected 0 <= index < count")
  return list(names)[index::count]


def propose_split(proposer, image_root: str, names: Sequence[str], out_dir: str,
                  limit: Optional[int] = None,
                  write: Writer = write_wider,
                  done: Optional[Callable[[str], bool]] = None) -> JobSummary:
  """Writes the proposer's boxes and scores for every image as result files under ``out_dir``.

  ``done(name)`` -> True skips an image whose result is already written (result files are
  written atomically, so one that exists is complete): a killed job run again resumes.
  """
  summary = JobSummary()
  names = list(names)[:limit]
  if done is not None:
    todo = [name for name in names if not done(name)]
    summary.already_done = len(names) - len(todo)
    names = todo
  for name, image in iter_images(image_root, names, summary):
    proposals = proposer.propose(image, name)
    write(out_dir, name, proposals.boxes, proposals.scores, proposals.labels)
    summary.detections += len(proposals)
  summary.write_skipped(out_dir)
  return summary


def detect_split(detector: Callable, image_root: str, names: Sequence[str], proposer,
                 out_dir: str, baseline_dir: Optional[str] = None,
                 limit: Optional[int] = None,
                 write: Writer = write_wider) -> JobSummary:
  """Detects every image of a split and writes result files.

  Args:
    detector: detection.Detector or export.SavedModelDetector (its ``detect_classes``, with the
      proposals' labels), or any (image, boxes, scores) -> (boxes, scores) callable.
    image_root: folder holding ``<event>/<file>.jpg`` (e.g. WIDER_val/images).
    names: "event/file.jpg" names (from the split's annotation file or test file list).
    proposer: a tinyfaces_tf.proposals Proposer.
    out_dir: result directory for our detections (``<event>/<stem>.txt``).
    baseline_dir: if given, the proposer's own boxes and scores are written there too, so the
      baseline is scored on exactly the same proposals.
    limit: only the first ``limit`` images.
    write: (dir, image name, boxes xyxy, scores, labels) -> file; the dataset family's result
      format (``DatasetAdapter.write_detections``).
  """
  summary = JobSummary()
  detect_classes = getattr(detector, "detect_classes", None)
  for name, image in iter_images(image_root, list(names)[:limit], summary):
    proposals = proposer.propose(image, name)
    if detect_classes is not None:
      boxes, scores, labels = detect_classes(image, proposals.boxes, proposals.scores,
                                             proposals.labels)
    else:
      (boxes, scores), labels = detector(image, proposals.boxes, proposals.scores), None
    write(out_dir, name, boxes, scores, labels)
    if baseline_dir:
      write(baseline_dir, name, proposals.boxes, proposals.scores, proposals.labels)
    summary.detections += len(scores)
  summary.write_skipped(out_dir)
  return summary


def classification_accuracy_split(score_rois: Callable, crop, image_root: str, records,
                                  proposer, positive_iou: float = 0.5,
                                  negative_iou: float = 0.35) -> dict:
  """MTGAN Table 9: the discriminator's classification accuracy on a proposer's RoIs.

  Every proposal of every image is cropped as at detection, scored by ``score_rois`` (an
  export's signature: LR patches -> ``class_probs``) and its argmax class (0 = background)
  compared with its label: the class of the best-IoU object when IoU > ``positive_iou``
  (positives), 0 when IoU < ``negative_iou`` with every object (negatives), uncounted between.

  Args:
    score_rois: e.g. ``SavedModelDetector.model.score_rois``.
    crop: the export's CropConfig.
    image_root: the folder the records' names are relative to.
    records: (name, gt boxes xyxy [G, 4], gt labels [G] 1..K) per image.
    proposer: a Proposer.
  Returns:
    ``evaluation.coco_analysis.ClassificationAccuracy.result()``: positive / negative / all
    accuracy and the counts; plus ``skipped_images``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf import roi_crop  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.evaluation import coco_analysis  # pylint: disable=g-import-not-at-top
  records = list(records)
  truth = {name: (boxes, labels) for name, boxes, labels in records}
  accuracy = coco_analysis.ClassificationAccuracy(positive_iou, negative_iou)
  summary = JobSummary()
  names = [name for name, _, _ in records]
  for name, image in iter_images(image_root, names, summary):
    proposals = proposer.propose(image, name)
    if not len(proposals):
      continue
    _, lr = roi_crop.crop_rois_with_context(tf.constant(image), tf.constant(proposals.boxes),
                                            crop)
    probs = score_rois(lr=lr)["class_probs"].numpy()
    boxes, labels = truth[name]
    accuracy.update(proposals.boxes, probs.argmax(axis=-1), boxes, labels)
  return {**accuracy.result(), "skipped_images": len(summary.skipped)}
