"""The embedded demo dataset: a small WIDER FACE look-alike made of scikit-image's bundled images.

Nothing is downloaded. Each scene is a crop of one of scikit-image's bundled photographs that
show no human face (BACKGROUNDS; ``astronaut`` and ``camera`` are left out because they show
people who would be unannotated faces). Onto it go:

* faces: the 100 real face crops of ``skimage.data.lfw_subset()`` (25x25 grayscale, entries
  0-99), colourised, resized to 10-80 px high, degraded, pasted at integer boxes and annotated;
* hard distractors: its 100 non-face crops (entries 100-199, patches of LFW backgrounds),
  coloured the same way and pasted without annotation.

Colourisation (documented choice, the crops are grayscale): every face gets a skin tone drawn
between adjacent entries of SKIN_TONES (light to dark) and becomes ``gray * tone * 1.3`` clipped
to [0, 1]; distractors get a skin tone half the time (so colour alone does not separate them)
and a random dull tint otherwise.

Realism for real photographs (the demo D once ranked real faces below MTCNN's false positives,
BUILD_NOTES "Fidelity at demo scale"), each a SceneConfig field that turns it off:
  soft masks: faces and distractors are alpha-blended through a feathered super-ellipse that
    fills their box (``mask_exponent``), not pasted as hard rectangles; the box stays tight
    (the mask reaches its four sides);
  figures: most faces (``figure_probability``) sit on a person: hair behind the top of the
    head, a neck and shoulders below the chin (clothing is a tinted crop of another
    photograph), so the context around a face (x2.0 crops) shows what it shows in a photograph;
    some distractors get one too (``distractor_figure_probability``), so a figure alone does
    not make a face;
  grayscale scenes: a few scenes (``grayscale_probability``) are converted to luma, as
    monochrome photographs are (WIDER has them; so has scikit-image's ``camera``), so skin
    colour alone does not make a face.

Degradations, written truthfully into the annotation lines:
  blur 0/1/2 -> Gaussian sigma 0 / 2-4 % / 6-10 % of the face height (at least 0.5 / 1.2 px);
  illumination 1 -> the face is dimmed to 20-40 % or over-exposed x1.8-2.5 (clipped),
    illumination 0 -> gain 0.85-1.15;
  occlusion 1/2 -> a band of another photograph covers 10-30 % / 35-60 % of the face box from
    one side (WIDER: partial 1-30 %, heavy > 30 %); the label comes from the covered fraction;
  Gaussian pixel noise (sigma 1-8 grey levels) on every pasted patch;
  invalid 1 -> a few faces 6-9 px high (below WIDER's 10 px) to exercise the flag;
  expression and pose are always 0 (the crops are frontal, typical).
Train and val use disjoint face crops and disjoint distractor crops; test images (no
annotation) use the val crops. Every image has its own generator seeded by (seed, split,
index), so output is deterministic for a seed.
"""
import dataclasses
import functools
import json
import os
import shutil
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import scipy.ndimage
from absl import logging
from PIL import Image

from tinyfaces_tf.data import wider_face
from tinyfaces_tf.data import wider_ground_truth

# Photographs bundled with scikit-image that contain no human face.
BACKGROUNDS = ("coffee", "chelsea", "rocket", "coins", "hubble_deep_field", "brick", "grass",
               "gravel", "page", "text", "immunohistochemistry", "colorwheel", "moon", "clock",
               "retina", "stereo_motorcycle")
EVENTS = ("0--Street", "1--Garden", "2--Market", "3--Harbour", "4--Office", "5--Park")
NUM_LFW_FACES = 100  # lfw_subset: entries 0-99 are faces, 100-199 non-faces.
# Light to dark skin tones (RGB in [0, 1]); faces take a random point between neighbours.
SKIN_TONES = np.array([[1.00, 0.87, 0.77], [0.95, 0.78, 0.64], [0.88, 0.68, 0.52],
                       [0.78, 0.57, 0.42], [0.62, 0.43, 0.30], [0.45, 0.31, 0.22]], np.float64)
