"""The embedded COCO demo dataset: a small COCO 2017 look-alike made of bundled sample images.

The COCO counterpart of ``tinyfaces_tf.data.demo`` (the WIDER FACE demo), for the multi-class
small-object (MTGAN) variant. Nothing is downloaded: every pixel comes from images shipped with
scikit-image (``skimage.data``).

Each scene (256-320 px a side) is a random, randomly scaled crop of one of COCO_BACKGROUNDS,
scikit-image photographs that show none of the classes (``demo.BACKGROUNDS`` without ``coins``
and ``chelsea``, which are object sources here). Onto it go, 8-64 px on the longer side
(log-uniform, so small objects dominate):

* face (category 1): the 100 real face crops of ``skimage.data.lfw_subset()`` (entries 0-99),
  colourised with a skin tone exactly as the WIDER demo does (``demo.colourise``), mirrored at
  random, w / h 0.75-1.0;
* coin (category 3): single coins cut out of ``skimage.data.coins()``; ``coin_sources()`` finds
  them with a local threshold and ``skimage.measure.regionprops``, keeping only clean round
  single coins clear of the photo's border (21 of its 24). A coin is tinted with a metal tone
  (gold, silver, copper, bronze), mirrored at random, and keeps its own aspect;
* cat (category 17, COCO's id for cat): the cat's head of ``skimage.data.chelsea()``, a crop
  window of random extent and centre around the face (from eyes and nose only to the whole head),
  mirrored at random, with colour jitter (channel gains, desaturation, 15 % grey).

Category ids are deliberately not contiguous (1, 3, 17), as in COCO: a reader must map them to
contiguous labels.

Every object is alpha-blended through a soft mask rather than pasted as a rectangle: a feathered
super-ellipse for faces, the coin's own (convex) outline for coins, a feathered ellipse for cats.
The masks reach the pasted box on all four sides, so the box is tight around the object. Patches
get the WIDER demo's degradations (``demo._render_patch``): Gaussian blur of 2-4 % / 6-10 % of
the box height, an illumination change now and then, and pixel noise.

Occlusion: some objects (at least 12 px a side) get a band of another photograph covering 10-30 %
of their box from one side. As COCO boxes enclose what is visible, the annotated box is the box
less the band (the object still touches its three other sides).

Unannotated distractors: the 100 non-face crops of ``lfw_subset()`` (entries 100-199, coloured
like faces half the time) with the face mask, and random patches of other photographs with an
ellipse (coin- or cat-like outline) or super-ellipse mask.

Crowds (COCO's ``iscrowd``): now and then a tight group of 4-6 small overlapping coins or faces
(8-16 px each) is annotated as one region with ``iscrowd`` 1; its members are not annotated one
by one. Its segmentation is the uncompressed RLE (``{"counts": [...], "size": [h, w]}``, runs in
column-major order starting with background) of the pixels where a member's mask is >= 0.5, and
its bbox is that mask's bounding box. Non-crowd objects get a polygon of their box. In every
annotation ``area`` is the box area w * h and boxes are integer pixel boxes written as floats.

Train and val draw from disjoint LFW face and non-face crops (``demo.split_lfw_ids``) and
disjoint coins; the cat comes from one photograph, so its train and val instances share the
source and differ only in crop window, flip, colour and degradation. Image ids are unique across
splits (train 100001..., val 200001...), annotation ids too (image id * 1000 + k), all below
2**31. Every image has its own generator ``np.random.default_rng([seed, split_index, index])``,
so the files are byte-identical for a seed.
"""
import dataclasses
import functools
import json
import os
import shutil
import time
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import scipy.ndimage
from absl import logging
from PIL import Image

from tinyfaces_tf.data import demo


class Category(NamedTuple):
  """One COCO category."""
  id: int
  name: str
  supercategory: str


FACE_ID = 1
COIN_ID = 3
CAT_ID = 17
CATEGORIES = (Category(FACE_ID, "face", "person"), Category(COIN_ID, "coin", "money"),
              Category(CAT_ID, "cat", "animal"))
