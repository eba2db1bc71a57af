"""Dataset adapters: what a dataset family contributes to a Task, behind one interface.

An adapter knows a family's raw layout (image names and paths per split), its TFDS RoI builder,
its result-file format and its official evaluation. The task layer (``task.py``) and every entry
point go through it, so a second family (COCO) adds an adapter, not a copy of the pipeline.
"""
import abc
import os
from typing import Dict, List, Optional

DATASET_FAMILIES = ("wider_face",)


class DatasetAdapter(abc.ABC):
  """One dataset family rooted at ``root`` (its distributed layout)."""

  family: str
  rois_dataset: str   # the TFDS builder name of its training RoIs
  train_split: str    # the raw split RoIs are cut from for training
  eval_split: str     # the raw split detections are evaluated on

  def __init__(self, root: Optional[str] = None):
    self.root = None if root is None else os.fspath(root)

  def require_root(self):
    if self.root is None:
      raise ValueError(f"the {self.family} adapter needs the dataset's root directory")
    return self.root

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
  def write_detections(self, results_dir: str, image_name: str, boxes_xyxy, scores) -> str:
    """Writes one image's detections in the family's result format; returns the file."""

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

  def write_detections(self, results_dir, image_name, boxes_xyxy, scores):
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


ADAPTERS = {cls.family: cls for cls in (WiderFaceAdapter,)}
assert tuple(ADAPTERS) == DATASET_FAMILIES


def get_adapter(family: str, root: Optional[str] = None) -> DatasetAdapter:
  if family not in ADAPTERS:
    raise ValueError(f"unknown dataset family {family!r}; expected one of {DATASET_FAMILIES}")
  return ADAPTERS[family](root)