# Hair colours (RGB in [0, 1]): black, dark brown, brown, auburn, blond, grey.
HAIR_TONES = np.array([[0.10, 0.09, 0.08], [0.22, 0.15, 0.10], [0.38, 0.26, 0.16],
                       [0.50, 0.25, 0.12], [0.78, 0.66, 0.42], [0.62, 0.62, 0.62]], np.float64)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601, as PIL's convert("L").
META_FILE = "demo_info.json"  # written last: its presence means the dataset is complete.
# Bumped whenever the same seed renders different scenes (2: soft masks, figures, grayscale);
# a demo folder of another version is rewritten by `make demo`, with what was derived from it.
DATA_VERSION = 2
_PARTIAL_FILE = ".demo_incomplete"  # present while writing, so an interrupted run is redone.
# The proposals are derived from the images: stale once the images are rewritten.
_OWNED = ("WIDER_train", "WIDER_val", "WIDER_test", "wider_face_split", "eval_tools",
          wider_face.PROPOSALS_DIR, META_FILE, _PARTIAL_FILE)


@dataclasses.dataclass(frozen=True)
class SceneConfig:
  """How one scene is drawn (sizes in pixels, probabilities per pasted face)."""
  height_range: Tuple[int, int] = (256, 320)
  width_range: Tuple[int, int] = (256, 320)
  faces_range: Tuple[int, int] = (2, 8)
  distractors_range: Tuple[int, int] = (0, 3)
  face_height_range: Tuple[int, int] = (10, 80)
  aspect_range: Tuple[float, float] = (0.75, 1.0)  # w / h, WIDER faces are taller than wide.
  invalid_probability: float = 0.04
  invalid_height_range: Tuple[int, int] = (6, 9)
  blur_probabilities: Tuple[float, float, float] = (0.55, 0.3, 0.15)
  illumination_probability: float = 0.15
  occlusion_probabilities: Tuple[float, float, float] = (0.7, 0.2, 0.1)
  noise_sigma_range: Tuple[float, float] = (1.0, 8.0)
  margin: int = 2  # free pixels kept between pasted patches.
  mask_exponent: Optional[float] = 3.0  # soft super-ellipse blend; None: hard rectangles.
  figure_probability: float = 0.7  # a face drawn with hair, neck and shoulders.
  distractor_figure_probability: float = 0.3
  grayscale_probability: float = 0.15  # the whole scene converted to luma.


@dataclasses.dataclass(frozen=True)
class PastedPatch:
  """One pasted lfw_subset crop.

  Attributes:
    lfw_index: index into ``skimage.data.lfw_subset()`` (< 100: a face).
    box_xywh: integer box the crop was resized to and pasted at.
    flipped: the crop was mirrored left-right before resizing.
    tone: the RGB multiplier used for colourisation.
    occluder_xywh: the part of the box covered by an occluder, or None.
    annotation: the face line written for it (None for distractors).
    figure_xywh: the box (clipped to the image) of the hair, neck and shoulders drawn around
      it, the patch's own box included, or None.
  """
  lfw_index: int
  box_xywh: Tuple[int, int, int, int]
  flipped: bool
  tone: Tuple[float, float, float]
  occluder_xywh: Optional[Tuple[int, int, int, int]] = None
  annotation: Optional[wider_face.FaceAnnotation] = None
  figure_xywh: Optional[Tuple[int, int, int, int]] = None


@dataclasses.dataclass
class Scene:
  """A rendered scene: the image, the background it was pasted on, and what was pasted."""
  image: np.ndarray       # uint8 [H, W, 3]
  # uint8 [H, W, 3], identical to image outside every pasted box and figure.
  background: np.ndarray
  background_name: str
  faces: List[PastedPatch]
  distractors: List[PastedPatch]
  grayscale: bool = False

  @property
  def annotations(self):
    return [p.annotation for p in self.faces]


