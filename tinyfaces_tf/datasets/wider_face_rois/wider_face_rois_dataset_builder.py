"""wider_face_rois: WIDER FACE training RoIs (LR/HR patch pairs, labels, box targets).

One example per RoI: the RoI's context window (RoI scaled by m about its centre, padded where it
leaves the image) resized to the 64x64 HR patch, its x4 bicubic down-sampling as the 16x16 LR
patch, the label (1 face, 0 background; -1 "ignored" only with RoiConfig.keep_ignored, which
these configs leave off), the Fast R-CNN regression target of the matched face (zeros
otherwise), the RoI itself, its best IoU with a valid face and the source image name. RoI
sampling is `tinyfaces_tf.data.roi_sampler`, patch making `tinyfaces_tf.roi_crop` (the op the
detector serves with); this builder only walks WIDER (or the project's demo dataset, same layout)
and serialises.

Build (from the repository root):
  tfds build tinyfaces_tf/datasets/wider_face_rois --manual_dir=WIDER_ROOT --config=x2.0 \
      --data_dir=DATA_DIR
The `tfds` command of tensorflow-datasets 4.9.10 needs apache-beam and mlcroissant installed
just to start (the `tfds-cli` extra); without them the same build runs as
  python -m tinyfaces_tf.datasets.wider_face_rois.tfds_build \
      tinyfaces_tf/datasets/wider_face_rois --manual_dir=... ...
Without --config every context factor is built. `tinyfaces_tf.task.Task.build_rois` (and
`tinyfaces-data rois`) builds the config an ExperimentConfig names (any crop and sampler settings).

With apache-beam installed (the `beam` extra) the build is a Beam pipeline (TFDS's Beam dataset
pattern): `--beam_pipeline_options=direct_num_workers=N,direct_running_mode=multi_processing`
spreads the images over N local processes, a Dataflow / Flink / Spark runner's options over a
cluster (README "Scaling out"). Keys and per-image seeds make every runner write the examples of
the in-process build.
"""
import dataclasses
from typing import Iterator, Optional, Tuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tinyfaces_tf import boxes
from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import roi_sampler
from tinyfaces_tf.data import wider_face
from tinyfaces_tf.datasets import roi_builder
from tinyfaces_tf.datasets.roi_builder import UnreadableImageError
from tinyfaces_tf.datasets.roi_builder import config_name
from tinyfaces_tf.datasets.roi_builder import image_seed

# Journal Table 3 context factors; x2.0 is the one the journal keeps.
CONTEXT_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)
# TFDS split name -> WIDER's folder / file infix.
SPLITS = {"train": "train", "validation": "val"}


class WiderFaceRoisConfig(tfds.core.BuilderConfig):
  """BuilderConfig of one crop (context factor m, patch sizes) and RoI sampler setting."""

  def __init__(self, *, crop: roi_crop.CropConfig,
               sampler: roi_sampler.RoiSamplerConfig = roi_sampler.RoiSamplerConfig(), **kwargs):
    description = (f"Context window = RoI scaled by {crop.context:.1f} about its centre. "
                   f"crop={dataclasses.asdict(crop)} sampler={dataclasses.asdict(sampler)}")
    super().__init__(name=config_name(crop, sampler), description=description, **kwargs)
    self.crop, self.sampler = crop, sampler