SPLITS = ("train", "val")
# demo.BACKGROUNDS less the photographs objects are cut from (coins, chelsea).
COCO_BACKGROUNDS = tuple(n for n in demo.BACKGROUNDS if n not in ("coins", "chelsea"))
# Gold, silver, copper, bronze (RGB multipliers for demo.colourise).
METAL_TONES = np.array([[1.00, 0.84, 0.45], [0.86, 0.87, 0.90], [0.90, 0.56, 0.38],
                        [0.75, 0.60, 0.38]], np.float64)
# The cat's face in chelsea (451 x 300): the crop windows are centred around here.
_CAT_CENTRE = (245.0, 165.0)
IMAGE_ID_BASE = 100_000  # image id = (split index + 1) * IMAGE_ID_BASE + index + 1.
MAX_OBJECTS_PER_IMAGE = 1000  # annotation id = image id * MAX_OBJECTS_PER_IMAGE + k + 1.
META_FILE = "coco_demo_info.json"  # written last: its presence means the dataset is complete.
DATA_VERSION = 1  # bumped whenever the same seed renders different scenes (demo.DATA_VERSION).
_PARTIAL_FILE = ".coco_demo_incomplete"  # present while writing, so an interrupted run is redone.
_OWNED = ("train2017", "val2017", "annotations", META_FILE, _PARTIAL_FILE)


@dataclasses.dataclass(frozen=True)
class CocoSceneConfig:
  """How one scene is drawn (sizes in pixels, probabilities per object or per image)."""
  height_range: Tuple[int, int] = (256, 320)
  width_range: Tuple[int, int] = (256, 320)
  objects_range: Tuple[int, int] = (3, 9)  # non-crowd objects tried per image.
  category_weights: Tuple[float, float, float] = (1.0, 1.0, 1.0)  # in CATEGORIES order.
  size_range: Tuple[int, int] = (8, 64)  # longer side, log-uniform.
  distractors_range: Tuple[int, int] = (1, 3)
  crowd_probability: float = 0.25  # per image.
  crowd_categories: Tuple[int, ...] = (COIN_ID, FACE_ID)
  crowd_members_range: Tuple[int, int] = (4, 6)
  crowd_member_size_range: Tuple[int, int] = (8, 16)
  occlusion_probability: float = 0.15  # per object of at least 12 px a side.
  blur_probabilities: Tuple[float, float, float] = (0.6, 0.3, 0.1)
  illumination_probability: float = 0.1
  noise_sigma_range: Tuple[float, float] = (1.0, 6.0)
  colour_jitter: bool = True  # cats: channel gains, desaturation, sometimes grey.
  margin: int = 2  # free pixels kept between pasted patches.


class Coin(NamedTuple):
  """One coin of ``skimage.data.coins()``: its box (x0, y0, x1, y1) and bool outline in it."""
  box: Tuple[int, int, int, int]
  mask: np.ndarray


class SplitSources(NamedTuple):
  """The source instances one split draws from (sorted index arrays)."""
  face_ids: np.ndarray     # lfw_subset faces, 0-99.
  nonface_ids: np.ndarray  # lfw_subset non-faces, 100-199.
  coin_ids: np.ndarray     # indices into coin_sources().


@dataclasses.dataclass(frozen=True)
class PastedObject:
  """One pasted object or distractor.

  Attributes:
    category_id: a CATEGORIES id, 0 for a distractor.
    box_xywh: integer box the patch was resized to and pasted at.
    visible_xywh: the box less the occluder band, the annotated box.
    source: "lfw", "coins", "chelsea" or a background name (distractor patches).
    source_index: lfw_subset index, coin_sources() index, or -1.
    source_box: (x0, y0, x1, y1) window of the source photo that was resized (None for lfw).
    flipped: mirrored left-right.
    tone: RGB multiplier (skin or metal tone for demo.colourise; channel gains for cats).
    saturation: 1 keeps the colours, 0 is grey (cats).
    occluder_xywh: the part of the box covered by an occluder band, or None.
  """
  category_id: int
  box_xywh: Tuple[int, int, int, int]
  visible_xywh: Tuple[int, int, int, int]
  source: str
  source_index: int = -1
  source_box: Optional[Tuple[float, float, float, float]] = None
  flipped: bool = False
  tone: Tuple[float, float, float] = (1.0, 1.0, 1.0)
  saturation: float = 1.0
  occluder_xywh: Optional[Tuple[int, int, int, int]] = None