@functools.lru_cache(maxsize=1)
def lfw_crops():
  """float64 [200, 25, 25] in [0, 1]: skimage.data.lfw_subset() (faces first)."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  crops = np.asarray(skimage.data.lfw_subset(), np.float64)
  if crops.shape != (2 * NUM_LFW_FACES, 25, 25):
    raise ValueError(f"unexpected skimage.data.lfw_subset() shape {crops.shape}")
  return crops


@functools.lru_cache(maxsize=None)
def background_photo(name):
  """uint8 RGB [H, W, 3] of one of BACKGROUNDS (grayscale photos are stacked to RGB)."""
  import skimage.data  # pylint: disable=g-import-not-at-top
  if name not in BACKGROUNDS:
    raise ValueError(f"{name!r} is not a face-free background; expected one of {BACKGROUNDS}")
  photo = getattr(skimage.data, name)()
  if isinstance(photo, tuple):  # stereo_motorcycle -> (left, right, disparity)
    photo = photo[0]
  photo = np.asarray(photo)
  if photo.dtype == bool:
    photo = photo.astype(np.uint8) * 255
  if photo.ndim == 2:
    photo = np.stack([photo] * 3, axis=-1)
  return np.ascontiguousarray(photo[..., :3].astype(np.uint8))


def _resize(array, height, width):
  """Bilinear resize of a float [h, w, C] array, anti-aliased when shrinking."""
  from skimage import transform  # pylint: disable=g-import-not-at-top
  shrink = height < array.shape[0] or width < array.shape[1]
  return transform.resize(array, (height, width, array.shape[2]), order=1, mode="edge",
                          anti_aliasing=shrink, preserve_range=True)


@functools.lru_cache(maxsize=None)
def _background_pil(name):
  return Image.fromarray(background_photo(name))


def _background_crop(rng, name, height, width):
  """A random, randomly scaled (and maybe mirrored) uint8 height x width crop of a photo."""
  photo = _background_pil(name)
  pw, ph = photo.size
  # Scale s maps photo pixels to scene pixels; s >= s_min lets the crop cover the scene.
  s_min = max(height / ph, width / pw)
  scale = s_min * rng.uniform(1.0, 2.0)
  ch = min(float(ph), height / scale)
  cw = min(float(pw), width / scale)
  y0 = rng.uniform(0.0, ph - ch)
  x0 = rng.uniform(0.0, pw - cw)
  # PIL's bilinear resize widens its kernel when shrinking (anti-aliased) and is fast.
  crop = np.asarray(photo.resize((width, height), Image.Resampling.BILINEAR,
                                 box=(x0, y0, x0 + cw, y0 + ch)))
  if rng.random() < 0.5:
    crop = crop[:, ::-1]
  return np.ascontiguousarray(crop)


def _skin_tone(rng):
  k = int(rng.integers(0, len(SKIN_TONES) - 1))
  t = rng.random()
  tone = (1 - t) * SKIN_TONES[k] + t * SKIN_TONES[k + 1]
  return tone * rng.uniform(0.95, 1.05, size=3)


def colourise(gray, tone):
  """[h, w] gray in [0, 1] -> [h, w, 3] RGB in [0, 1]: gray * tone * 1.3, clipped."""
  return np.clip(gray[..., None] * np.asarray(tone, np.float64)[None, None, :] * 1.3, 0.0, 1.0)


def _choose(rng, probabilities):
  return int(rng.choice(len(probabilities), p=np.asarray(probabilities) / np.sum(probabilities)))


def _free(box, taken, margin):
  x, y, w, h = box
  for tx, ty, tw, th in taken:
    if (x < tx + tw + margin and tx < x + w + margin and
        y < ty + th + margin and ty < y + h + margin):
      return False
  return True


def _place(rng, height, width, box_h, box_w, taken, margin, tries=50, extent=None):
  """Top-left corner of a box_w x box_h box inside the image clear of ``taken``, or None.

  ``extent`` (x0, y0, x1, y1) relative to the corner is what must be clear instead (a figure
  around the box, clipped to the image); the box itself must still lie inside the image.
  """
  for _ in range(tries):
    x = int(rng.integers(0, width - box_w + 1))
    y = int(rng.integers(0, height - box_h + 1))
    if _free(_clipped(extent, x, y, height, width) if extent else (x, y, box_w, box_h), taken,
             margin):
      return x, y
  return None


def _clipped(extent, x, y, height, width):
  """(x, y, w, h) of the relative box ``extent`` placed at (x, y), clipped to the image."""
  x0, y0 = max(0, x + extent[0]), max(0, y + extent[1])
  x1, y1 = min(width, x + extent[2]), min(height, y + extent[3])
  return x0, y0, x1 - x0, y1 - y0


def ellipse_alpha(height, width, exponent=2.0, feather=1.0):
  """Soft super-ellipse mask in [0, 1] filling a height x width box (1 inside, 0.5 on it)."""
  y = (np.arange(height) + 0.5 - height / 2) / (height / 2)
  x = (np.arange(width) + 0.5 - width / 2) / (width / 2)
  r = (np.abs(y)[:, None] ** exponent + np.abs(x)[None, :] ** exponent) ** (1.0 / exponent)
  return np.clip((1.0 - r) * (min(height, width) / 2) / feather + 0.5, 0.0, 1.0)


def paste(image, patch, alpha, x, y):
  """Alpha-blends a float [h, w, 3] patch into float ``image`` at (x, y), clipped to the image."""
  h, w = alpha.shape
  y0, x0 = max(0, -y), max(0, -x)
  y1, x1 = min(h, image.shape[0] - y), min(w, image.shape[1] - x)
  if y1 <= y0 or x1 <= x0:
    return
  a = alpha[y0:y1, x0:x1, None]
  region = image[y + y0:y + y1, x + x0:x + x1]
  image[y + y0:y + y1, x + x0:x + x1] = a * patch[y0:y1, x0:x1] + (1.0 - a) * region


def _figure_parts(rng, box_h, box_w):
  """Hair, neck and shoulders of a person whose face box is box_w x box_h at (0, 0): a list
  of (part, (x, y, w, h)) drawn in order, and their extent (x0, y0, x1, y1)."""
  def r(value):
    return int(round(value))
  parts = []
  shoulders_top = box_h + r(box_h * rng.uniform(0.15, 0.3))
  body_w = max(3, r(box_w * rng.uniform(2.2, 3.0)))
  body_h = max(2, r(box_h * rng.uniform(0.9, 1.6)))
  body_x = (box_w - body_w) // 2 + r(box_w * rng.uniform(-0.2, 0.2))
  parts.append(("shoulders", (body_x, shoulders_top, body_w, body_h)))
  neck_w = max(2, r(box_w * rng.uniform(0.45, 0.6)))
  neck_y = box_h - r(box_h * 0.15)
  parts.append(("neck", ((box_w - neck_w) // 2, neck_y, neck_w,
                         shoulders_top + r(box_h * 0.1) - neck_y + 1)))
  if rng.random() < 0.85:  # some people are bald.
    hair_w = max(3, r(box_w * rng.uniform(1.08, 1.3)))
    hair_h = max(2, r(box_h * rng.uniform(0.5, 0.75)))
    parts.append(("hair", ((box_w - hair_w) // 2, -r(box_h * rng.uniform(0.12, 0.3)), hair_w,
                           hair_h)))
  x0 = min(0, *(b[0] for _, b in parts))
  y0 = min(0, *(b[1] for _, b in parts))
  x1 = max(box_w, *(b[0] + b[2] for _, b in parts))
  y1 = max(box_h, *(b[1] + b[3] for _, b in parts))
  return parts, (x0, y0, x1, y1)


def _draw_figure(rng, image, parts, x, y, tone):
  """Draws the parts of ``_figure_parts`` with the face box's corner at (x, y)."""
  for part, (px, py, pw, ph) in parts:
    texture = _background_crop(rng, BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))], ph,
                               pw).astype(np.float64) @ LUMA / 255.0
    if part == "shoulders":  # clothing: a tinted photograph texture, the top of a dome.
      colour = rng.uniform(0.1, 0.9, size=3)
      patch = (0.4 + 0.6 * texture)[..., None] * colour
      alpha = ellipse_alpha(2 * ph, pw, exponent=2.5, feather=max(1.0, 0.04 * pw))[:ph]
    elif part == "neck":  # the face's skin, in the chin's shadow.
      patch = (0.9 + 0.2 * texture)[..., None] * np.asarray(tone) * 0.8
      alpha = ellipse_alpha(ph, pw, exponent=4.0)
    else:
      colour = HAIR_TONES[int(rng.integers(0, len(HAIR_TONES)))] * rng.uniform(0.85, 1.15)
      patch = (0.7 + 0.6 * texture)[..., None] * colour
      alpha = ellipse_alpha(ph, pw, exponent=2.0, feather=max(1.0, 0.08 * ph))
    paste(image, np.clip(patch, 0.0, 1.0) * 255.0, alpha, x + px, y + py)


