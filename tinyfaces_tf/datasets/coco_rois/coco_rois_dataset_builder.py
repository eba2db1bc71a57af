"""coco_rois: COCO training RoIs for MTGAN (LR/HR patch pairs, K + 1-class labels, box targets).

The features of ``wider_face_rois`` (shared in ``datasets/roi_builder.py``) with the label a
class: 1..K the contiguous label of the matched object's category (MTGAN 4.5: IoU >= 0.5 with
the best-IoU ground truth), 0 background (IoU < 0.35 with every object and not mostly inside a
crowd region), plus the COCO ``category_id`` of that label (0 for background) and the image id.
The box target is the Fast R-CNN encoding of the matched object; the class-specific regression
loss picks the label's deltas. Reading is ``tinyfaces_tf.data.coco`` (pycocotools).

Build (from the repository root):
  python -m tinyfaces_tf.datasets.wider_face_rois.tfds_build tinyfaces_tf/datasets/coco_rois \
      --manual_dir=COCO_ROOT --config=x1.0 --data_dir=DATA_DIR
or `tinyfaces-data rois --config=mtgan_coco --root=COCO_ROOT` for any config's crop, sampler and
splits (``data.train_split`` / ``data.eval_split``).
"""
import dataclasses
from typing import Iterator, Optional, Tuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import coco
from tinyfaces_tf.data import roi_sampler
from tinyfaces_tf.datasets import roi_builder

# MTGAN crops RoIs without context (x1.0); x2.0 is the journal's context for comparison.
CONTEXT_FACTORS = (1.0, 2.0)
TRAIN_SPLIT, EVAL_SPLIT = "train2017", "val2017"


def config_name(crop: roi_crop.CropConfig,
                sampler: roi_sampler.RoiSamplerConfig = roi_sampler.RoiSamplerConfig(),
                train_split: str = TRAIN_SPLIT, eval_split: str = EVAL_SPLIT) -> str:
  """"x1.0" for default settings and the 2017 splits, else with a hash of the settings."""
  splits = ({} if (train_split, eval_split) == (TRAIN_SPLIT, EVAL_SPLIT)
            else {"train_split": train_split, "eval_split": eval_split})
  return roi_builder.config_name(crop, sampler, **splits)


class CocoRoisConfig(tfds.core.BuilderConfig):
  """One crop, RoI sampler setting and pair of COCO splits (TFDS "train" and "validation")."""

  def __init__(self, *, crop: roi_crop.CropConfig,
               sampler: roi_sampler.RoiSamplerConfig = roi_sampler.RoiSamplerConfig(),
               train_split: str = TRAIN_SPLIT, eval_split: str = EVAL_SPLIT, **kwargs):
    for split in (train_split, eval_split):
      coco.CocoDataset.check_split(split)
    description = (f"COCO {train_split} / {eval_split} RoIs, context x{crop.context:.1f}. "
                   f"crop={dataclasses.asdict(crop)} sampler={dataclasses.asdict(sampler)}")
    super().__init__(name=config_name(crop, sampler, train_split, eval_split),
                     description=description, **kwargs)
    self.crop, self.sampler = crop, sampler
    self.splits = {"train": train_split, "validation": eval_split}


