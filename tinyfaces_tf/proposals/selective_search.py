"""Selective Search (Uijlings et al., IJCV 2013): a learning-free, class-agnostic proposer.

The method over-segments the image with Felzenszwalb and Huttenlocher's graph-based algorithm
(``skimage.segmentation.felzenszwalb``) and then groups the segments bottom-up: the two most
similar neighbouring regions are merged, again and again, until one region covers the image.
Every region of this hierarchy, initial and merged, yields one box, so objects of every scale
are proposed, down to the size of a single segment.

Followed from the paper (section 3):
  * similarity = sum of the selected measures, each in [0, 1]: colour (25-bin histogram per
    channel, L1-normalised, histogram intersection), texture (Gaussian derivatives with
    sigma = 1 in 8 orientations, 10 bins per orientation and channel, intersection), size
    (1 - (size_i + size_j) / image size, merges small regions first) and fill
    (1 - (bbox_ij size - size_i - size_j) / image size, merges regions that fit each other);
  * a merged region's histograms are the size-weighted average of its parts';
  * diversification: the grouping is repeated for several colour spaces, Felzenszwalb scales
    (the paper's k) and similarity combinations, and the boxes of all runs are combined;
  * ranking: within one run the region created last (the whole image) has position 1, the one
    before it 2, ..., the initial segments the largest positions; each position is multiplied by
    a random number in [0, 1], the boxes of all runs are sorted by that value (ascending) and
    duplicates are dropped, keeping the best-ranked copy.

Simplified or chosen here:
  * texture: the 8 oriented first derivatives are steered from the x and y Gaussian derivatives
    (exact for first order) and half-wave rectified, so opposite orientations hold the two signs
    of one edge; responses are divided by the channel's largest response before binning;
  * neighbours are 8-connected pixel neighbours (the connectivity Felzenszwalb's graph uses);
  * colour spaces "rgb", "hsv", "lab" (L/100, (a + 128)/255, (b + 128)/255) and "rgi"
    (normalised r, g and intensity), each scaled to [0, 1]; hue is binned as a plain value;
  * the random numbers come from a generator seeded with ``seed`` and a CRC of the image, so the
    same image always gets the same proposals; a proposal's score is 1 / (1 + rank) in (0, 1];
  * defaults are set for 256-320 px images with objects of 8-64 px: small Felzenszwalb scales
    (k = 50, 100) and ``min_size`` 10 px, so that small objects survive as their own segment.
"""
import heapq
from typing import Optional, Sequence, Tuple
import zlib

import numpy as np
from scipy import ndimage
from skimage import color as skcolor
from skimage import segmentation

from tinyfaces_tf.proposals import base

COLOUR_SPACES = ("rgb", "hsv", "lab", "rgi")
COLOUR_BINS = 25
TEXTURE_ORIENTATIONS = 8
TEXTURE_BINS = 10
TEXTURE_SIGMA = 1.0


def to_colour_space(image: np.ndarray, space: str) -> np.ndarray:
  """``image`` (uint8 RGB [H, W, 3]) in colour space ``space``, float32 [H, W, 3] in [0, 1]."""
  rgb = image.astype(np.float32) / np.float32(255.0)
  if space == "rgb":
    out = rgb
  elif space == "hsv":
    out = skcolor.rgb2hsv(rgb)
  elif space == "lab":
    lab = skcolor.rgb2lab(rgb)
    out = np.stack([lab[..., 0] / 100.0, (lab[..., 1] + 128.0) / 255.0,
                    (lab[..., 2] + 128.0) / 255.0], axis=-1)
  elif space == "rgi":
    total = rgb.sum(axis=-1, keepdims=True)
    # Black pixels have no chromaticity; give them the neutral (1/3, 1/3).
    rg = np.where(total > 0, rgb[..., :2] / np.maximum(total, 1e-12), 1.0 / 3.0)
    out = np.concatenate([rg, total / 3.0], axis=-1)
  else:
    raise ValueError(f"unknown colour space {space!r}; expected one of {COLOUR_SPACES}")
  return np.clip(out, 0.0, 1.0).astype(np.float32)


