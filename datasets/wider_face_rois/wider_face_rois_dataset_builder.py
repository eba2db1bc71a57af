"""wider_face_rois: WIDER FACE training RoIs (LR/HR patch pairs, labels, box targets).

One example per RoI: the RoI's context window (RoI scaled by m about its centre, padded where it
leaves the image) resized to the 64x64 HR patch, its x4 bicubic down-sampling as the 16x16 LR
patch, the label (1 face, 0 background; -1 "ignored" only with RoiConfig.keep_ignored, which
these configs leave off), the Fast R-CNN regression target of the matched face (zeros
otherwise), the RoI itself, its best IoU with a valid face and the source image name. RoI
sampling and patch making live in `tinyfaces_tf.data.rois` (the same crop code runs at test
time); this builder only walks WIDER (or the project's demo dataset, same layout) and
serialises.

Build (from the repository root):
  tfds build datasets/wider_face_rois --manual_dir=WIDER_ROOT --config=x2.0 --data_dir=DATA_DIR
The `tfds` command of tensorflow-datasets 4.9.10 needs apache-beam and mlcroissant installed
just to start; without them the same build runs as
  python datasets/wider_face_rois/tfds_build.py datasets/wider_face_rois --manual_dir=... ...
Without --config every context factor is built.
"""
import hashlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from tinyfaces_tf import boxes
from tinyfaces_tf import imaging
from tinyfaces_tf.data import eval_tools
from tinyfaces_tf.data import rois
from tinyfaces_tf.data import wider

# Journal Table 3 context factors; x2.0 is the one the journal keeps.
CONTEXT_FACTORS = (1.0, 1.5, 2.0, 3.0, 4.0)
# TFDS split name -> WIDER's folder / file infix.
SPLITS = {"train": "train", "validation": "val"}
PROPOSALS_DIR = "proposals"


class WiderFaceRoisConfig(tfds.core.BuilderConfig):
  """BuilderConfig for one context factor m (crop window = RoI scaled by m)."""

  def __init__(self, *, context, **kwargs):
    super().__init__(name=f"x{context:.1f}",
                     description=f"Context window = RoI scaled by {context:.1f} about its centre.",
                     **kwargs)
    self.context = context

  def roi_config(self):
    return rois.RoiConfig(context=self.context)


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
  BUILDER_CONFIGS = [WiderFaceRoisConfig(context=m) for m in CONTEXT_FACTORS]
  DEFAULT_CONFIG_NAME = "x2.0"
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
  positives and random background windows only (tinyfaces_tf.data.rois).
  """

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config.roi_config()
    hr = config.hr_size
    lr = hr // config.scale
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
    dataset = wider.WiderFace(str(root))
    proposals = _read_proposals(root / PROPOSALS_DIR / split)
    config = self.builder_config.roi_config()
    for annotation in dataset.annotations(split):
      name = annotation.name
      image = dataset.read_image(split, name)
      rng = np.random.default_rng(image_seed(name))
      proposal_boxes = None
      if proposals is not None:  # images the proposer found nothing in may lack a file
        proposal_boxes = proposals.get(f"{annotation.event}/{annotation.stem}")
      examples = rois.make_training_examples(
          image, annotation.boxes_xyxy, annotation.valid, proposal_boxes, config, rng)
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
  results = eval_tools.read_result_dir(str(directory))
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
