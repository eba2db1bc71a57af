"""The official WIDER FACE protocol: hand-worked cases and a line-by-line MATLAB re-computation."""
import numpy as np
import pytest

from tinyfaces_tf.data import result_files
from tinyfaces_tf.data import wider_ground_truth
from tinyfaces_tf.evaluation import wider_protocol


def _gt(images, settings=None):
  """images: {"event/stem": [K, 4] xywh}; settings: setting -> {name: 1-based indices}."""
  names = list(images)
  settings = settings or {}
  gt_lists = {s: [settings.get(s, {}).get(n, list(range(1, len(images[n]) + 1))) for n in names]
              for s in wider_protocol.SETTINGS}
  return wider_ground_truth.EvalGroundTruth.from_images(names, [images[n] for n in names], gt_lists)


def _preds(rows):
  """{name: [[x, y, w, h, score], ...]} -> {name: (boxes, scores)}."""
  out = {}
  for name, r in rows.items():
    r = np.asarray(r, np.float64).reshape(-1, 5)
    out[name] = (r[:, :4], r[:, 4])
  return out


# --- A literal transcription of wider_eval.m (loops, no vectorisation) as the reference. ---

def _matlab_boxoverlap(a, b):
  x1 = np.maximum(a[:, 0], b[0])
  y1 = np.maximum(a[:, 1], b[1])
  x2 = np.minimum(a[:, 2], b[2])
  y2 = np.minimum(a[:, 3], b[3])
  w = x2 - x1 + 1
  h = y2 - y1 + 1
  inter = w * h
  aarea = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
  barea = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
  o = inter / (aarea + barea - inter)
  o[w <= 0] = 0
  o[h <= 0] = 0
  return o


def _matlab_eval(preds, gt, setting, thresh_num=1000, iou=0.5):
  scores_all = [p[1] for p in preds.values() if len(p[1])]
  # max_score/min_score start as MATLAB singles; max(single, double) is single, and so is every
  # later single op double: the normalisation runs in float32.
  max_score = np.float32(max([np.finfo(np.float32).tiny] + [s.max() for s in scores_all]))
  min_score = np.float32(min([np.finfo(np.float32).max] + [s.min() for s in scores_all]))
  org = np.zeros((thresh_num, 2))
  count_face = 0
  for i, event in enumerate(gt.event_list):
    for j, stem in enumerate(gt.file_list[i]):
      gt_bbx = gt.face_bbx_list[i][j].copy()
      keep_index = gt.gt_lists[setting][i][j]
      count_face += len(keep_index)
      name = f"{event}/{stem}"
      if name not in preds or len(preds[name][1]) == 0 or len(gt_bbx) == 0:
        continue
      boxes, scores = preds[name]
      bbx = np.concatenate([boxes, scores[:, None]], axis=1)
      # sort(..., 'descend') is stable: equal scores keep file order.
      order = sorted(range(len(bbx)), key=lambda k: -bbx[k, 4])
      pred_info = bbx[order].copy()
      pred_info[:, 4] = ((pred_info[:, 4].astype(np.float32) - min_score)
                         / (max_score - min_score))
      ignore = np.zeros(len(gt_bbx))
      ignore[keep_index - 1] = 1
      pred_recall = np.zeros(len(pred_info))
      recall_list = np.zeros(len(gt_bbx))
      proposal_list = np.ones(len(pred_info))
      pred_info[:, 2] += pred_info[:, 0]
      pred_info[:, 3] += pred_info[:, 1]
      gt_bbx[:, 2] += gt_bbx[:, 0]
      gt_bbx[:, 3] += gt_bbx[:, 1]
      for h in range(len(pred_info)):
        overlap_list = _matlab_boxoverlap(gt_bbx, pred_info[h, :4])
        idx = int(np.argmax(overlap_list))
        if overlap_list[idx] >= iou:
          if ignore[idx] == 0:
            recall_list[idx] = -1
            proposal_list[h] = -1
          elif recall_list[idx] == 0:
            recall_list[idx] = 1
        pred_recall[h] = np.sum(recall_list == 1)
      for t in range(1, thresh_num + 1):
        thresh = 1 - t / thresh_num
        r = np.flatnonzero(pred_info[:, 4] >= thresh)
        if len(r):
          r = r[-1]
          org[t - 1, 0] += np.sum(proposal_list[:r + 1] == 1)
          org[t - 1, 1] += pred_recall[r]
  with np.errstate(invalid="ignore", divide="ignore"):
    precision = org[:, 1] / org[:, 0]
  recall = org[:, 1] / count_face
  # VOCap, with MATLAB's NaN-ignoring max.
  mrec = np.concatenate([[0], recall, [1]])
  mpre = np.concatenate([[0], precision, [0]])
  for k in range(len(mpre) - 2, -1, -1):
    mpre[k] = mpre[k + 1] if np.isnan(mpre[k]) else max(mpre[k], mpre[k + 1])
  idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
  ap = np.sum((mrec[idx] - mrec[idx - 1]) * mpre[idx])
  return ap, precision, recall