@dataclasses.dataclass
class CrowdRegion:
  """A tight group of same-category objects annotated once, with iscrowd 1."""
  category_id: int
  members: List[PastedObject]
  mask: np.ndarray  # bool [H, W]: where a member's alpha is >= 0.5.

  @property
  def box_xywh(self) -> Tuple[int, int, int, int]:
    """The bounding box of ``mask``."""
    rows = np.flatnonzero(self.mask.any(axis=1))
    cols = np.flatnonzero(self.mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1))


@dataclasses.dataclass
class CocoScene:
  """A rendered scene: the image, the background it was pasted on, and what was pasted."""
  image: np.ndarray       # uint8 [H, W, 3]
  background: np.ndarray  # uint8 [H, W, 3], identical to image outside every pasted box.
  background_name: str
  objects: List[PastedObject]
  crowds: List[CrowdRegion]
  distractors: List[PastedObject]


def _disk(radius):
  yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
  return yy ** 2 + xx ** 2 <= radius ** 2


@functools.lru_cache(maxsize=1)
def coin_sources() -> Tuple[Coin, ...]:
  """The clean single coins of ``skimage.data.coins()``, in raster order of their labels.

  A local threshold (101 px blocks, mean + 5) separates the coins from the unevenly lit
  backdrop; after an opening and hole filling, ``skimage.measure.regionprops`` keeps regions
  clear of the border, of at least 600 px, solidity >= 0.9 and eccentricity <= 0.6 (round,
  single, fully segmented coins). Each coin's mask is its region's convex hull.
  """
  import skimage.data  # pylint: disable=g-import-not-at-top
  from skimage import filters, measure  # pylint: disable=g-import-not-at-top
  photo = np.asarray(skimage.data.coins(), np.float64)
  threshold = filters.threshold_local(photo, 101, offset=-5)
  mask = scipy.ndimage.binary_opening(photo > threshold, structure=_disk(2))
  mask = scipy.ndimage.binary_fill_holes(mask)
  coins = []
  for region in measure.regionprops(measure.label(mask)):
    y0, x0, y1, x1 = region.bbox
    on_border = y0 == 0 or x0 == 0 or y1 == photo.shape[0] or x1 == photo.shape[1]
    if (on_border or region.area < 600 or region.solidity < 0.9 or
        region.eccentricity > 0.6):
      continue
    outline = np.array(region.image_convex, bool)
    outline.setflags(write=False)
    coins.append(Coin((int(x0), int(y0), int(x1), int(y1)), outline))
  if len(coins) < 10:
    raise ValueError(f"found only {len(coins)} clean coins in skimage.data.coins()")
  return tuple(coins)


