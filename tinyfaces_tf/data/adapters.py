"""Dataset adapters: what a dataset family contributes to a Task, behind one interface.

An adapter knows a family's raw layout (image names and paths per split), its TFDS RoI builder,
its result-file format and its official evaluation. The task layer (``task.py``) and every entry
point go through it, so a second family (COCO) adds an adapter, not a copy of the pipeline.
"""
import abc
import os
from typing import Dict, List, Optional

DATASET_FAMILIES = ("wider_face", "coco", "fddb")

BACKGROUND_NAME = "background"  # label 0 of every family


class DatasetAdapter(abc.ABC):
  """One dataset family rooted at ``root`` (its distributed layout)."""

  family: str
  rois_dataset: str   # the TFDS builder name of its training RoIs
  train_split: str    # the raw split RoIs are cut from for training
  eval_split: str     # the raw split detections are evaluated on

  def __init__(self, root: Optional[str] = None, train_split: Optional[str] = None,
               eval_split: Optional[str] = None):
    """``train_split`` / ``eval_split``: the raw splits, None for the family's defaults."""
    self.root = None if root is None else os.fspath(root)
    self.train_split = train_split or type(self).train_split
    self.eval_split = eval_split or type(self).eval_split
    for split in (self.train_split, self.eval_split):
      self.check_split(split)

  def check_split(self, split: str):
    """ValueError naming ``split`` when the family has no such split."""

  def require_root(self):
    if self.root is None:
      raise ValueError(f"the {self.family} adapter needs the dataset's root directory")
    return self.root

  def class_names(self) -> List[str]:
    """Name of each label 0..K (0 = background): faces, unless the family has categories."""
    return [BACKGROUND_NAME, "face"]

  @abc.abstractmethod
  def image_names(self, split: str) -> List[str]:
    """Names of a split's images, relative to ``image_root(split)``."""

  @abc.abstractmethod
  def image_root(self, split: str) -> str:
    """The folder a split's image names are relative to."""

  @abc.abstractmethod
  def roi_builder(self, crop, sampler, data_dir: str, **builder_kwargs):
    """The TFDS builder of training RoIs cut with ``crop`` and ``sampler``, reading ``root``;
    ``builder_kwargs`` (beam, proposer, skipped_dir) go to the builder."""

  @abc.abstractmethod
  def write_detections(self, results_dir: str, image_name: str, boxes_xyxy, scores,
                       labels=None) -> str:
    """Writes one image's detections (``labels`` 1..K, None for faces or class-agnostic
    boxes) in the family's result format; returns the file."""

  @abc.abstractmethod
  def evaluate(self, results: Dict[str, str], out_dir: str) -> Dict[str, Dict[str, float]]:
    """Scores result directories ({label: dir}) with the official protocol, writes the report
    into ``out_dir`` and returns {label: {metric: value}}."""


class WiderFaceAdapter(DatasetAdapter):
  """WIDER FACE (or the project's demo dataset, same layout) and its eval_tools protocol."""

  family = "wider_face"
  rois_dataset = "wider_face_rois"
  train_split = "train"
  eval_split = "val"

  def check_split(self, split):
    from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
    if split not in wider_face.SPLITS:
      raise ValueError(f"unknown WIDER FACE split {split!r}; expected one of {wider_face.SPLITS}")

  def dataset(self):
    from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
    return wider_face.WiderFace(self.require_root())

  def image_names(self, split):
    return self.dataset().names(split)

  def image_root(self, split):
    return self.dataset().images_dir(split)

  def roi_builder(self, crop, sampler, data_dir, **builder_kwargs):
    # pylint: disable=g-import-not-at-top  (tensorflow_datasets is slow to import)
    from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as rois
    config = rois.WiderFaceRoisConfig(crop=crop, sampler=sampler)
    if config.name in rois.Builder.builder_configs:  # TFDS wants predefined configs by name
      config = config.name
    return rois.Builder(config=config, data_dir=os.fspath(data_dir), **builder_kwargs)

  def roi_config_name(self, crop, sampler):
    from tinyfaces_tf.datasets.wider_face_rois import wider_face_rois_dataset_builder as rois
    return rois.config_name(crop, sampler)

  def write_detections(self, results_dir, image_name, boxes_xyxy, scores, labels=None):
    del labels  # one class: faces
    from tinyfaces_tf.data import result_files  # pylint: disable=g-import-not-at-top
    return result_files.write_detections(results_dir, image_name, boxes_xyxy, scores)

  def ground_truth_dir(self):
    path = self.dataset().ground_truth_dir
    if path is None:
      raise FileNotFoundError(f"{self.root}: no eval_tools/ground_truth folder (the official "
                              f"wider_face_val.mat and wider_{{easy,medium,hard}}_val.mat)")
    return path

  def evaluate(self, results, out_dir):
    from tinyfaces_tf.evaluation import report  # pylint: disable=g-import-not-at-top
    return report.evaluate_dirs(results, self.ground_truth_dir(), out_dir)


