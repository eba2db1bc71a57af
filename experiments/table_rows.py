"""The rows of every paper table experiments/run.py runs, and the flag-free helpers that name and
summarise them (kept apart from run.py so they can be imported without defining absl flags)."""
import statistics

# (row name, flagfile or None for the baseline, paper Easy/Medium/Hard).
TABLES = {
    "2": [("Baseline (proposer)", None, (0.932, 0.922, 0.858)),
          ("w/o Refinement Network", "table2/w_o_refinement.cfg", (0.940, 0.929, 0.863)),
          ("w/o adv loss", "table2/w_o_adv_loss.cfg", (0.935, 0.925, 0.867)),
          ("w/o cls loss", "table2/w_o_cls_loss.cfg", (0.936, 0.927, 0.865)),
          ("Ours (MSE + adv + cls)", "table2/ours.cfg", (0.944, 0.933, 0.873)),
          ("w/o reg+ branch", "table2/w_o_reg_branch.cfg", (0.946, 0.936, 0.876)),
          ("w/o reg loss", "table2/w_o_reg_loss.cfg", (0.949, 0.940, 0.880)),
          ("Ours* (+ reg branch + reg loss)", "table2/ours_star.cfg", (0.951, 0.943, 0.882))],
    "3": [(f"x{m}", f"table3/context_x{m}.cfg", p) for m, p in (
        ("1.0", (0.951, 0.943, 0.882)), ("1.5", (0.953, 0.944, 0.886)),
        ("2.0", (0.955, 0.946, 0.889)), ("3.0", (0.960, 0.949, 0.872)),
        ("4.0", (0.936, 0.925, 0.814)))],
    "4": [("Baseline (proposer)", None, (None, None, None)),
          ("SBU (bilinear)", "mtgan/sbu.cfg", (None, None, None)),
          ("MTGAN", "mtgan/mtgan.cfg", (0.959, 0.948, 0.893))],
    "cvpr18": [("Baseline (proposer)", None, (None, None, None)),
               ("CVPR18 (VGG19, no reg)", "cvpr18/cvpr18.cfg", (0.944, 0.933, 0.873))],
}

# Extra demo-scale flagfiles (appended after demo_scale.cfg) for rows that need them.
DEMO_EXTRA = {"mtgan/sbu.cfg": "mtgan/demo_sgd_d.cfg", "mtgan/mtgan.cfg": "mtgan/demo_sgd_d.cfg"}


def slug(name):
  """'Ours (MSE + adv + cls)' -> 'ours_mse_adv_cls': the row's run directory and --rows name."""
  return "_".join("".join(c if c.isalnum() else " " for c in name).lower().split())


def mean_sd(values):
  """(mean, sample standard deviation or None for one value) of a list of floats."""
  return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else None)
