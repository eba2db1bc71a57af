"""Detection speed through the exported ``detect`` signature: one image with 600 proposals
(journal 4.2) -> ms per image, RoIs/s, achieved FLOP/s and MFU, per config and precision.

  python benchmarks/detect.py --configs=demo,journal --policies=float32,mixed_bfloat16
  python benchmarks/detect.py --model=runs/demo/export         # time an existing export
  python benchmarks/detect.py --run_dir=runs/demo --root=data/demo   # AP per precision
  python benchmarks/detect.py --configs=journal --profile_dir=/tmp/detect_profile  # + op time


Each case builds the config's models under the policy (random weights unless --model), exports
them with ``Task.export`` to a temporary directory, reloads the SavedModel
(``export.SavedModelDetector``) and times the call on a random 1024x768 image with --rois random
proposals of 8-64 px (all of them re-scored: detect.max_rois is set to --rois). FLOPs per RoI:
``flops.detect_flops`` (G then D forward). MFU: over the forward roofline of G and D measured in
this process (layer_rates.py) at --roofline_batch RoIs per call.

With --run_dir and --root the trained run is exported under each policy instead and detects the
dataset's evaluation split on the proposals the run was evaluated with
(the root's proposals directory, as ``make demo`` writes it), and the official AP per policy is
reported beside float32's: what serving in a lower precision costs in accuracy.
"""
import os
import tempfile
import time

from absl import app
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import export
from tinyfaces_tf import flops
from tinyfaces_tf import precision
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.proposals.base import DEFAULT_MAX_ROIS

import common  # benchmarks/, first on sys.path
import layer_rates
import op_profile

_CONFIGS = flags.DEFINE_list("configs", ["demo", "journal"],
                             f"Configs to time: {sorted(common.CONFIGS)}.")
_MODEL = flags.DEFINE_string("model", None, "Time this export instead of building --configs.")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "A trained run: AP of its export per policy.")
_ROOT = flags.DEFINE_string("root", None, "With --run_dir: the dataset root (proposals/ in it).")
_POLICIES = flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
_ROIS = flags.DEFINE_integer("rois", DEFAULT_MAX_ROIS, "Proposals per image, all re-scored.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed images (median, min, max reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed images first (tracing, allocator).")
_ROOFLINE = flags.DEFINE_bool("roofline", True, "Measure the forward roofline and report MFU.")
_ROOFLINE_BATCH = flags.DEFINE_integer("roofline_batch", 32, "RoIs per roofline call.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")
_PROFILE_DIR = flags.DEFINE_string("profile_dir", None, "Also trace one more image per case with "
                                   "the TF profiler (a folder per case here) and report its op "
                                   "time per category (op_profile.py).")

_IMAGE_SHAPE = (768, 1024, 3)


def random_inputs(n, seed=0):
  """A random image and n proposals (x1, y1, x2, y2) of 8-64 px with scores in (0, 1)."""
  rng = np.random.default_rng(seed)
  image = rng.integers(0, 256, _IMAGE_SHAPE, dtype=np.uint8)
  size = rng.uniform(8, 64, (n, 1))
  corner = rng.uniform(0, 1, (n, 2)) * (np.array(_IMAGE_SHAPE[1::-1]) - size)
  boxes = np.concatenate([corner, corner + size], axis=1).astype(np.float32)
  return image, boxes, rng.uniform(0.01, 1.0, n).astype(np.float32)


def time_detector(detector, n_rois, repeats, warmup):
  image, boxes, scores = random_inputs(n_rois)
  for _ in range(warmup):
    detector(image, boxes, scores)
  seconds = []
  for _ in range(repeats):
    start = time.perf_counter()
    detector(image, boxes, scores)  # returns numpy: the call has finished
    seconds.append(time.perf_counter() - start)
  return common.Spread.of(seconds)


def profile_detector(detector, n_rois, logdir):
  """Op seconds of one traced image, {category: s} and {op type: s} (op_profile.py)."""
  image, boxes, scores = random_inputs(n_rois)
  tf.profiler.experimental.start(logdir)
  detector(image, boxes, scores)
  tf.profiler.experimental.stop()
  by_category, by_type = op_profile.summarise(op_profile.op_times(logdir))
  total = sum(by_category.values())
  print(f"one image: summed op time {total:.2f} s; "
        + ", ".join(f"{k} {v / total:.1%}" for k, v in by_category.most_common()))
  print("top op types:", ", ".join(f"{t} {v / total:.1%}" for t, v in by_type.most_common(10)))
  return {"op_seconds": dict(by_category.most_common()),
          "op_types": dict(by_type.most_common(20))}


def _row(name, policy, spread, n_rois, roi_flops, forward_rate):
  rois_per_s = n_rois / spread.median
  achieved = roi_flops * rois_per_s / 1e9
  row = {"config": name, "policy": policy, "rois": n_rois,
         "ms_per_image": round(spread.median * 1e3, 1), "ms_min": round(spread.low * 1e3, 1),
         "ms_max": round(spread.high * 1e3, 1), "rois_per_s": round(rois_per_s, 1),
         "gflop_per_roi": round(roi_flops / 1e9, 3), "achieved_gflops": round(achieved, 1)}
  if forward_rate:
    row.update(roofline_gflops=round(forward_rate, 1), mfu=round(achieved / forward_rate, 3))
  return row