@functools.lru_cache(maxsize=None)
def _photo(name):
  """float64 [H, W] gray in [0, 1] (coins) or uint8 RGB PIL image (chelsea)."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  if name == "coins":
    return np.asarray(skimage.data.coins(), np.float64) / 255.0
  return Image.fromarray(np.asarray(skimage.data.chelsea(), np.uint8))


def split_sources(seed: int = 0, val_fraction: float = 0.3) -> Dict[str, SplitSources]:
  """Disjoint source instances per split: LFW crops as ``demo.split_lfw_ids``, coins here."""
  lfw = demo.split_lfw_ids(seed, val_fraction)
  coins = np.random.default_rng([seed, 8]).permutation(len(coin_sources()))
  n_val = int(round(val_fraction * coins.size))
  coin_ids = {"train": np.sort(coins[n_val:]), "val": np.sort(coins[:n_val])}
  return {s: SplitSources(lfw[s][0], lfw[s][1], coin_ids[s]) for s in SPLITS}


def _resize_mask(mask, height, width):
  """Anti-aliased bilinear resize of a [h, w] mask to [height, width] floats in [0, 1]."""
  image = Image.fromarray(np.asarray(mask, np.float32), mode="F")
  resized = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR), np.float64)
  return np.clip(resized, 0.0, 1.0)


def _log_uniform(rng, low, high):
  return int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))


def _object_size(rng, category_id, longer, sources):
  """(box_h, box_w, source_index) of an object whose longer side is ``longer`` px."""
  if category_id == FACE_ID:
    index = int(rng.choice(sources.face_ids))
    return longer, max(3, int(round(longer * rng.uniform(0.75, 1.0)))), index
  if category_id == COIN_ID:
    index = int(rng.choice(sources.coin_ids))
    x0, y0, x1, y1 = coin_sources()[index].box
    aspect = (x1 - x0) / (y1 - y0)  # w / h
    if aspect >= 1.0:
      return max(3, int(round(longer / aspect))), longer, index
    return longer, max(3, int(round(longer * aspect))), index
  if category_id == CAT_ID:
    aspect = rng.uniform(1.05, 1.4)  # the head is wider than high.
    return max(3, int(round(longer / aspect))), longer, -1
  raise ValueError(f"unknown category id {category_id}")


def _cat_window(rng, aspect):
  """A (x0, y0, x1, y1) window of chelsea around the cat's face with w / h == aspect."""
  photo_w, photo_h = _photo("chelsea").size
  width = min(rng.uniform(200.0, 430.0), photo_w, photo_h * aspect)
  height = width / aspect
  cx = _CAT_CENTRE[0] + rng.uniform(-20.0, 20.0)
  cy = _CAT_CENTRE[1] + rng.uniform(-15.0, 15.0)
  x0 = float(np.clip(cx - width / 2, 0.0, photo_w - width))
  y0 = float(np.clip(cy - height / 2, 0.0, photo_h - height))
  return (x0, y0, x0 + width, y0 + height)


def _render_object(rng, category_id, index, box_h, box_w, config, blur, illumination):
  """(patch float [h, w, 3] in [0, 255], alpha [h, w], record fields) of one object."""
  flipped = bool(rng.random() < 0.5)
  fields = dict(source_index=index, flipped=flipped)
  if category_id in (FACE_ID, 0):  # faces and LFW non-face distractors.
    tone = demo._skin_tone(rng)  # pylint: disable=protected-access
    if category_id == 0 and rng.random() < 0.5:
      tone = rng.uniform(0.5, 1.0, size=3)
    patch = demo._render_patch(  # pylint: disable=protected-access
        rng, demo.lfw_crops()[index], tone, flipped, box_h, box_w, blur, illumination,
        config.noise_sigma_range)
    alpha = demo.ellipse_alpha(box_h, box_w, exponent=3.0)
    fields.update(source="lfw", tone=tuple(float(v) for v in tone))
  elif category_id == COIN_ID:
    coin = coin_sources()[index]
    x0, y0, x1, y1 = coin.box
    metal = METAL_TONES[int(rng.integers(0, len(METAL_TONES)))]
    tone = metal * rng.uniform(0.95, 1.05, size=3)
    patch = demo._render_patch(  # pylint: disable=protected-access
        rng, _photo("coins")[y0:y1, x0:x1], tone, flipped, box_h, box_w, blur, illumination,
        config.noise_sigma_range)
    alpha = _resize_mask(coin.mask[:, ::-1] if flipped else coin.mask, box_h, box_w)
    fields.update(source="coins", source_box=tuple(float(v) for v in coin.box),
                  tone=tuple(float(v) for v in tone))
  elif category_id == CAT_ID:
    window = _cat_window(rng, box_w / box_h)
    rgb = np.asarray(_photo("chelsea").resize((box_w, box_h), Image.Resampling.BILINEAR,
                                              box=window), np.float64) / 255.0
    if flipped:
      rgb = rgb[:, ::-1]
    gains, saturation = np.ones(3), 1.0
    if config.colour_jitter:
      gains = rng.uniform(0.85, 1.15, size=3)
      saturation = 0.0 if rng.random() < 0.15 else rng.uniform(0.3, 1.0)
    grey = rgb.mean(axis=-1, keepdims=True)
    rgb = np.clip((grey + saturation * (rgb - grey)) * gains, 0.0, 1.0)
    patch = demo.degrade(rng, rgb, box_h, blur, illumination, config.noise_sigma_range)
    alpha = demo.ellipse_alpha(box_h, box_w, exponent=2.0)
    fields.update(source="chelsea", source_box=window, tone=tuple(float(v) for v in gains),
                  saturation=float(saturation))
  else:
    raise ValueError(f"unknown category id {category_id}")
  return patch, alpha, fields