def _render_patch(rng, crop, tone, flipped, box_h, box_w, blur, illumination, noise_range):
  """Colourised, resized, blurred, re-lit and noised float RGB patch in [0, 255]."""
  gray = crop[:, ::-1] if flipped else crop
  return degrade(rng, _resize(colourise(gray, tone), box_h, box_w), box_h, blur, illumination,
                 noise_range)


def degrade(rng, patch, box_h, blur, illumination, noise_range):
  """A float RGB patch in [0, 1] at box size, blurred (level 0/1/2), re-lit and noised, as the
  annotation's blur and illumination say; float [0, 255]."""
  if blur:
    fraction = rng.uniform(0.02, 0.04) if blur == 1 else rng.uniform(0.06, 0.10)
    sigma = max(fraction * box_h, 0.5 if blur == 1 else 1.2)
    patch = scipy.ndimage.gaussian_filter(patch, sigma=(sigma, sigma, 0), mode="nearest")
  if illumination:
    gain = rng.uniform(0.2, 0.4) if rng.random() < 0.5 else rng.uniform(1.8, 2.5)
  else:
    gain = rng.uniform(0.85, 1.15)
  patch = patch * gain * 255.0
  patch = patch + rng.normal(0.0, rng.uniform(*noise_range), size=patch.shape)
  return np.clip(patch, 0.0, 255.0)