def _bin_index(values, bins):
  """Bin of each value in [0, 1] among ``bins`` equal bins (1.0 goes to the last)."""
  return np.minimum((values * bins).astype(np.int64), bins - 1)


def colour_bins(colour: np.ndarray) -> np.ndarray:
  """Per pixel and channel, the colour-histogram bin in the joint [C * 25] histogram: int64
  [H * W, C]."""
  channels = colour.shape[-1]
  bins = _bin_index(colour.reshape(-1, channels), COLOUR_BINS)
  return bins + np.arange(channels, dtype=np.int64) * COLOUR_BINS


def texture_bins(colour: np.ndarray) -> np.ndarray:
  """Per pixel, channel and orientation, the texture-histogram bin in the joint [C * 8 * 10]
  histogram: int64 [H * W, C * 8]."""
  height, width, channels = colour.shape
  angles = np.arange(TEXTURE_ORIENTATIONS) * (2.0 * np.pi / TEXTURE_ORIENTATIONS)
  cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
  columns = []
  for c in range(channels):
    gx = ndimage.gaussian_filter(colour[..., c], TEXTURE_SIGMA, order=(0, 1))
    gy = ndimage.gaussian_filter(colour[..., c], TEXTURE_SIGMA, order=(1, 0))
    # Directional derivatives, half-wave rectified: [H * W, 8].
    response = np.maximum(gx.reshape(-1, 1) * cos + gy.reshape(-1, 1) * sin, 0.0)
    peak = response.max()
    if peak > 0:
      response /= peak
    columns.append(_bin_index(response, TEXTURE_BINS))
  bins = np.concatenate(columns, axis=1).reshape(height * width, channels * TEXTURE_ORIENTATIONS)
  return bins + np.arange(channels * TEXTURE_ORIENTATIONS, dtype=np.int64) * TEXTURE_BINS


def _histograms(flat_labels, bins, n_regions, n_bins):
  """L1-normalised per-region histograms [n_regions, n_bins] of the per-pixel ``bins``."""
  index = (flat_labels[:, None] * n_bins + bins).reshape(-1)
  hist = np.bincount(index, minlength=n_regions * n_bins).reshape(n_regions, n_bins)
  hist = hist.astype(np.float64)
  return hist / np.maximum(hist.sum(axis=1, keepdims=True), 1.0)


