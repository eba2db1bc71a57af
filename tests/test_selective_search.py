"""Selective Search proposals against independent references: objects drawn with NumPy, coins
found by Otsu thresholding, Felzenszwalb's own segments and a brute-force grouping."""
import numpy as np
import pytest
from scipy import ndimage
from skimage import data
from skimage import filters
from skimage import measure
from skimage import segmentation

from tinyfaces_tf.proposals import selective_search as ss


def np_iou(boxes, box):
  """IoU of xyxy ``boxes`` [N, 4] with one ``box`` (plain NumPy reference)."""
  boxes = np.asarray(boxes, np.float64)
  x1 = np.maximum(boxes[:, 0], box[0])
  y1 = np.maximum(boxes[:, 1], box[1])
  x2 = np.minimum(boxes[:, 2], box[2])
  y2 = np.minimum(boxes[:, 3], box[3])
  inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
  area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  return inter / (area + (box[2] - box[0]) * (box[3] - box[1]) - inter)


def mask_box(mask):
  """Continuous xyxy box of a boolean mask: pixels c0..c1 give x1 = c0, x2 = c1 + 1."""
  rows, cols = np.nonzero(mask)
  return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float64)


def synthetic_scene():
  """A 256 x 256 image: uniform background with mild noise, solid and textured rectangles and a
  disc (8-64 px); returns the image and each object's box."""
  rng = np.random.default_rng(3)
  height, width = 256, 256
  image = np.full([height, width, 3], (96, 128, 96), np.float64)
  image += rng.normal(0.0, 4.0, image.shape)
  yy, xx = np.mgrid[:height, :width]
  masks = []

  def rect(y0, x0, h, w):
    return (yy >= y0) & (yy < y0 + h) & (xx >= x0) & (xx < x0 + w)

  solid = rect(20, 30, 12, 20)
  image[solid] = (220, 40, 40)
  masks.append(solid)
  tiny = rect(200, 40, 8, 8)
  image[tiny] = (250, 250, 60)
  masks.append(tiny)
  # Checkerboard of 3 px cells: texture that Felzenszwalb cuts into many small segments.
  checker = rect(60, 150, 40, 28)
  dark = ((yy // 3 + xx // 3) % 2 == 0) & checker
  image[checker] = (230, 230, 230)
  image[dark] = (20, 20, 90)
  masks.append(checker)
  # Vertical stripes, 4 px period.
  stripes = rect(150, 120, 48, 64)
  image[stripes] = (200, 120, 20)
  image[stripes & (xx % 4 < 2)] = (120, 60, 10)
  masks.append(stripes)
  disc = (yy - 120.0) ** 2 + (xx - 60.0) ** 2 <= 16.0 ** 2
  image[disc] = (30, 60, 200)
  masks.append(disc)
  image = np.clip(np.round(image), 0, 255).astype(np.uint8)
  return image, [mask_box(m) for m in masks]


def test_synthetic_objects_are_all_found():
  image, truth = synthetic_scene()
  result = ss.SelectiveSearchProposer().propose(image)
  best = [np_iou(result.boxes, box).max() for box in truth]
  assert min(best) >= 0.7, best


def coins_truth():
  """Coin boxes found without Selective Search: Otsu threshold, holes filled, border-touching
  blobs (the bright image edge) removed, small specks dropped."""
  coins = data.coins()
  mask = ndimage.binary_fill_holes(coins > filters.threshold_otsu(coins))
  mask = segmentation.clear_border(mask)
  regions = [r for r in measure.regionprops(measure.label(mask)) if r.area >= 100]
  boxes = np.array([[r.bbox[1], r.bbox[0], r.bbox[3], r.bbox[2]] for r in regions], np.float64)
  return np.stack([coins] * 3, axis=-1), boxes


def test_coins_recall():
  image, truth = coins_truth()
  # The reference itself is sane: about two dozen coin-sized boxes.
  assert 18 <= len(truth) <= 26
  sides = np.concatenate([truth[:, 2] - truth[:, 0], truth[:, 3] - truth[:, 1]])
  assert sides.min() >= 15 and sides.max() <= 90
  result = ss.SelectiveSearchProposer(max_rois=600).propose(image)
  best = np.array([np_iou(result.boxes, box).max() for box in truth])
  assert (best >= 0.5).mean() >= 0.8, np.round(best, 2)


def noisy_image(height=72, width=96, seed=0):
  """Smooth random blobs plus noise: many segments on a small image."""
  rng = np.random.default_rng(seed)
  low = rng.uniform(0, 255, [height // 8, width // 8, 3])
  image = ndimage.zoom(low, (8, 8, 1), order=1)[:height, :width]
  image += rng.normal(0.0, 10.0, image.shape)
  return np.clip(np.round(image), 0, 255).astype(np.uint8)


def test_deterministic_sorted_scores_and_boxes_inside():
  image = noisy_image()
  height, width = image.shape[:2]
  first = ss.SelectiveSearchProposer(max_rois=50).propose(image)
  again = ss.SelectiveSearchProposer(max_rois=50).propose(image.copy())
  np.testing.assert_array_equal(first.boxes, again.boxes)
  np.testing.assert_array_equal(first.scores, again.scores)
  assert first.labels is None
  assert first.boxes.dtype == np.float32 and first.scores.dtype == np.float32
  assert 0 < len(first) <= 50
  assert np.all(np.diff(first.scores) < 0)
  assert first.scores[0] == 1.0 and np.all(first.scores > 0)
  boxes = first.boxes
  assert np.all(boxes[:, :2] >= 0) and np.all(boxes[:, 2] <= width)
  assert np.all(boxes[:, 3] <= height)
  assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
  # Without the cap: no duplicates, and the seed only reorders the same set of boxes.
  full = ss.SelectiveSearchProposer(max_rois=None).propose(image)
  other = ss.SelectiveSearchProposer(max_rois=None, seed=1).propose(image)
  assert len(np.unique(full.boxes, axis=0)) == len(full)
  assert not np.array_equal(full.boxes, other.boxes)
  np.testing.assert_array_equal(np.unique(full.boxes, axis=0), np.unique(other.boxes, axis=0))
  np.testing.assert_array_equal(full.boxes[:50], first.boxes)


def test_min_and_max_box_filter():
  image = noisy_image(seed=1)
  result = ss.SelectiveSearchProposer(min_box=8, max_box=40, max_rois=None).propose(image)
  sides = result.boxes[:, 2:] - result.boxes[:, :2]  # widths and heights
  assert len(result) > 0
  assert sides.min() >= 8 and sides.max() <= 40


def test_every_felzenszwalb_segment_box_is_proposed():
  image = noisy_image(seed=2)
  height, width = image.shape[:2]
  labels = segmentation.felzenszwalb(image, scale=50, sigma=0.8, min_size=10, channel_axis=-1)
  segments = [mask_box(labels == i) for i in np.unique(labels)]
  assert len(segments) > 10
  proposer = ss.SelectiveSearchProposer(scales=(50,), sigma=0.8, min_size=10, min_box=0,
                                        max_rois=None, colour_spaces=("rgb",))
  result = proposer.propose(image)
  found = {tuple(b) for b in result.boxes.tolist()}
  missing = [b for b in segments if tuple(b.tolist()) not in found]
  assert not missing
  assert (0.0, 0.0, float(width), float(height)) in found  # the hierarchy's root
  assert len(result) <= 2 * len(segments) - 1


def reference_grouping(labels, cbins, tbins, similarity):
  """The paper's greedy grouping done the slow way: every step recomputes every neighbouring
  pair's similarity from the pixels of the current regions."""
  height, width = labels.shape
  image_size = float(height * width)
  n_colour, n_texture = cbins.shape[1] * ss.COLOUR_BINS, tbins.shape[1] * ss.TEXTURE_BINS
  regions = {i: labels == i for i in range(labels.max() + 1)}

  def hist(bins, mask, n_bins):
    counts = np.bincount(bins[mask.reshape(-1)].reshape(-1), minlength=n_bins)
    return counts / counts.sum()

  def sim(i, j):
    mi, mj = regions[i], regions[j]
    total = 0.0
    if "c" in similarity:
      total += np.minimum(hist(cbins, mi, n_colour), hist(cbins, mj, n_colour)).sum()
    if "t" in similarity:
      total += np.minimum(hist(tbins, mi, n_texture), hist(tbins, mj, n_texture)).sum()
    if "s" in similarity:
      total += 1.0 - (mi.sum() + mj.sum()) / image_size
    if "f" in similarity:
      x1, y1, x2, y2 = mask_box(mi | mj)
      total += 1.0 - ((x2 - x1) * (y2 - y1) - mi.sum() - mj.sum()) / image_size
    return total

  merges = []
  new = len(regions)
  while len(regions) > 1:
    best = None
    for i in sorted(regions):
      grown = ndimage.binary_dilation(regions[i], structure=np.ones([3, 3], bool))
      for j in sorted(regions):
        if j > i and (grown & regions[j]).any():
          s = sim(i, j)
          if best is None or s > best[0]:
            best = (s, i, j)
    _, i, j = best
    regions[new] = regions.pop(i) | regions.pop(j)
    merges.append((i, j))
    new += 1
  return np.array(merges)


@pytest.mark.parametrize("similarity", ["ctsf", "tsf", "cs", "f"])
def test_grouping_matches_brute_force(similarity):
  rng = np.random.default_rng(7)
  height, width = 40, 48
  # Nearest-seed (Voronoi) cells are convex, hence connected: 14 regions, each its own colour.
  seeds = rng.uniform([0, 0], [height, width], [14, 2])
  yy, xx = np.mgrid[:height, :width]
  labels = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2,
                     axis=-1)
  _, labels = np.unique(labels, return_inverse=True)
  labels = labels.reshape(height, width)
  colours = rng.uniform(0, 255, [labels.max() + 1, 3])
  image = colours[labels] + rng.normal(0.0, 20.0, [height, width, 3])
  colour = np.clip(image / 255.0, 0.0, 1.0).astype(np.float32)
  cbins, tbins = ss.colour_bins(colour), ss.texture_bins(colour)
  boxes, merges = ss.hierarchical_grouping(labels, cbins, tbins, similarity)
  expected = reference_grouping(labels, cbins, tbins, similarity)
  np.testing.assert_array_equal(merges, expected)
  n = labels.max() + 1
  assert len(boxes) == 2 * n - 1
  # Every region's box, initial and merged, is the box of its pixels.
  members = {i: labels == i for i in range(n)}
  for k, (i, j) in enumerate(merges):
    members[n + k] = members[i] | members[j]
  for k in range(2 * n - 1):
    np.testing.assert_array_equal(boxes[k], mask_box(members[k]))


@pytest.mark.parametrize("bad", [
    np.zeros([32, 32, 3], np.float32),  # float, not uint8
    np.zeros([32, 32], np.uint8),       # grey, no channel axis
    np.zeros([32, 32, 4], np.uint8),    # RGBA
])
def test_bad_image_raises(bad):
  with pytest.raises(ValueError):
    ss.SelectiveSearchProposer().propose(bad)


@pytest.mark.parametrize("kwargs", [
    dict(colour_spaces=("xyz",)), dict(similarities=("cq",)), dict(similarities=("",)),
    dict(scales=(0,)), dict(min_size=0), dict(min_box=10, max_box=5),
])
def test_bad_arguments_raise(kwargs):
  with pytest.raises(ValueError):
    ss.SelectiveSearchProposer(**kwargs)


def test_flat_texture_sits_in_the_first_bin():
  flat = np.full([16, 16, 3], 0.5, np.float32)
  bins = ss.texture_bins(flat)
  assert bins.shape == (256, 24)
  np.testing.assert_array_equal(bins % ss.TEXTURE_BINS, 0)


def test_spec_modes_are_the_papers_strategies():
  from tinyfaces_tf import proposals  # pylint: disable=g-import-not-at-top
  fast = proposals.make_proposer("selective_search", max_rois=50)
  single = proposals.make_proposer("selective_search:single")
  assert (fast.colour_spaces, fast.scales, fast.max_rois) == (("hsv", "lab"), (50.0, 100.0), 50)
  assert (single.colour_spaces, single.scales) == (("hsv",), (100.0,))
  # "single" runs one of "fast"'s groupings: its boxes are among fast's.
  image = data.coffee()[::2, ::2].copy()
  fast_all = {tuple(b) for b in ss.SelectiveSearchProposer(max_rois=None).ranked_boxes(image)}
  single_all = ss.SelectiveSearchProposer(max_rois=None, **ss.MODES["single"]).ranked_boxes(image)
  assert 0 < len(single_all) < len(fast_all)
  assert {tuple(b) for b in single_all} <= fast_all
  with pytest.raises(ValueError, match="modes are fast, single"):
    proposals.make_proposer("selective_search:slow")