def _occluder(rng, box, level):
  """A band covering one side of ``box`` (x, y, w, h) -> (band_xywh, covered fraction)."""
  x, y, w, h = box
  fraction = rng.uniform(0.10, 0.30) if level == 1 else rng.uniform(0.35, 0.60)
  side = int(rng.integers(0, 4))  # bottom, top, left, right
  if side < 2:
    rows = int(np.clip(round(fraction * h), 1, h - 1))
    band = (x, y + h - rows if side == 0 else y, w, rows)
    return band, rows / h
  cols = int(np.clip(round(fraction * w), 1, w - 1))
  band = (x + w - cols if side == 3 else x, y, cols, h)
  return band, cols / w


def render_scene(rng: np.random.Generator, face_ids: Sequence[int], nonface_ids: Sequence[int],
                 config: SceneConfig = SceneConfig(),
                 background_name: Optional[str] = None) -> Scene:
  """Draws one scene.

  Args:
    rng: the scene's random generator.
    face_ids: lfw_subset indices (0-99) the faces are drawn from.
    nonface_ids: lfw_subset indices (100-199) the distractors are drawn from.
    config: sizes and probabilities.
    background_name: one of BACKGROUNDS, random when None.

  Returns:
    A Scene; ``faces[k].annotation`` are the WIDER face lines, boxes exactly where the resized
    crops were pasted. Outside the pasted boxes and figures the image equals ``background``.
  """
  face_ids = np.asarray(face_ids)
  nonface_ids = np.asarray(nonface_ids)
  if face_ids.size == 0 or np.any(face_ids >= NUM_LFW_FACES) or np.any(face_ids < 0):
    raise ValueError("face_ids must be non-empty lfw_subset face indices in 0..99")
  if np.any(nonface_ids < NUM_LFW_FACES) or np.any(nonface_ids >= 2 * NUM_LFW_FACES):
    raise ValueError("nonface_ids must be lfw_subset non-face indices in 100..199")
  crops = lfw_crops()
  height = int(rng.integers(config.height_range[0], config.height_range[1] + 1))
  width = int(rng.integers(config.width_range[0], config.width_range[1] + 1))
  if background_name is None:
    background_name = BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))]
  background = _background_crop(rng, background_name, height, width)
  image = background.astype(np.float64)
  taken, faces, distractors = [], [], []

  def place_figure(box_h, box_w, probability):
    """(figure parts or None, corner or None): a person around the box when drawn and room."""
    if rng.random() < probability:
      parts, extent = _figure_parts(rng, box_h, box_w)
      corner = _place(rng, height, width, box_h, box_w, taken, config.margin, extent=extent)
      if corner is not None:
        return (parts, extent), corner
    # No person, or no room for one: the patch alone.
    return None, _place(rng, height, width, box_h, box_w, taken, config.margin)

  def mask(box_h, box_w):
    if config.mask_exponent is None:
      return np.ones((box_h, box_w))
    return ellipse_alpha(box_h, box_w, exponent=config.mask_exponent)

  def draw(patch, alpha, x, y, figure, tone):
    """Draws the figure (if any) and then the patch; returns the figure's box or None."""
    box_h, box_w = alpha.shape
    figure_box = None
    if figure is not None:
      _draw_figure(rng, image, figure[0], x, y, tone)
      figure_box = _clipped(figure[1], x, y, height, width)
    paste(image, patch, alpha, x, y)
    taken.append(figure_box or (x, y, box_w, box_h))
    return figure_box

  def size(invalid):
    low, high = config.invalid_height_range if invalid else config.face_height_range
    # Log-uniform: as many 10-20 px faces as 40-80 px ones, like WIDER's small-face bias.
    box_h = int(round(np.exp(rng.uniform(np.log(low), np.log(high)))))
    box_w = max(3, int(round(box_h * rng.uniform(*config.aspect_range))))
    return box_h, box_w

  num_faces = int(rng.integers(config.faces_range[0], config.faces_range[1] + 1))
  for _ in range(num_faces):
    invalid = int(rng.random() < config.invalid_probability)
    box_h, box_w = size(invalid)
    figure, corner = place_figure(box_h, box_w, config.figure_probability)
    if corner is None:
      continue
    box = (corner[0], corner[1], box_w, box_h)
    lfw_index = int(rng.choice(face_ids))
    tone = _skin_tone(rng)
    flipped = bool(rng.random() < 0.5)
    blur = _choose(rng, config.blur_probabilities)
    illumination = int(rng.random() < config.illumination_probability)
    patch = _render_patch(rng, crops[lfw_index], tone, flipped, box_h, box_w, blur, illumination,
                          config.noise_sigma_range)
    alpha = mask(box_h, box_w)
    occlusion, band = 0, None
    level = _choose(rng, config.occlusion_probabilities)
    if level and min(box_h, box_w) >= 4:
      band, fraction = _occluder(rng, box, level)
      # The label is what was covered (WIDER: partial 1-30 %, heavy > 30 %).
      occlusion = 1 if fraction <= 0.30 else 2
      bx, by, bw, bh = band
      filler = _background_crop(rng, BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))],
                                bh, bw)
      occluded = np.s_[by - box[1]:by - box[1] + bh, bx - box[0]:bx - box[0] + bw]
      patch[occluded] = filler
      alpha[occluded] = 1.0  # the occluder is in front: hard-edged, whatever the face mask.
    x, y = corner
    figure_box = draw(patch, alpha, x, y, figure, tone)
    faces.append(PastedPatch(
        lfw_index, box, flipped, tuple(float(v) for v in tone), band,
        wider_face.FaceAnnotation(x, y, box_w, box_h, blur=blur, expression=0,
                             illumination=illumination, invalid=invalid, occlusion=occlusion,
                             pose=0), figure_box))
  num_distractors = int(rng.integers(config.distractors_range[0],
                                     config.distractors_range[1] + 1))
  if nonface_ids.size:
    for _ in range(num_distractors):
      box_h, box_w = size(False)
      figure, corner = place_figure(box_h, box_w, config.distractor_figure_probability)
      if corner is None:
        continue
      lfw_index = int(rng.choice(nonface_ids))
      tone = _skin_tone(rng) if rng.random() < 0.5 else rng.uniform(0.5, 1.0, size=3)
      flipped = bool(rng.random() < 0.5)
      patch = _render_patch(rng, crops[lfw_index], tone, flipped, box_h, box_w,
                            _choose(rng, config.blur_probabilities),
                            int(rng.random() < config.illumination_probability),
                            config.noise_sigma_range)
      x, y = corner
      figure_box = draw(patch, mask(box_h, box_w), x, y, figure, tone)
      distractors.append(PastedPatch(lfw_index, (x, y, box_w, box_h), flipped,
                                     tuple(float(v) for v in tone), figure_xywh=figure_box))
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  grayscale = bool(rng.random() < config.grayscale_probability)
  if grayscale:
    image, background = _luma(image), _luma(background)
  return Scene(image, background, background_name, faces, distractors, grayscale)