def forward_roofline(cfg, generator, discriminator, dtype, batch):
  """GFLOP/s of G then D forward at their models' sustained forward rates."""
  lr_shape = (cfg.crop.lr_size, cfg.crop.lr_size, 3)
  seconds = 0.0
  for model, shape in ((generator, lr_shape), (discriminator, None)):
    count = flops.model_flops(model, shape)
    if count:
      _, summary = layer_rates.model_roofline(model, shape, [dtype], batch, label=model.name)
      seconds += count / summary[f"{dtype}_fwd_gflops"]
  return flops.detect_flops(generator, discriminator, cfg.crop.lr_size) / seconds


def ap_per_policy(run_dir, root, policies):
  """{policy: AP dict} of the run's export under each policy, on its evaluation split."""
  from tinyfaces_tf.data import wider_face  # pylint: disable=g-import-not-at-top
  from tinyfaces_tf.detection import jobs  # pylint: disable=g-import-not-at-top
  task = task_lib.Task.from_run_dir(run_dir, root)
  adapter, split = task.adapter, task.adapter.eval_split
  proposer = task.build_proposer(f"results:{wider_face.WiderFace(root).proposals_dir(split)}")
  aps = {}
  with tempfile.TemporaryDirectory() as tmp:
    for policy in policies:
      keras.backend.clear_session()
      with precision.policy_scope(policy):
        generator, discriminator = task.restore_models(run_dir)
        path = task.export(generator, discriminator, os.path.join(tmp, policy, "export"))
      results = os.path.join(tmp, policy, "results")
      jobs.detect_split(export.SavedModelDetector(path), adapter.image_root(split),
                        adapter.image_names(split), proposer, results,
                        write=adapter.write_detections)
      aps[policy] = task.build_evaluator()({policy: results}, os.path.join(tmp, policy, "eval"))[
          policy]
      print(policy, aps[policy], flush=True)
  return aps


def main(argv):
  del argv
  report = {"machine": common.machine(), "image": list(_IMAGE_SHAPE), "cases": []}
  print(report["machine"], flush=True)
  if _RUN_DIR.value:
    if not _ROOT.value:
      raise app.UsageError("--run_dir needs --root (the dataset root the run was evaluated on)")
    aps = ap_per_policy(_RUN_DIR.value, _ROOT.value, _POLICIES.value)
    reference = aps.get("float32")
    print("| policy | Easy | Medium | Hard | vs float32 |\n|---|---|---|---|---|")
    for policy, ap in aps.items():
      delta = (", ".join(f"{ap[k] - reference[k]:+.4f}" for k in ap) if reference else "-")
      print(f"| {policy} | {ap['easy']:.4f} | {ap['medium']:.4f} | {ap['hard']:.4f} | {delta} |")
    report["ap"] = aps
    if _JSON.value:
      atomic.write_json(_JSON.value, report)
    return
  if _MODEL.value:
    detector = export.SavedModelDetector(_MODEL.value)
    cfg = detector.config
    with precision.policy_scope("float32"):
      generator, discriminator = task_lib.Task(cfg).build_models()
    n = min(_ROIS.value, cfg.detect.max_rois)
    spread = time_detector(detector, n, _REPEATS.value, _WARMUP.value)
    rate = (forward_roofline(cfg, generator, discriminator, "float32", _ROOFLINE_BATCH.value)
            if _ROOFLINE.value else None)
    report["cases"].append(_row(_MODEL.value, "as exported", spread, n,
                                flops.detect_flops(generator, discriminator, cfg.crop.lr_size),
                                rate))
  for name in [] if _MODEL.value else _CONFIGS.value:
    cfg = config_lib.replace(common.get_config(name), detect={"max_rois": _ROIS.value})
    for policy in _POLICIES.value:
      keras.backend.clear_session()
      with precision.policy_scope(policy):
        generator, discriminator = task_lib.Task(cfg).build_models()
        with tempfile.TemporaryDirectory() as tmp:
          path = task_lib.Task(cfg).export(generator, discriminator, os.path.join(tmp, "export"))
          detector = export.SavedModelDetector(path)
          spread = time_detector(detector, _ROIS.value, _REPEATS.value, _WARMUP.value)
          profile = (profile_detector(detector, _ROIS.value,
                                      os.path.join(_PROFILE_DIR.value, f"{name}_{policy}"))
                     if _PROFILE_DIR.value else None)
      rate = (forward_roofline(cfg, generator, discriminator, common.compute_dtype(policy),
                               _ROOFLINE_BATCH.value) if _ROOFLINE.value else None)
      roi_flops = flops.detect_flops(generator, discriminator, cfg.crop.lr_size)
      report["cases"].append(_row(name, policy, spread, _ROIS.value, roi_flops, rate))
      if profile:
        report["cases"][-1]["profile"] = profile
      print(report["cases"][-1], flush=True)
  print("| config | policy | RoIs | ms/image (min-max) | RoIs/s | GFLOP/RoI | GFLOP/s | roofline "
        "| MFU |")
  print("|---|---|---|---|---|---|---|---|---|")
  for c in report["cases"]:
    print(f"| {c['config']} | {c['policy']} | {c['rois']} | {c['ms_per_image']:,} "
          f"({c['ms_min']:,}-{c['ms_max']:,}) | {c['rois_per_s']:,} | {c['gflop_per_roi']} | "
          f"{c['achieved_gflops']} | {c.get('roofline_gflops', '-')} | {c.get('mfu', '-')} |")
  if _JSON.value:
    atomic.write_json(_JSON.value, report)


if __name__ == "__main__":
  app.run(main)