def _crowd_layout(rng, category_id, sources, config):
  """Member boxes (x, y, w, h) relative to the group's corner, source indices, group w, h."""
  n = int(rng.integers(config.crowd_members_range[0], config.crowd_members_range[1] + 1))
  size = int(rng.integers(config.crowd_member_size_range[0],
                          config.crowd_member_size_range[1] + 1))
  cols = int(np.ceil(np.sqrt(n)))
  step = size * rng.uniform(0.7, 0.9)  # neighbours overlap: a tight group.
  boxes, indices = [], []
  for k in range(n):
    row, col = divmod(k, cols)
    longer = int(np.clip(round(size * rng.uniform(0.85, 1.15)), *config.size_range))
    box_h, box_w, index = _object_size(rng, category_id, longer, sources)
    x = (col + 0.5 * (row % 2)) * step + rng.uniform(-0.1, 0.1) * size
    y = row * step + rng.uniform(-0.1, 0.1) * size
    boxes.append([x, y, box_w, box_h])
    indices.append(index)
  boxes = np.asarray(boxes)
  boxes[:, :2] -= boxes[:, :2].min(axis=0)
  boxes = np.round(boxes).astype(int)
  return boxes, indices, int((boxes[:, 0] + boxes[:, 2]).max()), int(
      (boxes[:, 1] + boxes[:, 3]).max())