def _random_case(rng, num_images=12):
  images, settings, preds = {}, {s: {} for s in wider_protocol.SETTINGS}, {}
  for k in range(num_images):
    name = f"{k % 3}--Ev/img_{k}"
    num_faces = rng.integers(0, 6)
    xy = rng.uniform(0, 200, (num_faces, 2))
    wh = rng.uniform(2, 60, (num_faces, 2))
    faces = np.round(np.concatenate([xy, wh], axis=1))
    images[name] = faces
    # Nested settings like WIDER: hard >= medium >= easy.
    order = rng.permutation(num_faces) + 1
    n_hard = max(0, num_faces - rng.integers(0, 2))
    n_medium = max(0, n_hard - rng.integers(0, 3))
    settings["hard"][name] = order[:n_hard]
    settings["medium"][name] = order[:n_medium]
    settings["easy"][name] = order[:max(0, n_medium - rng.integers(0, 3))]
    if k == num_images - 1:
      continue  # one image without a result file
    jitter = faces + rng.normal(0, 2.0, faces.shape) * np.concatenate([wh, wh], 1) / 10
    noise = np.concatenate([rng.uniform(0, 200, (3, 2)), rng.uniform(2, 60, (3, 2))], axis=1)
    boxes = np.concatenate([jitter, faces[:2], noise])
    preds[name] = (boxes, rng.uniform(-0.5, 2.0, len(boxes)))
  return _gt(images, settings), preds


def test_matches_line_by_line_matlab_transcription():
  rng = np.random.default_rng(7)
  gt, preds = _random_case(rng)
  result = wider_protocol.evaluate(preds, gt)
  assert result.num_missing == 1 and result.num_images == 12
  for setting in wider_protocol.SETTINGS:
    ap, precision, recall = _matlab_eval(preds, gt, setting)
    np.testing.assert_allclose(result.precision[setting], precision, rtol=0, atol=1e-12)
    np.testing.assert_allclose(result.recall[setting], recall, rtol=0, atol=1e-12)
    assert result.ap[setting] == pytest.approx(ap, abs=1e-12), setting
    assert 0 < result.ap[setting] < 1


def test_perfect_predictions_give_ap_one():
  rng = np.random.default_rng(0)
  gt, _ = _random_case(rng)
  preds = {n: (b, rng.uniform(0, 1, len(b)))
           for n, b in zip(gt.image_names(), [b for e in gt.face_bbx_list for b in e])}
  result = wider_protocol.evaluate(preds, gt)
  for setting in wider_protocol.SETTINGS:
    # Every counted face is hit and the other faces are "don't care": precision 1 everywhere.
    assert result.ap[setting] == pytest.approx(1.0, abs=1e-12), setting
    assert result.recall[setting][-1] == pytest.approx(1.0)