class CocoAdapter(DatasetAdapter):
  """COCO (or the project's COCO-format demo, same layout), pycocotools' evaluation; results are
  one COCO results list per image (a job resumes image by image), gathered for evaluation."""

  family = "coco"
  rois_dataset = "coco_rois"
  train_split = "train2017"
  eval_split = "val2017"
  RESULTS_FILE = "coco_results.json"  # the gathered results list, beside the per-image files
  METRICS_FILE = "coco_ap.json"

  def check_split(self, split):
    from tinyfaces_tf.data import coco  # pylint: disable=g-import-not-at-top
    coco.CocoDataset.check_split(split)

  def dataset(self):
    from tinyfaces_tf.data import coco  # pylint: disable=g-import-not-at-top
    if getattr(self, "_dataset", None) is None:
      self._dataset = coco.CocoDataset(self.require_root())
    return self._dataset

  def image_names(self, split):
    return self.dataset().names(split)

  def image_root(self, split):
    del split  # names are "<folder>/<file>" under the root (trainval35k spans two folders)
    return self.require_root()

  def roi_builder(self, crop, sampler, data_dir, **builder_kwargs):
    from tinyfaces_tf.datasets.coco_rois import coco_rois_dataset_builder as rois
    config = rois.CocoRoisConfig(crop=crop, sampler=sampler, train_split=self.train_split,
                                 eval_split=self.eval_split)
    if config.name in rois.Builder.builder_configs:
      config = config.name
    return rois.Builder(config=config, data_dir=os.fspath(data_dir), **builder_kwargs)

  def roi_config_name(self, crop, sampler):
    from tinyfaces_tf.datasets.coco_rois import coco_rois_dataset_builder as rois
    return rois.config_name(crop, sampler, self.train_split, self.eval_split)

  def category_ids(self):
    """COCO category id of each label 1..K (the evaluation split's categories)."""
    return self.dataset().category_ids(self.eval_split)

  def class_names(self):
    return [BACKGROUND_NAME] + [c["name"] for c in self.dataset().categories(self.eval_split)]

  def write_detections(self, results_dir, image_name, boxes_xyxy, scores, labels=None):
    import numpy as np  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf.data import coco  # pylint: disable=g-import-not-at-top
    boxes = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    scores = np.asarray(scores, np.float64).reshape(-1)
    categories = np.asarray([0] + self.category_ids(), np.int64)
    labels = None if labels is None else np.asarray(labels, np.int64).reshape(-1)
    if labels is None or (len(labels) and labels.min() < 1):
      # A class-agnostic box (a proposer's without a class) is reported once for every class
      # with its score: the baseline a class-agnostic proposer gives.
      agnostic = np.ones(len(scores), bool) if labels is None else labels < 1
      k = len(categories) - 1
      keep = ~agnostic
      boxes = np.concatenate([boxes[keep], np.repeat(boxes[agnostic], k, axis=0)])
      new_labels = np.tile(np.arange(1, k + 1), int(agnostic.sum()))
      labels = np.concatenate([labels[keep] if labels is not None else np.zeros(0, np.int64),
                               new_labels])
      scores = np.concatenate([scores[keep], np.repeat(scores[agnostic], k)])
    return coco.write_image_results(results_dir, image_name, boxes, scores, categories[labels])

  def evaluate(self, results, out_dir):
    from tinyfaces_tf import atomic  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf.data import coco  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf.evaluation import coco as coco_eval  # pylint: disable=g-import-not-at-top
    dataset = self.dataset()
    names = dataset.names(self.eval_split)
    image_ids = [coco.image_id_from_name(n) for n in names]
    ground_truth = [c.dataset for c in dataset.coco(self.eval_split)]
    if len(ground_truth) != 1:
      raise ValueError(f"evaluation split {self.eval_split} spans several annotation files")
    metrics = {}
    for label, results_dir in results.items():
      detections = coco.gather_results(results_dir, names)
      atomic.write_json(os.path.join(results_dir, self.RESULTS_FILE), detections)
      metrics[label] = coco_eval.evaluate_coco(ground_truth[0], detections, image_ids)
    atomic.write_json(os.path.join(out_dir, self.METRICS_FILE), metrics)
    return metrics


