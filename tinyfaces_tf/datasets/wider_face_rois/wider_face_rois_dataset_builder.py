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
Without --config every context factor is built. `tinyfaces_tf.task.Task.build_rois` builds the
config an ExperimentConfig names (any crop and sampler settings) from Python.
"""
import dataclasses
import hashlib
import json

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tinyfaces_tf import boxes
from tinyfaces_tf import imaging
from tinyfaces_tf import roi_crop
from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import roi_sampler
from tinyfaces_tf.data import wider_face

# Journal Table 3 context factors; x2.0 is the one the journal keeps.
CONTEXT_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)
# TFDS split name -> WIDER's folder / file infix.
SPLITS = {"train": "train", "validation": "val"}


def config_name(crop: roi_crop.CropConfig,
                sampler: roi_sampler.RoiSamplerConfig = roi_sampler.RoiSamplerConfig()) -> str:
  """The BuilderConfig name of a crop + sampler: "x2.0" for the context factor with every other
  setting at its default, else "x2.0-<hash of the settings>" (so two settings never share a
  directory)."""
  name = f"x{crop.context:.1f}"
  defaults = (roi_crop.CropConfig(context=crop.context), roi_sampler.RoiSamplerConfig())
  if (crop, sampler) != defaults:
    settings = json.dumps([dataclasses.asdict(crop), dataclasses.asdict(sampler)], sort_keys=True)
    name += "-" + hashlib.sha256(settings.encode()).hexdigest()[:10]
  return name


class WiderFaceRoisConfig(tfds.core.BuilderConfig):
  """BuilderConfig of one crop (context factor m, patch sizes) and RoI sampler setting."""

  def __init__(self, *, crop: roi_crop.CropConfig,
               sampler: roi_sampler.RoiSamplerConfig = roi_sampler.RoiSamplerConfig(), **kwargs):
    description = (f"Context window = RoI scaled by {crop.context:.1f} about its centre. "
                   f"crop={dataclasses.asdict(crop)} sampler={dataclasses.asdict(sampler)}")
    super().__init__(name=config_name(crop, sampler), description=description, **kwargs)
    self.crop, self.sampler = crop, sampler


def image_seed(name):
  """Per-image RNG seed from the image name: same RoIs whatever the order or the process.

  The seed does not depend on the context factor, so the x1.0 ... x4.0 configs sample the same
  RoIs and differ only in the crop (what journal Table 3 compares).
  """
  return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "little")


class Builder(tfds.core.GeneratorBasedBuilder):
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

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    # WIDER split -> [(path, reason)] of the images the last build skipped as undecodable.
    self.skipped_images = {}

  def _info(self) -> tfds.core.DatasetInfo:
    crop = self.builder_config.crop
    hr, lr = crop.hr_size, crop.lr_size
    return self.dataset_info_from_configs(
        features=tfds.features.FeaturesDict({
            "lr": tfds.features.Image(shape=(lr, lr, 3), encoding_format="png",
                                      doc="Bicubic x4 down-sampling of hr."),
            "hr": tfds.features.Image(shape=(hr, hr, 3), encoding_format="png",
                                      doc="Context window resized to the HR size."),
            "label": tfds.features.Scalar(np.int64, doc="1 face, 0 background (-1 ignored)."),
            "box_target": tfds.features.Tensor(shape=(4,), dtype=np.float32,
                                               doc="Fast R-CNN deltas / (0.1, 0.1, 0.2, 0.2)."),
            "roi": tfds.features.Tensor(shape=(4,), dtype=np.float32,
                                        doc="RoI, pixel x1 y1 x2 y2 in the source image."),
            "iou": tfds.features.Scalar(np.float32, doc="Best IoU with a valid face."),
            "image/filename": tfds.features.Text(doc="WIDER name event/file.jpg."),
        }),
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
    dataset = wider_face.WiderFace(str(root))
    proposals = _read_proposals(epath.Path(dataset.proposals_dir(split)))
    crop, sampler = self.builder_config.crop, self.builder_config.sampler
    skipped = self.skipped_images.setdefault(split, [])
    for annotation in dataset.annotations(split):
      name = annotation.name
      try:
        image = dataset.read_image(split, name)
      except (ValueError, FileNotFoundError) as e:  # one bad file never stops a 32k-image build
        logging.warning("skipping %s", e)
        skipped.append((dataset.image_path(split, name), str(e)))
        continue
      rng = np.random.default_rng(image_seed(name))
      proposal_boxes = None
      if proposals is not None:  # images the proposer found nothing in may lack a file
        proposal_boxes = proposals.get(f"{annotation.event}/{annotation.stem}")
      examples = roi_sampler.make_training_examples(
          image, annotation.boxes_xyxy, annotation.valid, proposal_boxes, sampler, crop, rng)
      lr = imaging.to_uint8(examples["lr"]).numpy()
      hr = imaging.to_uint8(examples["hr"]).numpy()
      for i in range(len(lr)):
        yield f"{name}#{i}", {
            "lr": lr[i],
            "hr": hr[i],
            "label": int(examples["labels"][i]),
            "box_target": np.asarray(examples["box_targets"][i], np.float32),
            "roi": np.asarray(examples["rois"][i], np.float32),
            "iou": float(examples["ious"][i]),
            "image/filename": name,
        }


def _read_proposals(directory):
  """{"event/stem": xyxy float32 [P, 4]} from WIDER result files, or None without the folder."""
  if not directory.exists():
    return None
  results = result_files.read_result_dir(str(directory))
  return {key: boxes.xywh_to_xyxy(xywh) for key, (xywh, _) in results.items()}


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