def test_hand_worked_ap(tmp_path):
  # Image a: faces g1 = [0,0,9,9] and g2 = [20,0,9,9]; image b: g3 = [0,0,19,19]. 3 faces.
  # Predictions (raw score): p1 = g1 (0.95, TP), p2 far away (0.8, FP), p3 = g3 (0.6, TP),
  # p4 = g3 again (0.05, FP: g3 already recalled). Normalised (s - 0.05) / 0.9:
  # p1 1.0, p2 0.833, p3 0.611, p4 0.0. Lowering the threshold adds p1, p2, p3, p4:
  #   (P, R) = (1, 1/3), (1/2, 1/3), (2/3, 2/3), (1/2, 2/3).
  # VOC AP: recall 0 -> 1/3 at envelope precision 1, 1/3 -> 2/3 at envelope 2/3, 2/3 -> 1 at 0:
  #   AP = 1/3 * 1 + 1/3 * 2/3 = 5/9.
  gt = _gt({"0--E/a": [[0, 0, 9, 9], [20, 0, 9, 9]], "0--E/b": [[0, 0, 19, 19]]})
  preds = _preds({"0--E/a": [[0, 0, 9, 9, 0.95], [100, 100, 9, 9, 0.8]],
                  "0--E/b": [[0, 0, 19, 19, 0.6], [0, 0, 19, 19, 0.05]]})
  result = wider_protocol.evaluate(preds, gt)
  for setting in wider_protocol.SETTINGS:
    assert result.ap[setting] == pytest.approx(5 / 9, abs=1e-12)
    assert result.num_faces[setting] == 3
  np.testing.assert_allclose(result.precision["easy"][[0, 200, 500, 999]], [1, 1 / 2, 2 / 3, 1 / 2])
  np.testing.assert_allclose(result.recall["easy"][[0, 200, 500, 999]], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
  # Same numbers through the files on disk.
  wider_ground_truth.write_eval_ground_truth(tmp_path / "gt", gt)
  for name, (boxes, scores) in preds.items():
    result_files.write_result_file(tmp_path / "res", name, boxes, scores)
  from_files = wider_protocol.evaluate_results_dir(tmp_path / "res", tmp_path / "gt")
  assert from_files.ap == pytest.approx({s: 5 / 9 for s in wider_protocol.SETTINGS}, abs=1e-12)


def test_dont_care_match_is_neither_tp_nor_fp():
  # g1 counts in every setting; g2 counts only in medium/hard ("don't care" in easy).
  gt = _gt({"0--E/a": [[0, 0, 9, 9], [30, 0, 9, 9]]}, {"easy": {"0--E/a": [1]}})
  base = {"0--E/a": [[0, 0, 9, 9, 0.9], [100, 100, 5, 5, 0.1]]}
  with_dont_care = {"0--E/a": base["0--E/a"] + [[30, 0, 9, 9, 0.5]]}
  a = wider_protocol.evaluate(_preds(base), gt)
  b = wider_protocol.evaluate(_preds(with_dont_care), gt)
  np.testing.assert_array_equal(a.proposals["easy"], b.proposals["easy"])
  np.testing.assert_array_equal(a.true_positives["easy"], b.true_positives["easy"])
  assert a.ap["easy"] == b.ap["easy"] == pytest.approx(1.0)
  # Where g2 counts, the same prediction is a true positive: recall 1/2 -> 1.
  assert a.recall["hard"][-1] == pytest.approx(0.5) and b.recall["hard"][-1] == pytest.approx(1.0)


def test_image_order_does_not_matter():
  rng = np.random.default_rng(3)
  gt, preds = _random_case(rng)
  shuffled = {}
  for name, (boxes, scores) in preds.items():
    perm = rng.permutation(len(scores))
    shuffled[name] = (boxes[perm], scores[perm])
  a, b = wider_protocol.evaluate(preds, gt), wider_protocol.evaluate(shuffled, gt)
  for setting in wider_protocol.SETTINGS:
    assert a.ap[setting] == b.ap[setting]
    np.testing.assert_array_equal(a.true_positives[setting], b.true_positives[setting])


def test_plus_one_iou_convention():
  # gt xywh [0,0,2,2] -> xyxy [0,0,2,2]; prediction [1,0,2,2] -> [1,0,3,2].
  # Continuous IoU: inter 1*2 = 2, union 4 + 4 - 2 = 6 -> 1/3 (a miss).
  # +1 convention: inter (2-1+1)*(2-0+1) = 6, areas 3*3 = 9, union 12 -> 0.5 (a hit).
  assert wider_protocol.overlaps_plus1([[1, 0, 3, 2]], [[0, 0, 2, 2]])[0, 0] == pytest.approx(0.5)
  gt = _gt({"0--E/a": [[0, 0, 2, 2]]})
  hit = wider_protocol.evaluate(_preds({"0--E/a": [[1, 0, 2, 2, 0.9], [50, 50, 2, 2, 0.1]]}), gt)
  assert hit.ap["hard"] == pytest.approx(1.0)
  # One more pixel of shift: inter 1*3 = 3, union 15 -> 0.2, no hit.
  miss = wider_protocol.evaluate(_preds({"0--E/a": [[2, 0, 2, 2, 0.9], [50, 50, 2, 2, 0.1]]}), gt)
  assert miss.ap["hard"] == 0.0


def test_plus_one_overlaps_against_formula():
  rng = np.random.default_rng(1)
  a = np.round(rng.uniform(0, 30, (20, 4)))
  a[:, 2:] = a[:, :2] + np.round(rng.uniform(0, 20, (20, 2)))
  b = a[rng.permutation(20)] + np.round(rng.normal(0, 3, (20, 4)))
  b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])
  got = wider_protocol.overlaps_plus1(a, b)
  for k in range(len(b)):
    np.testing.assert_allclose(got[:, k], _matlab_boxoverlap(a, b[k]), atol=1e-12)


