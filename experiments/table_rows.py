"""The rows of every paper table experiments/run.py runs, and the flag-free helpers that name and
summarise them (kept apart from run.py so they can be imported without defining absl flags)."""
import dataclasses
import math
import statistics
from typing import Optional, Sequence, Tuple

SETTINGS = ("easy", "medium", "hard")
CONFIDENCE = 0.95  # of every paired interval


@dataclasses.dataclass(frozen=True)
class Row:
  """One row of a paper table.

  Attributes:
    name: as printed in the paper (its slug names the run directory and `--rows`).
    flagfile: the row's flagfile under experiments/, or None for the baseline (the proposer's
      own scores).
    paper: the paper's Easy/Medium/Hard AP (None where the paper has no WIDER number).
    reference: the row this one is compared with (the paper's claim is row vs reference).
    expect: the claim's direction where the paper has no WIDER numbers for the pair: +1 = this
      row is better than the reference (MTGAN Table 4 is on COCO: MTGAN > SBU).
  """
  name: str
  flagfile: Optional[str]
  paper: Tuple[Optional[float], Optional[float], Optional[float]]
  reference: Optional[str] = None
  expect: Optional[int] = None


BASELINE_ROW = "Baseline (proposer)"
_baseline = lambda paper=(None, None, None): Row(BASELINE_ROW, None, paper)
_OURS, _OURS_STAR = "Ours (MSE + adv + cls)", "Ours* (+ reg branch + reg loss)"
_X20 = "x2.0"  # the journal's final context (best Hard)
# Journal WIDER val Easy/Medium/Hard: its baseline detector [9], the final model (x2.0), and
# section 4.3's weaker detector [47] with the final model trained and tested on its RoIs.
JOURNAL_BASELINE = (0.932, 0.922, 0.858)
JOURNAL_FINAL = (0.955, 0.946, 0.889)
JOURNAL_WEAK_BASELINE, JOURNAL_FINAL_ON_WEAK = (0.919, 0.908, 0.823), (0.953, 0.945, 0.888)

TABLES = {
    # Journal Table 2: each ablation against the model it removes a part from; the full models
    # against the baseline detector.
    "2": [_baseline(JOURNAL_BASELINE),
          Row("w/o Refinement Network", "table2/w_o_refinement.cfg", (0.940, 0.929, 0.863), _OURS),
          Row("w/o adv loss", "table2/w_o_adv_loss.cfg", (0.935, 0.925, 0.867), _OURS),
          Row("w/o cls loss", "table2/w_o_cls_loss.cfg", (0.936, 0.927, 0.865), _OURS),
          Row(_OURS, "table2/ours.cfg", (0.944, 0.933, 0.873), BASELINE_ROW),
          Row("w/o reg+ branch", "table2/w_o_reg_branch.cfg", (0.946, 0.936, 0.876), _OURS_STAR),
          Row("w/o reg loss", "table2/w_o_reg_loss.cfg", (0.949, 0.940, 0.880), _OURS_STAR),
          Row(_OURS_STAR, "table2/ours_star.cfg", (0.951, 0.943, 0.882), BASELINE_ROW)],
    # Journal Table 3: every context against x2.0; x2.0 against the baseline (Table 2's).
    "3": [_baseline(JOURNAL_BASELINE)] + [
        Row(f"x{m}", f"table3/context_x{m}.cfg", p, BASELINE_ROW if f"x{m}" == _X20 else _X20)
        for m, p in (("1.0", (0.951, 0.943, 0.882)), ("1.5", (0.953, 0.944, 0.886)),
                     ("2.0", JOURNAL_FINAL), ("3.0", (0.960, 0.949, 0.872)),
                     ("4.0", (0.936, 0.925, 0.814)))],
    # MTGAN Table 4 (COCO: baseline < SBU < MTGAN) with MTGAN's WIDER val row (its Table 8).
    "4": [_baseline(),
          Row("SBU (bilinear)", "mtgan/sbu.cfg", (None, None, None), BASELINE_ROW, expect=+1),
          Row("MTGAN", "mtgan/mtgan.cfg", (0.959, 0.948, 0.893), "SBU (bilinear)", expect=+1)],
    "cvpr18": [_baseline(),
               Row("CVPR18 (VGG19, no reg)", "cvpr18/cvpr18.cfg", (0.944, 0.933, 0.873),
                   BASELINE_ROW, expect=+1)],
}