class FddbAdapter(DatasetAdapter):
  """FDDB (or an FDDB-layout copy of a WIDER split, ``data/fddb.py``): evaluation only, as in the
  journal's Fig. 9 (a WIDER-trained model tested on FDDB). Splits: "all" (every fold present) or
  "fold-01" ... "fold-10". Detections are one file per image (a job resumes), gathered into the
  official ``fold-XX-out.txt`` files and scored with the discrete and continuous ROC."""

  family = "fddb"
  rois_dataset = ""  # FDDB has no training split
  train_split = "all"
  eval_split = "all"
  ROC_FIGURE = "fddb_roc.png"
  METRICS_FILE = "fddb_tpr.json"
  FALSE_POSITIVES = 500  # the operating point FDDB results are compared at

  def check_split(self, split):
    if split != "all" and not (split.startswith("fold-") and split[5:].isdigit()
                               and 1 <= int(split[5:]) <= 10):
      raise ValueError(f"unknown FDDB split {split!r}; expected 'all' or 'fold-01' ... 'fold-10'")

  def dataset(self):
    from tinyfaces_tf.data import fddb  # pylint: disable=g-import-not-at-top
    return fddb.Fddb(self.require_root())

  def folds(self, split):
    self.check_split(split)
    return self.dataset().folds() if split == "all" else [int(split[5:])]

  def image_names(self, split):
    from tinyfaces_tf.data import fddb  # pylint: disable=g-import-not-at-top
    # FDDB lists names without the extension; jobs open <image_root>/<name>.
    return [n + fddb.IMAGE_EXT for n in self.dataset().all_names(self.folds(split))]

  def image_root(self, split):
    del split
    return self.dataset().images_dir

  def roi_builder(self, crop, sampler, data_dir, **builder_kwargs):
    raise ValueError("FDDB has no training split: train on WIDER FACE and evaluate on FDDB "
                     "(journal Fig. 9)")

  def roi_config_name(self, crop, sampler):
    return self.roi_builder(crop, sampler, "")

  def write_detections(self, results_dir, image_name, boxes_xyxy, scores, labels=None):
    del labels  # faces
    from tinyfaces_tf.data import fddb  # pylint: disable=g-import-not-at-top
    name = image_name[:-len(fddb.IMAGE_EXT)] if image_name.endswith(fddb.IMAGE_EXT) else image_name
    return fddb.write_image_detections(results_dir, name, boxes_xyxy, scores)

  def evaluate(self, results, out_dir):
    from tinyfaces_tf import atomic  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf.data import fddb  # pylint: disable=g-import-not-at-top
    from tinyfaces_tf.evaluation import fddb as fddb_eval  # pylint: disable=g-import-not-at-top
    dataset = self.dataset()
    folds = self.folds(self.eval_split)
    rocs, metrics = {}, {}
    for label, results_dir in results.items():
      fold_dir = os.path.join(results_dir, fddb.FOLDS_DIR + "-out")
      for fold in folds:
        fddb.gather_fold_detections(results_dir, fold_dir, fold, dataset.names(fold))
      roc = rocs[label] = fddb.evaluate_fold_outputs(dataset, fold_dir, folds)
      fddb_eval.write_roc_files(roc, out_dir, prefix=_file_safe(label) + "-")
      metrics[label] = {f"{score}_tpr_at_{self.FALSE_POSITIVES}_fp":
                        roc.detection_rate_at(self.FALSE_POSITIVES, score)
                        for score in fddb_eval.SCORES}
    fddb_eval.plot_fddb_roc(rocs, os.path.join(out_dir, self.ROC_FIGURE),
                            fp_at=self.FALSE_POSITIVES)
    atomic.write_json(os.path.join(out_dir, self.METRICS_FILE), metrics)
    return metrics


def _file_safe(label: str) -> str:
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)


ADAPTERS = {cls.family: cls for cls in (WiderFaceAdapter, CocoAdapter, FddbAdapter)}
assert tuple(ADAPTERS) == DATASET_FAMILIES


def get_adapter(family: str, root: Optional[str] = None, train_split: Optional[str] = None,
                eval_split: Optional[str] = None) -> DatasetAdapter:
  if family not in ADAPTERS:
    raise ValueError(f"unknown dataset family {family!r}; expected one of {DATASET_FAMILIES}")
  return ADAPTERS[family](root, train_split, eval_split)