def test_global_normalisation_is_affine_invariant():
  rng = np.random.default_rng(5)
  gt, preds = _random_case(rng)
  ref = wider_protocol.evaluate(preds, gt)
  for scale, shift in ((4.0, 0.0), (1.0, 1.0), (0.25, 3.0)):
    moved = {n: (b, s * scale + shift) for n, (b, s) in preds.items()}
    res = wider_protocol.evaluate(moved, gt)
    for setting in wider_protocol.SETTINGS:
      assert res.ap[setting] == pytest.approx(ref.ap[setting], abs=1e-12), (scale, shift)


def test_normalisation_is_global_not_per_image():
  # Two images, each with one TP and one FP. Globally, image b's FP (0.6) outranks image a's TP
  # (0.5): (P, R) = (1, 1/2), (1/2, 1/2), (2/3, 1), (1/2, 1) -> AP = 1/2 + 1/2 * 2/3 = 5/6.
  # Per-image normalisation would map both TPs to 1 and both FPs to 0 -> AP 1.
  gt = _gt({"0--E/a": [[0, 0, 9, 9]], "0--E/b": [[0, 0, 9, 9]]})
  preds = _preds({"0--E/a": [[0, 0, 9, 9, 0.5], [50, 50, 9, 9, 0.1]],
                  "0--E/b": [[0, 0, 9, 9, 0.9], [50, 50, 9, 9, 0.6]]})
  assert wider_protocol.evaluate(preds, gt).ap["hard"] == pytest.approx(5 / 6, abs=1e-12)


def test_missing_images_and_faceless_images():
  gt = _gt({"0--E/a": [[0, 0, 9, 9]], "0--E/b": [[0, 0, 9, 9]], "0--E/c": np.zeros((0, 4))})
  preds = _preds({"0--E/a": [[0, 0, 9, 9, 0.9], [50, 50, 9, 9, 0.1]]})
  result = wider_protocol.evaluate(preds, gt)
  assert result.num_missing == 2 and result.num_faces["hard"] == 2
  assert result.recall["hard"][-1] == pytest.approx(0.5)
  assert result.ap["hard"] == pytest.approx(0.5)
  # As in wider_eval.m, an image without faces is skipped: its boxes are not false positives.
  preds["0--E/c"] = (np.array([[5.0, 5, 9, 9]]), np.array([0.5]))
  again = wider_protocol.evaluate(preds, gt)
  np.testing.assert_array_equal(again.proposals["hard"], result.proposals["hard"])


def test_thresholds_and_official_ap_helpers():
  result = wider_protocol.evaluate(_preds({"e/a": [[0, 0, 9, 9, 1.0]]}), _gt({"e/a": [[0, 0, 9, 9]]}))
  assert result.thresholds[0] == pytest.approx(0.999) and result.thresholds[-1] == 0.0
  assert len(result.thresholds) == 1000
  # VOC AP of a two-point curve, by hand: recall 0.5 at P 1, then recall 1 at P 0.5 -> 0.75.
  assert wider_protocol.voc_ap([0.5, 1.0], [1.0, 0.5]) == pytest.approx(0.75)
  # NaN precision (no proposal yet) is skipped, as MATLAB's max skips NaN.
  assert wider_protocol.voc_ap([0.0, 0.5, 1.0], [np.nan, 1.0, 0.5]) == pytest.approx(0.75)


def test_image_eval_flags_by_hand():
  # Faces g0 (counts) and g1 (don't care). p0 hits g0, p1 hits g1, p2 hits g0 again, p3 misses.
  # Flags: p1 is -1 (don't care); p2 stays a proposal (g0 already recalled). Recall stays 1.
  gt = [[0, 0, 9, 9], [20, 0, 29, 9]]
  pred = [[0, 0, 9, 9], [20, 0, 29, 9], [1, 0, 9, 9], [50, 50, 59, 59]]
  pred_recall, proposal = wider_protocol.image_eval(pred, gt, keep=[True, False])
  np.testing.assert_array_equal(pred_recall, [1, 1, 1, 1])
  np.testing.assert_array_equal(proposal, [1, -1, 1, 1])