# MTGAN's COCO tables (minival, pycocotools: AP, AP50, AP75, APs, APm, APl as fractions), one
# flagfile per row under experiments/mtgan_coco/ (paper scale; demo scale appends
# demo_scale.cfg and demo_scale_coco.cfg). The baselines are the proposers' own detections
# (Faster R-CNN R50-C4, Mask R-CNN R101-FPN from Detectron): no flagfile. Table 9 compares the
# D's classification accuracy (positives, negatives, all) of the SBU and MTGAN rows.
COCO_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")
_FASTER_R50 = (0.365, 0.573, 0.393, 0.184, 0.406, 0.506)
_MTGAN_R50 = (0.372, 0.577, 0.402, 0.199, 0.412, 0.512)
_MTGAN = "MTGAN (ResNet-50)"
_MTGAN_ROW = lambda reference=BASELINE_ROW: Row(_MTGAN, "mtgan_coco/mtgan_r50.cfg", _MTGAN_R50,
                                                reference)
COCO_TABLES = {
    "mtgan2": [Row("Faster R-CNN R50-C4 (baseline)", None, _FASTER_R50),
               Row(_MTGAN, "mtgan_coco/mtgan_r50.cfg", _MTGAN_R50,
                   "Faster R-CNN R50-C4 (baseline)"),
               Row("Mask R-CNN R101-FPN (baseline)", None,
                   (0.409, 0.619, 0.448, 0.235, 0.442, 0.539)),
               Row("MTGAN (ResNet-101)", "mtgan_coco/mtgan_r101.cfg",
                   (0.415, 0.625, 0.454, 0.251, 0.446, 0.541),
                   "Mask R-CNN R101-FPN (baseline)")],
    "mtgan3": [Row("Plain R-CNN", "mtgan_coco/plain_rcnn.cfg",
                   (0.218, 0.406, 0.196, 0.106, 0.203, 0.326), _MTGAN),
               Row("D w/o adv+ branch", "mtgan_coco/d_wo_adv_branch.cfg",
                   (0.361, 0.571, 0.391, 0.188, 0.403, 0.494), _MTGAN),
               _MTGAN_ROW()],
    "mtgan4": [_baseline(_FASTER_R50),
               Row("SBU", "mtgan_coco/sbu.cfg", (0.368, 0.576, 0.394, 0.189, 0.408, 0.503),
                   _MTGAN),
               _MTGAN_ROW()],
    "mtgan5": [Row(name, f"mtgan_coco/{file}.cfg", paper, _MTGAN) for name, file, paper in (
        ("w/o reg+ branch", "w_o_reg_branch", (0.367, 0.575, 0.398, 0.190, 0.409, 0.499)),
        ("w/o adv loss", "w_o_adv_loss", (0.370, 0.576, 0.400, 0.194, 0.410, 0.510)),
        ("w/o cls loss", "w_o_cls_loss", (0.368, 0.576, 0.399, 0.192, 0.411, 0.503)),
        ("w/o reg loss", "w_o_reg_loss", (0.367, 0.576, 0.397, 0.191, 0.411, 0.502)))] + [
        _MTGAN_ROW()],
    "mtgan6": [_baseline(_FASTER_R50), _MTGAN_ROW(),
               Row("Ensemble", "mtgan_coco/ensemble.cfg",
                   (0.381, 0.585, 0.409, 0.208, 0.420, 0.519), _MTGAN)],
}
# Rows that differ from another row only at detection time: they detect with that row's trained
# model (same seed) and their own detect settings instead of training again. Table 6's ensemble
# is MTGAN's model with its class probability times the baseline's score.
TRAINED_BY = {"mtgan_coco/ensemble.cfg": "mtgan_coco/mtgan_r50.cfg"}
# MTGAN Table 9: the D's classification accuracy on the proposer's positive (IoU > 0.5) /
# negative (IoU < 0.35) / all RoIs, of Table 4's SBU and MTGAN runs (the same run directories).
ACCURACY_METRICS = ("positive_accuracy", "negative_accuracy", "accuracy")
COCO_TABLES["mtgan9"] = [
    Row("SBU", "mtgan_coco/sbu.cfg", (0.942, 0.963, 0.955), _MTGAN),
    Row(_MTGAN, "mtgan_coco/mtgan_r50.cfg", (0.966, 0.972, 0.970))]