def render_coco_scene(rng: np.random.Generator, sources: SplitSources,
                      config: CocoSceneConfig = CocoSceneConfig(),
                      background_name: Optional[str] = None) -> CocoScene:
  """Draws one scene.

  Args:
    rng: the scene's random generator.
    sources: the split's source instances (``split_sources(...)[split]``).
    config: sizes and probabilities.
    background_name: one of COCO_BACKGROUNDS, random when None.

  Returns:
    A CocoScene. Outside the pasted boxes (objects, crowd members, distractors) the image equals
    ``background``; pasted boxes never overlap, except crowd members within their group.
  """
  if len(sources.face_ids) == 0 or len(sources.coin_ids) == 0:
    raise ValueError("sources need at least one face and one coin")
  if background_name is None:
    background_name = COCO_BACKGROUNDS[int(rng.integers(0, len(COCO_BACKGROUNDS)))]
  elif background_name not in COCO_BACKGROUNDS:
    raise ValueError(f"{background_name!r} is not one of {COCO_BACKGROUNDS}")
  height = int(rng.integers(config.height_range[0], config.height_range[1] + 1))
  width = int(rng.integers(config.width_range[0], config.width_range[1] + 1))
  background = demo._background_crop(  # pylint: disable=protected-access
      rng, background_name, height, width)
  image = background.astype(np.float64)
  taken, objects, crowds, distractors = [], [], [], []
  category_ids = [c.id for c in CATEGORIES]
  weights = np.asarray(config.category_weights, np.float64)
  weights = weights / weights.sum()

  if config.crowd_categories and rng.random() < config.crowd_probability:
    category_id = int(config.crowd_categories[int(rng.integers(0, len(config.crowd_categories)))])
    boxes, indices, group_w, group_h = _crowd_layout(rng, category_id, sources, config)
    corner = demo._place(  # pylint: disable=protected-access
        rng, height, width, group_h, group_w, taken, config.margin)
    if corner is not None:
      members = []
      mask = np.zeros((height, width), bool)
      for (bx, by, bw, bh), index in zip(boxes, indices):
        blur = demo._choose(rng, config.blur_probabilities)  # pylint: disable=protected-access
        patch, alpha, fields = _render_object(rng, category_id, index, int(bh), int(bw), config,
                                              blur, 0)
        x, y = corner[0] + int(bx), corner[1] + int(by)
        demo.paste(image, patch, alpha, x, y)
        mask[y:y + bh, x:x + bw] |= alpha >= 0.5
        box = (x, y, int(bw), int(bh))
        members.append(PastedObject(category_id, box, box, **fields))
      taken.append((corner[0], corner[1], group_w, group_h))
      crowds.append(CrowdRegion(category_id, members, mask))

  num_objects = int(rng.integers(config.objects_range[0], config.objects_range[1] + 1))
  for _ in range(num_objects):
    category_id = int(category_ids[int(rng.choice(len(category_ids), p=weights))])
    longer = _log_uniform(rng, *config.size_range)
    box_h, box_w, index = _object_size(rng, category_id, longer, sources)
    corner = demo._place(  # pylint: disable=protected-access
        rng, height, width, box_h, box_w, taken, config.margin)
    if corner is None:
      continue
    blur = demo._choose(rng, config.blur_probabilities)  # pylint: disable=protected-access
    illumination = int(rng.random() < config.illumination_probability)
    patch, alpha, fields = _render_object(rng, category_id, index, box_h, box_w, config, blur,
                                          illumination)
    x, y = corner
    box = (x, y, box_w, box_h)
    visible, band = box, None
    if min(box_h, box_w) >= 12 and rng.random() < config.occlusion_probability:
      band, _ = demo._occluder(rng, box, 1)  # pylint: disable=protected-access
      bx, by, bw, bh = band
      filler = demo._background_crop(  # pylint: disable=protected-access
          rng, COCO_BACKGROUNDS[int(rng.integers(0, len(COCO_BACKGROUNDS)))], bh, bw)
      patch[by - y:by - y + bh, bx - x:bx - x + bw] = filler
      alpha = alpha.copy()
      alpha[by - y:by - y + bh, bx - x:bx - x + bw] = 1.0
      # The band covers one whole side: what is visible is the box less the band.
      if bw == box_w:
        visible = (x, y if by > y else by + bh, box_w, box_h - bh)
      else:
        visible = (x if bx > x else bx + bw, y, box_w - bw, box_h)
    demo.paste(image, patch, alpha, x, y)
    taken.append(box)
    objects.append(PastedObject(category_id, box, visible, occluder_xywh=band, **fields))

  num_distractors = int(rng.integers(config.distractors_range[0],
                                     config.distractors_range[1] + 1))
  for _ in range(num_distractors):
    longer = _log_uniform(rng, *config.size_range)
    aspect = rng.uniform(0.7, 1.4)  # w / h
    box_h, box_w = ((longer, max(3, int(round(longer * aspect)))) if aspect < 1 else
                    (max(3, int(round(longer / aspect))), longer))
    corner = demo._place(  # pylint: disable=protected-access
        rng, height, width, box_h, box_w, taken, config.margin)
    if corner is None:
      continue
    blur = demo._choose(rng, config.blur_probabilities)  # pylint: disable=protected-access
    if len(sources.nonface_ids) and rng.random() < 0.5:
      index = int(rng.choice(sources.nonface_ids))
      patch, alpha, fields = _render_object(rng, 0, index, box_h, box_w, config, blur, 0)
    else:
      name = COCO_BACKGROUNDS[int(rng.integers(0, len(COCO_BACKGROUNDS)))]
      crop = demo._background_crop(  # pylint: disable=protected-access
          rng, name, box_h, box_w).astype(np.float64) / 255.0
      patch = demo.degrade(rng, crop, box_h, blur, 0, config.noise_sigma_range)
      alpha = demo.ellipse_alpha(box_h, box_w, exponent=2.0 if rng.random() < 0.5 else 3.0)
      fields = dict(source=name)
    x, y = corner
    box = (x, y, box_w, box_h)
    demo.paste(image, patch, alpha, x, y)
    taken.append(box)
    distractors.append(PastedObject(0, box, box, **fields))
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return CocoScene(image, background, background_name, objects, crowds, distractors)