def _adjacent_pairs(labels):
  """Unique (a, b), a < b, of 8-connected neighbouring labels: int64 [P, 2]."""
  pairs = [(labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :]),
           (labels[:-1, :-1], labels[1:, 1:]), (labels[:-1, 1:], labels[1:, :-1])]
  a = np.concatenate([p[0].reshape(-1) for p in pairs]).astype(np.int64)
  b = np.concatenate([p[1].reshape(-1) for p in pairs]).astype(np.int64)
  keep = a != b
  lo, hi = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
  n = int(labels.max()) + 1
  codes = np.unique(lo * n + hi)
  return np.stack([codes // n, codes % n], axis=1)


def hierarchical_grouping(labels: np.ndarray, colour_bin: Optional[np.ndarray],
                          texture_bin: Optional[np.ndarray],
                          similarity: str = "ctsf") -> Tuple[np.ndarray, np.ndarray]:
  """Selective Search's greedy grouping of an over-segmentation.

  Args:
    labels: int [H, W] region labels 0..n-1 (every label present).
    colour_bin: ``colour_bins`` of the image (needed when "c" is in ``similarity``).
    texture_bin: ``texture_bins`` of the image (needed when "t" is in ``similarity``).
    similarity: which measures are summed: any non-empty combination of "c" (colour),
      "t" (texture), "s" (size) and "f" (fill).
  Returns:
    boxes: float32 [R, 4] x1, y1, x2, y2 of every region in creation order: the n initial
      regions (label order), then one per merge; R = 2n - 1 for a connected image.
    merges: int64 [R - n, 2] the two regions each merge joined.
  """
  if not similarity or set(similarity) - set("ctsf"):
    raise ValueError(f"similarity must combine 'c', 't', 's', 'f', got {similarity!r}")
  if ("c" in similarity and colour_bin is None) or ("t" in similarity and texture_bin is None):
    raise ValueError(f"similarity {similarity!r} needs the colour / texture bins")
  labels = np.asarray(labels)
  height, width = labels.shape
  image_size = float(height * width)
  flat = labels.reshape(-1).astype(np.int64)
  n = int(flat.max()) + 1
  capacity = 2 * n - 1

  size = np.zeros([capacity], np.float64)
  size[:n] = np.bincount(flat, minlength=n)
  # Boxes as (y0, x0, y1, x1), end-exclusive pixel indices.
  box = np.zeros([capacity, 4], np.int64)
  for i, sl in enumerate(ndimage.find_objects(flat.reshape(height, width) + 1)):
    box[i] = (sl[0].start, sl[1].start, sl[0].stop, sl[1].stop)

  use_size, use_fill = "s" in similarity, "f" in similarity
  # Colour and texture intersections are summed with equal weights, so one intersection of the
  # concatenated (each L1-normalised) histograms gives their sum in one pass.
  parts = []
  if "c" in similarity:
    parts.append(_histograms(flat, colour_bin, n, colour_bin.shape[1] * COLOUR_BINS))
  if "t" in similarity:
    parts.append(_histograms(flat, texture_bin, n, texture_bin.shape[1] * TEXTURE_BINS))
  hist = None
  if parts:
    hist = np.zeros([capacity, sum(p.shape[1] for p in parts)], np.float32)
    hist[:n] = np.concatenate(parts, axis=1)

  def similarities(a, b):
    """Similarity of regions ``a`` and ``b``: index arrays of one length, or ``a`` one index
    and ``b`` an array (the path every merge takes, so it is kept to few NumPy calls)."""
    if hist is not None:
      shared = hist[b]
      np.minimum(shared, hist[a], out=shared)
      total = shared.sum(axis=-1)
    else:
      total = np.zeros(np.shape(b), np.float64)
    both = size[a] + size[b]
    if use_fill:
      box_a, box_b = box[a], box[b]
      extent = (np.maximum(box_a[..., 2:], box_b[..., 2:])
                - np.minimum(box_a[..., :2], box_b[..., :2]))
      bbox_size = extent[..., 0] * extent[..., 1]
      # size + fill = 2 - bbox_ij / image size: the region sizes cancel.
      if use_size:
        total += 2.0 - bbox_size / image_size
      else:
        total += 1.0 - (bbox_size - both) / image_size
    elif use_size:
      total += 1.0 - both / image_size
    return total

  neighbours = [set() for _ in range(capacity)]
  pairs = _adjacent_pairs(flat.reshape(height, width))
  for a, b in pairs.tolist():
    neighbours[a].add(b)
    neighbours[b].add(a)
  # Max-heap of (-similarity, a, b). A pair's similarity never changes while both regions live
  # (a merge creates a new id), so stale entries are simply skipped when popped.
  heap = list(zip((-similarities(pairs[:, 0], pairs[:, 1])).tolist(),
                  pairs[:, 0].tolist(), pairs[:, 1].tolist()))
  heapq.heapify(heap)
  # Python mirrors of the per-region scalars: the loop below is scalar code.
  alive = bytearray(capacity)
  alive[:n] = b"\x01" * n
  size_list = size.tolist()
  box_list = box.tolist()
  merges = []
  new = n
  push, pop = heapq.heappush, heapq.heappop
  while heap:
    _, a, b = pop(heap)
    if not (alive[a] and alive[b]):
      continue
    sa, sb = size_list[a], size_list[b]
    size_list[new] = size[new] = sa + sb
    ba, bb = box_list[a], box_list[b]
    box_list[new] = box[new] = (min(ba[0], bb[0]), min(ba[1], bb[1]),
                                max(ba[2], bb[2]), max(ba[3], bb[3]))
    # Histograms propagate as the size-weighted average of the two parts.
    if hist is not None:
      np.add(hist[a] * (sa / (sa + sb)), hist[b] * (sb / (sa + sb)), out=hist[new])
    alive[a] = alive[b] = 0
    alive[new] = 1
    around = neighbours[a] | neighbours[b]
    around.discard(a)
    around.discard(b)
    for k in around:
      nk = neighbours[k]
      nk.discard(a)
      nk.discard(b)
      nk.add(new)
    neighbours[new] = around
    neighbours[a] = neighbours[b] = None
    if around:
      others = np.fromiter(around, np.int64, len(around))
      for sim, k in zip((-similarities(new, others)).tolist(), others.tolist()):
        push(heap, (sim, k, new))
    merges.append((a, b))
    new += 1

  box = box[:new]
  boxes = np.stack([box[:, 1], box[:, 0], box[:, 3], box[:, 2]], axis=1).astype(np.float32)
  return boxes, np.asarray(merges, np.int64).reshape(-1, 2)


# The paper's named diversification strategies (Uijlings et al. section 5.2), as constructor
# arguments: "single" = one HSV grouping at k = 100 (C+T+S+F), about 4x faster than "fast".
MODES = {"fast": {}, "single": {"colour_spaces": ("hsv",), "scales": (100.0,)}}


class SelectiveSearchProposer(base.Proposer):
  """Selective Search boxes ranked as in the paper (random-weighted hierarchy position).

  One grouping runs for every (colour space, Felzenszwalb scale, similarity) combination. The
  defaults are the paper's "fast" mode (HSV and Lab, k = 50 and 100) with C+T+S+F only (4 runs
  on 4 segmentations, 0.4-0.9 s for a 300 x 300 image on one core; textured images, cut into
  more segments, take longest) and ``min_size`` lowered to 10 px for small objects. Adding the
  paper's second similarity, T+S+F, doubles the grouping time; at 600 proposals it did not raise
  the recall of 8-64 px objects on synthetic scenes (the extra boxes compete for the same 600
  slots). Boxes are deduplicated across runs (the best-ranked copy stays); a proposal's score is
  1 / (1 + rank) with rank 0, 1, ... after the ``min_box`` / ``max_box`` filter, so scores are
  strictly decreasing and lie in (0, 1].

  Args:
    scales: Felzenszwalb ``scale`` values (the paper's k; larger = fewer, bigger segments).
    sigma: Gaussian pre-smoothing of the segmentation (pixels).
    min_size: smallest Felzenszwalb segment (pixels).
    min_box: boxes with a side shorter than this (pixels) are dropped.
    max_box: boxes with a side longer than this (pixels) are dropped; None keeps all.
    max_rois: cap on proposals per image, best-ranked first; None keeps all.
    colour_spaces: any of "rgb", "hsv", "lab", "rgi"; segmentation and histograms use it.
    similarities: similarity combinations, each a string of "c", "t", "s", "f".
    seed: seeds the ranking's random numbers together with a CRC of the image.
  """

  def __init__(self, scales: Sequence[float] = (50.0, 100.0), sigma: float = 0.8,
               min_size: int = 10, min_box: float = 4, max_box: Optional[float] = None,
               max_rois: Optional[int] = base.DEFAULT_MAX_ROIS,
               colour_spaces: Sequence[str] = ("hsv", "lab"),
               similarities: Sequence[str] = ("ctsf",), seed: int = 0):
    scales = tuple(float(s) for s in np.atleast_1d(scales))
    if not scales or min(scales) <= 0:
      raise ValueError(f"scales must be positive values, got {scales}")
    if sigma < 0:
      raise ValueError(f"sigma must be >= 0, got {sigma}")
    if min_size < 1:
      raise ValueError(f"min_size must be >= 1, got {min_size}")
    if min_box < 0:
      raise ValueError(f"min_box must be >= 0, got {min_box}")
    if max_box is not None and max_box < min_box:
      raise ValueError(f"max_box ({max_box}) must be >= min_box ({min_box})")
    colour_spaces = (colour_spaces,) if isinstance(colour_spaces, str) else tuple(colour_spaces)
    if not colour_spaces or set(colour_spaces) - set(COLOUR_SPACES):
      raise ValueError(f"colour_spaces must be some of {COLOUR_SPACES}, got {colour_spaces}")
    similarities = (similarities,) if isinstance(similarities, str) else tuple(similarities)
    if not similarities or any(not s or set(s) - set("ctsf") for s in similarities):
      raise ValueError(f"similarities must combine 'c', 't', 's', 'f', got {similarities}")
    self.scales = scales
    self.sigma = float(sigma)
    self.min_size = int(min_size)
    self.min_box = float(min_box)
    self.max_box = None if max_box is None else float(max_box)
    self.max_rois = max_rois
    self.colour_spaces = colour_spaces
    self.similarities = similarities
    self.seed = int(seed)

  def segment(self, source: np.ndarray, scale: float) -> np.ndarray:
    """Felzenszwalb labels (int64 [H, W], 0..n-1) of ``source`` ([H, W, C], uint8 or float in
    [0, 1]: the same units, scikit-image rescales uint8 to [0, 1])."""
    labels = segmentation.felzenszwalb(source, scale=scale, sigma=self.sigma,
                                       min_size=self.min_size, channel_axis=-1)
    labels = labels.astype(np.int64)
    # Consecutive labels 0..n-1 (the grouping indexes arrays by label).
    present = np.bincount(labels.reshape(-1)) > 0
    return (np.cumsum(present) - 1)[labels]

  def ranked_boxes(self, image: np.ndarray) -> np.ndarray:
    """Every distinct box of all runs, best-ranked first, before the size filter and the cap:
    float32 [N, 4]."""
    image = base.check_image(image)
    crc = zlib.crc32(np.asarray(image.shape, np.int64).tobytes())
    rng = np.random.default_rng([self.seed, zlib.crc32(np.ascontiguousarray(image), crc)])
    all_boxes, all_priorities = [], []
    need_c = any("c" in s for s in self.similarities)
    need_t = any("t" in s for s in self.similarities)
    for space in self.colour_spaces:
      colour = to_colour_space(image, space)
      cbins = colour_bins(colour) if need_c else None
      tbins = texture_bins(colour) if need_t else None
      for scale in self.scales:
        # RGB segments the uint8 image itself, so they equal felzenszwalb(image, ...).
        labels = self.segment(image if space == "rgb" else colour, scale)
        for similarity in self.similarities:
          boxes, _ = hierarchical_grouping(labels, cbins, tbins, similarity)
          # Position 1 = the last region created (the whole image), initial segments last.
          position = np.arange(len(boxes), 0, -1, dtype=np.float64)
          all_boxes.append(boxes)
          all_priorities.append(position * rng.random(len(boxes)))
    boxes = np.concatenate(all_boxes)
    order = np.argsort(np.concatenate(all_priorities), kind="stable")
    boxes = boxes[order]
    # Boxes hold integer pixel coordinates: one int64 code per box makes deduplication a 1-D
    # unique; return_index gives each box's first (best-ranked) occurrence.
    radix = np.int64(max(image.shape[:2]) + 1)
    coords = boxes.astype(np.int64)
    codes = ((coords[:, 0] * radix + coords[:, 1]) * radix + coords[:, 2]) * radix + coords[:, 3]
    _, first = np.unique(codes, return_index=True)
    return boxes[np.sort(first)]

  def propose(self, image: np.ndarray, image_name: Optional[str] = None) -> base.Proposals:
    del image_name  # computed from the pixels
    boxes = self.ranked_boxes(image)
    sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    keep = sides >= self.min_box
    if self.max_box is not None:
      keep &= np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) <= self.max_box
    boxes = boxes[keep]
    scores = 1.0 / (1.0 + np.arange(len(boxes), dtype=np.float64))
    return base.make_proposals(boxes, scores, self.max_rois)