class Builder(roi_builder.RoiBuilderMixin, tfds.core.GeneratorBasedBuilder):
  """WIDER FACE RoIs for the tiny-face GAN (Bai et al.; SPEC section 5)."""

  # TFDS 4.9.10 finds a package builder's file through `importlib_resources`, which it only
  # requires on Python < 3.9; naming the file here avoids that import (and is what TFDS's own
  # fallback returns).
  code_path = epath.Path(__file__)
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  BUILDER_CONFIGS = [WiderFaceRoisConfig(crop=roi_crop.CropConfig(context=m))
                     for m in CONTEXT_FACTORS]
  DEFAULT_CONFIG_NAME = config_name(roi_crop.CropConfig())  # the journal's x2.0
  MANUAL_DOWNLOAD_INSTRUCTIONS = """
  Put WIDER FACE (http://shuoyang1213.me/WIDERFACE/) or the project's demo dataset in
  `manual_dir` (tfds build ... --manual_dir=DIR) in the layout it is distributed in:

    DIR/WIDER_train/images/<event>/<file>.jpg
    DIR/WIDER_val/images/<event>/<file>.jpg
    DIR/wider_face_split/wider_face_train_bbx_gt.txt
    DIR/wider_face_split/wider_face_val_bbx_gt.txt

  Optional: a baseline detector's proposals in WIDER result format (one
  `<event>/<file stem>.txt` per image: name line, count line, `x y w h score` lines), read per
  split from

    DIR/proposals/train/   and   DIR/proposals/val/

  Images without a proposal file (or a split without the folder) get ground-truth-jittered
  positives and random background windows only (tinyfaces_tf.data.roi_sampler).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict(roi_builder.roi_features(
            self.builder_config.crop, label_doc="1 face, 0 background (-1 ignored).",
            **{"image/filename": tfds.features.Text(doc="WIDER name event/file.jpg.")})),
        supervised_keys=None,
        homepage="http://shuoyang1213.me/WIDERFACE/",
        citation=_CITATION,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    root = epath.Path(dl_manager.manual_dir)
    for split in SPLITS.values():
      gt = root / "wider_face_split" / f"wider_face_{split}_bbx_gt.txt"
      if not gt.exists():
        raise FileNotFoundError(
            f"{gt} not found: --manual_dir={root} must hold WIDER FACE in its distributed "
            f"layout.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return {tfds_split: self._generate_examples(root, split)
            for tfds_split, split in SPLITS.items()}

  def _generate_examples(self, root, split):
    annotations = wider_face.WiderFace(str(root)).annotations(split)
    examples = ImageExamples(str(root), split, self.builder_config.crop,
                             self.builder_config.sampler, self.proposer)
    return self.examples_of(annotations, examples, examples.record_path, split)


class ImageExamples:
  """The (key, example) pairs of one annotated image: read it, take its proposals (a file under
  <root>/proposals/<split>/, else the proposer's, else none), sample and crop RoIs with the
  image's own seed. Picklable, so Beam can ship it to workers; the proposer is built where it
  runs, once per process."""

  def __init__(self, root: str, split: str, crop: roi_crop.CropConfig,
               sampler: roi_sampler.RoiSamplerConfig, proposer: Optional[str] = None):
    self.dataset = wider_face.WiderFace(root)
    self.split, self.crop, self.sampler, self.proposer_spec = split, crop, sampler, proposer
    self._proposer = None

  def __getstate__(self):
    return dict(self.__dict__, _proposer=None)

  def image_path(self, name: str) -> str:
    return self.dataset.image_path(self.split, name)

  def record_path(self, annotation) -> str:
    return self.image_path(annotation.name)

  def proposals(self, name: str, image: np.ndarray) -> Optional[np.ndarray]:
    """xyxy float32 [P, 4] proposals of one image, or None."""
    path = result_files.result_path(self.dataset.proposals_dir(self.split), name)
    if epath.Path(path).exists():  # (TFDS builders use epath: GCS and other file systems)
      xywh, _ = result_files.read_result_file(path)
      return boxes.xywh_to_xyxy(xywh).astype(np.float32)
    if self.proposer_spec is None:
      return None
    if self._proposer is None:
      from tinyfaces_tf import proposals  # pylint: disable=g-import-not-at-top
      self._proposer = proposals.make_proposer(self.proposer_spec)
    return self._proposer.propose(image, name).boxes

  def __call__(self, annotation) -> Iterator[Tuple[str, dict]]:
    """Raises UnreadableImageError for an image that cannot be read (a malformed proposal file
    raises ValueError naming its line: that stops the build)."""
    name = annotation.name
    try:
      image = self.dataset.read_image(self.split, name)
    except (ValueError, FileNotFoundError) as e:
      raise UnreadableImageError(str(e)) from e
    rng = np.random.default_rng(image_seed(name))
    examples = roi_sampler.make_training_examples(
        image, annotation.boxes_xyxy, annotation.valid, self.proposals(name, image),
        self.sampler, self.crop, rng)
    return roi_builder.encode_examples(name, examples)


_CITATION = """
@inproceedings{yang2016wider,
  title={WIDER FACE: A Face Detection Benchmark},
  author={Yang, Shuo and Luo, Ping and Loy, Chen Change and Tang, Xiaoou},
  booktitle={CVPR}, year={2016}}
@inproceedings{bai2018finding,
  title={Finding Tiny Faces in the Wild with Generative Adversarial Network},
  author={Bai, Yancheng and Zhang, Yongqiang and Ding, Mingli and Ghanem, Bernard},
  booktitle={CVPR}, year={2018}}
"""