def image_id(split_index: int, index: int) -> int:
  """The COCO image id of image ``index`` of split ``split_index`` (unique across splits)."""
  if not 0 <= index < IMAGE_ID_BASE - 1:
    raise ValueError(f"image index {index} out of range [0, {IMAGE_ID_BASE - 1})")
  return (split_index + 1) * IMAGE_ID_BASE + index + 1


def file_name(image_id_: int) -> str:
  """COCO 2017's file name: the image id zero-padded to 12 digits, ``.jpg``."""
  return f"{int(image_id_):012d}.jpg"


def box_polygon(box: Sequence[float]) -> List[List[float]]:
  """COCO polygon segmentation ``[[x0, y0, x1, y0, x1, y1, x0, y1]]`` of an (x, y, w, h) box."""
  x, y, w, h = (float(v) for v in box)
  return [[x, y, x + w, y, x + w, y + h, x, y + h]]


def mask_to_rle(mask: np.ndarray) -> dict:
  """COCO's uncompressed RLE of a bool [H, W] mask: column-major runs, background first."""
  mask = np.asarray(mask, bool)
  flat = mask.ravel(order="F")
  changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
  counts = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
  if flat.size and flat[0]:
    counts = [0] + counts
  return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def scene_annotations(scene: CocoScene, image_id_: int) -> List[dict]:
  """The COCO annotation dicts of a scene: its objects (visible boxes), then its crowds."""
  entries = [(o.category_id, o.visible_xywh, None) for o in scene.objects]
  entries += [(c.category_id, c.box_xywh, c.mask) for c in scene.crowds]
  if len(entries) >= MAX_OBJECTS_PER_IMAGE:
    raise ValueError(f"{len(entries)} objects in one image, at most {MAX_OBJECTS_PER_IMAGE - 1}")
  annotations = []
  for k, (category_id, box, mask) in enumerate(entries):
    x, y, w, h = (float(v) for v in box)
    annotations.append({
        "id": int(image_id_) * MAX_OBJECTS_PER_IMAGE + k + 1,
        "image_id": int(image_id_),
        "category_id": int(category_id),
        "bbox": [x, y, w, h],
        "area": w * h,
        "iscrowd": 0 if mask is None else 1,
        "segmentation": box_polygon(box) if mask is None else mask_to_rle(mask),
    })
  return annotations