def _luma(image):
  """uint8 [H, W, 3] -> the same image in gray (BT.601 luma in every channel)."""
  gray = np.clip(np.round(image.astype(np.float64) @ LUMA), 0, 255).astype(np.uint8)
  return np.repeat(gray[..., None], 3, axis=-1)


def written_version(out_dir, meta_file=META_FILE) -> Optional[int]:
  """The DATA_VERSION a demo maker wrote into ``out_dir`` (its ``meta_file``; 1 when the file
  names none, as version 1 wrote), or None when no complete demo is there."""
  path = os.path.join(out_dir, meta_file)
  if not os.path.exists(path):
    return None
  with open(path) as f:
    return json.load(f).get("version", 1)


def split_lfw_ids(seed=0, val_fraction=0.3):
  """Disjoint lfw_subset indices: {"train"|"val": (face_ids, nonface_ids)} for a seed."""
  rng = np.random.default_rng([seed, 7])
  faces = rng.permutation(NUM_LFW_FACES)
  nonfaces = NUM_LFW_FACES + rng.permutation(NUM_LFW_FACES)
  n_val = int(round(val_fraction * NUM_LFW_FACES))
  return {"train": (np.sort(faces[n_val:]), np.sort(nonfaces[n_val:])),
          "val": (np.sort(faces[:n_val]), np.sort(nonfaces[:n_val]))}