RUNS_OF = {"mtgan9": "mtgan4"}  # tables that score the runs of another table
# Column names in the reports (as the papers print them).
METRIC_NAMES = {"easy": "Easy", "medium": "Medium", "hard": "Hard",
                "positive_accuracy": "Acc. of Pos.", "negative_accuracy": "Acc. of Neg.",
                "accuracy": "Acc. of All"}

# Journal section 4.3's sensitivity study: every proposer both cuts the training RoIs and
# proposes at test time; the model is the journal's final one (Ours*, context x2.0).
SENSITIVITY_PROPOSERS = ("mtcnn", "lbp", "windows")
SENSITIVITY_FLAGFILE = "table3/context_x2.0.cfg"
# (proposer's own AP, ours on it) in the paper, beside the proposer that plays that role here.
SENSITIVITY_PAPER = {"mtcnn": (JOURNAL_BASELINE, JOURNAL_FINAL),
                     "lbp": (JOURNAL_WEAK_BASELINE, JOURNAL_FINAL_ON_WEAK)}

# Extra demo-scale flagfiles (appended after demo_scale.cfg) for rows that need them.
DEMO_EXTRA = {"mtgan/sbu.cfg": "mtgan/demo_sgd_d.cfg", "mtgan/mtgan.cfg": "mtgan/demo_sgd_d.cfg",
              **{row.flagfile: "demo_scale_coco.cfg" for rows in COCO_TABLES.values()
                 for row in rows if row.flagfile}}


def slug(name):
  """'Ours (MSE + adv + cls)' -> 'ours_mse_adv_cls': the row's run directory and --rows name."""
  return "_".join("".join(c if c.isalnum() else " " for c in name).lower().split())


def mean_sd(values):
  """(mean, sample standard deviation or None for one value) of a list of floats."""
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)


@dataclasses.dataclass(frozen=True)
class PairedDifference:
  """row - reference over seeds: the mean and its two-sided t interval (None under 2 seeds)."""
  mean: float
  low: Optional[float]
  high: Optional[float]
  seeds: int

  @property
  def distinguishable(self):
    """The interval excludes zero."""
    return self.low is not None and (self.low > 0 or self.high < 0)


def paired_difference(row: Sequence[float], reference: Sequence[float],
                      confidence=CONFIDENCE) -> PairedDifference:
  """Paired t interval of row[s] - reference[s] over seeds s (a one-sample t test of the
  differences). A reference with one value (the deterministic baseline) is paired with every
  seed."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  if len(reference) == 1:
    reference = list(reference) * len(row)
  if len(reference) != len(row):
    raise ValueError(f"{len(row)} row values but {len(reference)} reference values")
  diffs = [r - f for r, f in zip(row, reference)]
  mean = statistics.mean(diffs)
  if len(diffs) < 2:
    return PairedDifference(mean, None, None, len(diffs))
  if statistics.stdev(diffs) == 0:  # every seed moved by the same amount: no spread
    return PairedDifference(mean, mean, mean, len(diffs))
  low, high = stats.ttest_1samp(diffs, 0.0).confidence_interval(confidence)
  return PairedDifference(mean, float(low), float(high), len(diffs))


def claim_sign(row: Row, reference: Row, setting_index: int) -> Optional[int]:
  """The paper's direction for row vs reference on one setting: +1 (row better), -1, 0 (equal in
  the paper) or None (no paper numbers and no stated expectation)."""
  a, b = row.paper[setting_index], reference.paper[setting_index]
  if a is not None and b is not None:
    return (a > b) - (a < b)
  return row.expect


def verdict(difference: PairedDifference, sign: Optional[int]) -> str:
  """'shown' (the interval excludes 0 on the paper's side), 'reversed' (on the other side),
  'not shown' (includes 0), or why no verdict is possible."""
  if sign is None:
    return "no paper claim"
  if sign == 0:
    return "paper: equal"
  if not difference.distinguishable:
    return "not shown" if difference.low is not None else "one seed"
  return "shown" if math.copysign(1, difference.mean) == sign else "reversed"