class Builder(roi_builder.RoiBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """COCO RoIs for MTGAN (Zhang et al.): one example per RoI."""

  code_path = epath.Path(__file__)  # see wider_face_rois: avoids importlib_resources
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [CocoRoisConfig(crop=roi_crop.CropConfig(context=m)) for m in CONTEXT_FACTORS]
  DEFAULT_CONFIG_NAME = config_name(roi_crop.CropConfig(context=1.0))
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put COCO (https://cocodataset.org/#download) or the project's COCO-format demo in `manual_dir`
  in the layout it is distributed in:

    DIR/train2017/<id>.jpg   DIR/val2017/<id>.jpg
    DIR/annotations/instances_train2017.json   DIR/annotations/instances_val2017.json

  (2014 splits: train2014/, val2014/ and instances_{train,val,minival,valminusminival}2014.json.)
  Optional: a baseline detector's boxes in COCO results format, per split, at

    DIR/proposals/<split>.json

  Images without proposals get ground-truth-jittered positives and random backgrounds only.
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(roi_builder.roi_features(
            self.builder_config.crop,
            label_doc="1..K contiguous class of the matched object, 0 background (-1 ignored).",
            **{"category_id": tfds.features.Scalar(np.int64,
                                                   doc="COCO category id of label; 0 background."),
               "image/id": tfds.features.Scalar(np.int64, doc="COCO image id."),
               "image/filename": tfds.features.Text(doc="<folder>/<file> under the root.")})),
        supervised_keys=None,
        homepage="https://cocodataset.org/",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = str(dl_manager.manual_dir)
    dataset = coco.CocoDataset(root)
    for split in self.builder_config.splits.values():
      for path in dataset.annotation_files(split):
        if not epath.Path(path).exists():
          raise FileNotFoundError(
              f"{path} not found: --manual_dir={root} must hold COCO in its distributed "
              f"layout.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {tfds_split: self._generate_examples(root, split)
            for tfds_split, split in self.builder_config.splits.items()}

  def _generate_examples(self, root, split):
    examples = ImageExamples(root, split, self.builder_config.crop, self.builder_config.sampler,
                             self.proposer)
    return self.examples_of(examples.dataset.images(split), examples, examples.record_path,
                            split)


class ImageExamples:
  """The (key, example) pairs of one COCO image (see wider_face_rois.ImageExamples): proposals
  from <root>/proposals/<split>.json, else the proposer's, else none. Picklable for Beam."""

  def __init__(self, root: str, split: str, crop: roi_crop.CropConfig,
               sampler: roi_sampler.RoiSamplerConfig, proposer: Optional[str] = None):
    self.dataset = coco.CocoDataset(root)
    self.split, self.crop, self.sampler, self.proposer_spec = split, crop, sampler, proposer
    # Index 0 (background) -> 0, label k -> its COCO category id.
    self.category_of_label = np.asarray([0] + self.dataset.category_ids(split), np.int64)
    self._proposer = self._stored = None

  def __getstate__(self):
    return dict(self.__dict__, _proposer=None, _stored=None)

  def record_path(self, record: coco.CocoImage) -> str:
    return self.dataset.image_path(record.name)

  def proposals(self, record: coco.CocoImage, image: np.ndarray) -> Optional[np.ndarray]:
    """xyxy float32 [P, 4] proposals of one image (class-agnostic), or None."""
    if self._stored is None:
      path = self.dataset.proposals_file(self.split)
      self._stored = coco.read_results_file(path) if epath.Path(path).exists() else {}
    if record.image_id in self._stored:
      return self._stored[record.image_id].boxes_xyxy.astype(np.float32)
    if self.proposer_spec is None:
      return None
    if self._proposer is None:
      from tinyfaces_tf import proposals  # pylint: disable=g-import-not-at-top
      self._proposer = proposals.make_proposer(self.proposer_spec)
    return self._proposer.propose(image, record.name).boxes

  def __call__(self, record: coco.CocoImage) -> Iterator[Tuple[str, dict]]:
    """Raises UnreadableImageError for an image that cannot be read."""
    try:
      image = self.dataset.read_image(record.name)
    except (ValueError, FileNotFoundError) as e:
      raise roi_builder.UnreadableImageError(str(e)) from e
    rng = np.random.default_rng(roi_builder.image_seed(record.name))
    examples = roi_sampler.make_training_examples(
        image, record.boxes_xyxy, None, self.proposals(record, image), self.sampler, self.crop,
        rng, gt_labels=record.labels, crowd_boxes=record.crowd_xyxy)
    labels = examples["labels"]
    return roi_builder.encode_examples(
        record.name, examples,
        category_id=lambda i: int(self.category_of_label[max(labels[i], 0)]),
        **{"image/id": lambda i: record.image_id})


_CITATION = """
@inproceedings{lin2014microsoft,
  title={Microsoft COCO: Common Objects in Context},
  author={Lin, Tsung-Yi and Maire, Michael and Belongie, Serge and others},
  booktitle={ECCV}, year={2014}}
@article{zhang2020multi,
  title={Multi-Task Generative Adversarial Network for Detecting Small Objects in the Wild},
  author={Zhang, Yongqiang and Bai, Yancheng and Ding, Mingli and Ghanem, Bernard},
  journal={IJCV}, year={2020}}
"""