def _prepare_out_dir(out_dir):
  """Refuses to mix with foreign files; clears what a previous COCO demo run wrote."""
  os.makedirs(out_dir, exist_ok=True)
  present = [n for n in _OWNED if os.path.lexists(os.path.join(out_dir, n))]
  ours = any(os.path.isfile(os.path.join(out_dir, n)) for n in (META_FILE, _PARTIAL_FILE))
  if present and not ours:
    raise FileExistsError(f"{out_dir} already holds {present} but no {META_FILE}: not a COCO "
                          "demo dataset written by tinyfaces_tf, refusing to overwrite")
  for name in present:
    path = os.path.join(out_dir, name)
    if os.path.isdir(path) and not os.path.islink(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  with open(os.path.join(out_dir, _PARTIAL_FILE), "w") as f:
    f.write("tinyfaces_tf COCO demo dataset being written\n")


def make_coco_demo(out_dir: str, train_images: int = 160, val_images: int = 60, seed: int = 0,
                   config: CocoSceneConfig = CocoSceneConfig(), val_fraction: float = 0.3,
                   jpeg_quality: int = 95) -> dict:
  """Writes the COCO demo dataset in the COCO 2017 layout under ``out_dir``.

  Writes train2017/ and val2017/ (``<12-digit image id>.jpg``), annotations/
  instances_{train,val}2017.json (info, licenses, images, annotations, categories) and
  coco_demo_info.json (this summary without folder and timing), last. A previous COCO demo in
  ``out_dir`` is replaced; a folder holding other content under those names is refused
  (FileExistsError) and left as it was. Nothing is written outside ``out_dir``.

  Args:
    out_dir: the dataset root (created if needed).
    train_images: number of train2017 images.
    val_images: number of val2017 images.
    seed: seeds the source split and every image's generator.
    config: how scenes are drawn.
    val_fraction: the fraction of LFW crops and coins kept for val.
    jpeg_quality: JPEG quality (4:4:4 chroma).

  Returns:
    A summary dict: the categories, per split the image, annotation, crowd and per-category
    counts, the source instances each split used, the folder and the seconds taken.
  """
  start = time.time()
  out_dir = os.fspath(out_dir)
  counts = {"train": train_images, "val": val_images}
  for split, n in counts.items():
    if int(n) != n or n < 0:
      raise ValueError(f"{split}_images must be an integer >= 0, got {n!r}")
    if n >= IMAGE_ID_BASE - 1:
      raise ValueError(f"{split}_images must be below {IMAGE_ID_BASE - 1}, got {n}")
  if counts["train"] + counts["val"] == 0:
    raise ValueError("the COCO demo needs at least one train or val image")
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
  _prepare_out_dir(out_dir)
  sources = split_sources(seed, val_fraction)
  categories = [c._asdict() for c in CATEGORIES]
  summary = {"version": DATA_VERSION, "seed": seed, "source": "skimage.data",
             "backgrounds": list(COCO_BACKGROUNDS),
             "categories": categories,
             "lfw_face_ids": {s: sources[s].face_ids.tolist() for s in SPLITS},
             "lfw_nonface_ids": {s: sources[s].nonface_ids.tolist() for s in SPLITS},
             "coin_boxes": [list(c.box) for c in coin_sources()],
             "coin_ids": {s: sources[s].coin_ids.tolist() for s in SPLITS}}
  os.makedirs(os.path.join(out_dir, "annotations"))
  for split_index, split in enumerate(SPLITS):
    folder = os.path.join(out_dir, f"{split}2017")
    os.makedirs(folder)
    images, annotations = [], []
    for index in range(int(counts[split])):
      rng = np.random.default_rng([seed, split_index, index])
      scene = render_coco_scene(rng, sources[split], config)
      image_id_ = image_id(split_index, index)
      name = file_name(image_id_)
      demo._write_jpeg(os.path.join(folder, name), scene.image,  # pylint: disable=protected-access
                       jpeg_quality)
      height, width = scene.image.shape[:2]
      images.append({"id": image_id_, "file_name": name, "height": int(height),
                     "width": int(width), "license": 1})
      annotations.extend(scene_annotations(scene, image_id_))
      if (index + 1) % 50 == 0:
        logging.info("COCO demo %s: %d/%d images", split, index + 1, counts[split])
    document = {
        "info": {"description": f"tinyfaces_tf COCO demo dataset, {split}2017 (seed {seed})",
                 "url": "https://scikit-image.org/docs/stable/api/skimage.data.html",
                 "version": "1.0", "year": 2017, "contributor": "tinyfaces_tf",
                 "date_created": "2017/09/01"},
        "licenses": [{"id": 1, "name": "scikit-image bundled sample data (see skimage.data)",
                      "url": "https://scikit-image.org/docs/stable/api/skimage.data.html"}],
        "images": images, "annotations": annotations, "categories": categories}
    with open(os.path.join(out_dir, "annotations", f"instances_{split}2017.json"), "w") as f:
      json.dump(document, f)
    stats = {"images": len(images), "annotations": len(annotations),
             "crowd": sum(a["iscrowd"] for a in annotations)}
    stats.update({c.name: sum(a["category_id"] == c.id and not a["iscrowd"] for a in annotations)
                  for c in CATEGORIES})
    summary[split] = stats
    logging.info("COCO demo %s: %s", split, stats)
  # Without folder and timing, so the file is identical for a seed wherever it is written.
  with open(os.path.join(out_dir, META_FILE), "w") as f:
    json.dump(summary, f, indent=1)
  os.remove(os.path.join(out_dir, _PARTIAL_FILE))
  summary.update(out_dir=os.path.abspath(out_dir), seconds=round(time.time() - start, 2))
  logging.info("COCO demo dataset written to %s in %.1f s", out_dir, summary["seconds"])
  return summary