def image_name(split_index, index, events=EVENTS):
  """WIDER-style ``event/<n>_<Event>_<Event>_<n>_<index>.jpg`` of image ``index``."""
  event = events[index % len(events)]
  number, label = event.split("--", 1)
  return f"{event}/{number}_{label}_{label}_{split_index}_{index}.jpg"


def _write_jpeg(path, image, quality):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  # 4:4:4 keeps colour edges of 10 px faces; quality 95 keeps pixels within a few levels.
  Image.fromarray(image).save(path, format="JPEG", quality=quality, subsampling=0)


def _prepare_out_dir(out_dir):
  """Refuses to mix with foreign files; clears what a previous demo run wrote."""
  os.makedirs(out_dir, exist_ok=True)
  present = [n for n in _OWNED if os.path.exists(os.path.join(out_dir, n))]
  ours = any(os.path.isfile(os.path.join(out_dir, n)) for n in (META_FILE, _PARTIAL_FILE))
  if present and not ours:
    raise FileExistsError(f"{out_dir} already holds {present} but no {META_FILE}: not a demo "
                          "dataset written by tinyfaces_tf, refusing to overwrite")
  for name in present:
    path = os.path.join(out_dir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    else:
      os.remove(path)
  with open(os.path.join(out_dir, _PARTIAL_FILE), "w") as f:
    f.write("tinyfaces_tf demo dataset being written\n")


def make_demo_dataset(out_dir, train_images=160, val_images=60, test_images=20, seed=0,
                      config: SceneConfig = SceneConfig(), val_face_fraction=0.3,
                      jpeg_quality=95) -> dict:
  """Writes the demo dataset in the WIDER FACE layout under ``out_dir``.

  Writes WIDER_{train,val,test}/images, wider_face_split/wider_face_{train,val}_bbx_gt.txt,
  wider_face_split/wider_face_test_filelist.txt, eval_tools/ground_truth/ (the four eval_tools
  .mat files of val, Easy/Medium/Hard by face height >= 50/30/10 px among valid faces) and
  demo_info.json (this summary without folder and timing). A previous demo in ``out_dir`` is
  replaced; a folder holding other WIDER-like content is refused (FileExistsError).

  Returns:
    A summary dict: per split the image and face counts, val setting sizes, the lfw_subset
    indices each split used, and the seconds taken.
  """
  start = time.time()
  out_dir = os.fspath(out_dir)
  counts = {"train": train_images, "val": val_images, "test": test_images}
  for split, n in counts.items():
    if int(n) != n or n < 0:
      raise ValueError(f"{split}_images must be an integer >= 0, got {n!r}")
  if counts["train"] + counts["val"] == 0:
    raise ValueError("the demo needs at least one train or val image")
  _prepare_out_dir(out_dir)
  ids = split_lfw_ids(seed, val_face_fraction)
  ids["test"] = ids["val"]  # test images are unannotated; they reuse val crops.
  summary = {"version": DATA_VERSION, "seed": seed, "source": "skimage.data",
             "backgrounds": list(BACKGROUNDS),
             "lfw_face_ids": {s: ids[s][0].tolist() for s in ("train", "val")},
             "lfw_nonface_ids": {s: ids[s][1].tolist() for s in ("train", "val")}}
  for split_index, split in enumerate(wider_face.SPLITS):
    annotations = []
    for index in range(int(counts[split])):
      rng = np.random.default_rng([seed, split_index, index])
      scene = render_scene(rng, ids[split][0], ids[split][1], config)
      name = image_name(split_index, index)
      _write_jpeg(os.path.join(out_dir, f"WIDER_{split}", "images", *name.split("/")),
                  scene.image, jpeg_quality)
      annotations.append(wider_face.ImageAnnotation(name, scene.annotations))
      if (index + 1) % 50 == 0:
        logging.info("demo %s: %d/%d images", split, index + 1, counts[split])
    # Grouped by event, as the official files are (eval_tools groups events that way too).
    annotations.sort(key=lambda a: (EVENTS.index(a.event), int(a.stem.rsplit("_", 1)[1])))
    stats = {"images": len(annotations)}
    if split == "test":
      wider_face.write_test_filelist(wider_face.test_filelist_file(out_dir), [a.name for a in annotations])
    else:
      wider_face.write_bbx_gt(wider_face.split_file(out_dir, split), annotations)
      valid = np.concatenate([a.valid for a in annotations]) if annotations else np.zeros(0)
      stats.update(faces=int(valid.size), invalid_faces=int(valid.size - valid.sum()))
    if split == "val" and annotations:
      gt = wider_face.eval_ground_truth_from_annotations(annotations)
      wider_ground_truth.write_eval_ground_truth(os.path.join(out_dir, "eval_tools", "ground_truth"), gt)
      stats.update({s: int(sum(len(g) for per_event in gt.gt_lists[s] for g in per_event))
                    for s in wider_face.SETTINGS})
    summary[split] = stats
    logging.info("demo %s: %s", split, stats)
  # Without folder and timing, so the file is identical for a seed wherever it is written.
  with open(os.path.join(out_dir, META_FILE), "w") as f:
    json.dump(summary, f, indent=1)
  os.remove(os.path.join(out_dir, _PARTIAL_FILE))
  summary.update(out_dir=os.path.abspath(out_dir), seconds=round(time.time() - start, 2))
  logging.info("demo dataset written to %s in %.1f s", out_dir, summary["seconds"])
  return summary
