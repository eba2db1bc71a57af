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
META_FILE = "demo_info.json"  # written last: its presence means the dataset is complete.
_PARTIAL_FILE = ".demo_incomplete"  # present while writing, so an interrupted run is redone.
_OWNED = ("WIDER_train", "WIDER_val", "WIDER_test", "wider_face_split", "eval_tools", META_FILE,
          _PARTIAL_FILE)


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
  """
  lfw_index: int
  box_xywh: Tuple[int, int, int, int]
  flipped: bool
  tone: Tuple[float, float, float]
  occluder_xywh: Optional[Tuple[int, int, int, int]] = None
  annotation: Optional[wider_face.FaceAnnotation] = None


@dataclasses.dataclass
class Scene:
  """A rendered scene: the image, the background it was pasted on, and what was pasted."""
  image: np.ndarray       # uint8 [H, W, 3]
  background: np.ndarray  # uint8 [H, W, 3], identical to image outside every pasted box.
  background_name: str
  faces: List[PastedPatch]
  distractors: List[PastedPatch]

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


def _place(rng, height, width, box_h, box_w, taken, margin, tries=50):
  """Top-left corner of a box_w x box_h box inside the image clear of ``taken``, or None."""
  for _ in range(tries):
    x = int(rng.integers(0, width - box_w + 1))
    y = int(rng.integers(0, height - box_h + 1))
    if _free((x, y, box_w, box_h), taken, margin):
      return x, y
  return None


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
    crops were pasted. Outside the pasted boxes the image equals ``background``.
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
    corner = _place(rng, height, width, box_h, box_w, taken, config.margin)
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
    occlusion, band = 0, None
    level = _choose(rng, config.occlusion_probabilities)
    if level and min(box_h, box_w) >= 4:
      band, fraction = _occluder(rng, box, level)
      # The label is what was covered (WIDER: partial 1-30 %, heavy > 30 %).
      occlusion = 1 if fraction <= 0.30 else 2
      bx, by, bw, bh = band
      filler = _background_crop(rng, BACKGROUNDS[int(rng.integers(0, len(BACKGROUNDS)))],
                                bh, bw)
      patch[by - box[1]:by - box[1] + bh, bx - box[0]:bx - box[0] + bw] = filler
    x, y = corner
    image[y:y + box_h, x:x + box_w] = patch
    taken.append(box)
    faces.append(PastedPatch(
        lfw_index, box, flipped, tuple(float(v) for v in tone), band,
        wider_face.FaceAnnotation(x, y, box_w, box_h, blur=blur, expression=0,
                             illumination=illumination, invalid=invalid, occlusion=occlusion,
                             pose=0)))
  num_distractors = int(rng.integers(config.distractors_range[0],
                                     config.distractors_range[1] + 1))
  if nonface_ids.size:
    for _ in range(num_distractors):
      box_h, box_w = size(False)
      corner = _place(rng, height, width, box_h, box_w, taken, config.margin)
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
      image[y:y + box_h, x:x + box_w] = patch
      taken.append((x, y, box_w, box_h))
      distractors.append(PastedPatch(lfw_index, (x, y, box_w, box_h), flipped,
                                     tuple(float(v) for v in tone)))
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return Scene(image, background, background_name, faces, distractors)


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
  summary = {"seed": seed, "source": "skimage.data",
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
