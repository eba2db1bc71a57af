"""One GAN train step (D update + G update) per config, precision policy and jit setting: RoIs/s,
achieved FLOP/s, MFU and peak memory, timed step by step inside one ``fit``.

  python benchmarks/train_step.py --configs=journal --policies=float32 --jit=false
  python benchmarks/train_step.py --configs=demo,journal,cvpr18,mtgan,public \\
      --json=benchmarks/results/train_step.json

Configs: the presets (demo, journal, cvpr18, mtgan) and ``public``, the public PyTorch
implementation's shapes (benchmarks/common.py). Each case builds the models as training does
(``Task.build_models`` under the policy, ``loop.make_optimizers``), feeds in-memory synthetic
batches, runs ``--warmup`` steps and then ``--steps`` timed ones in the same ``fit`` and reports
the median, min and max. FLOPs per RoI: ``flops.gan_step_flops``. MFU: achieved FLOP/s over the
step's roofline, each part of the step (G / D, forward / backward: ``flops.gan_step_parts``) at
its model's sustained rate in the policy's compute dtype, measured by roofline.py in this process
(``--roofline=false`` skips it and MFU), with XLA's kernels for the jit cases. Peak memory: the process's peak resident set per case on
a CPU (VmHWM, reset before each case), the GPU allocator's peak on a GPU.
"""
import gc
import itertools

from absl import app
from absl import flags
import keras

from tinyfaces_tf import atomic
from tinyfaces_tf import config as config_lib
from tinyfaces_tf import flops
from tinyfaces_tf import models
from tinyfaces_tf import precision
from tinyfaces_tf import task as task_lib
from tinyfaces_tf.training import loop

import common  # benchmarks/ is the script's directory, first on sys.path
import layer_rates

_CONFIGS = flags.DEFINE_list("configs", ["demo", "journal", "cvpr18", "mtgan", "public"],
                             f"Configs to time: {sorted(common.CONFIGS)}.")
_POLICIES = flags.DEFINE_list("policies", ["float32", "mixed_bfloat16"], "Keras dtype policies.")
_JIT = flags.DEFINE_list("jit", ["false", "true"], "jit_compile settings.")
_SHARED = flags.DEFINE_list("shared_generator_forward", ["false"],
                            "train.shared_generator_forward settings (one G forward per step).")
_BATCH = flags.DEFINE_integer("batch", None, "RoIs per step (default: the config's batch).")
_SPE = flags.DEFINE_list("steps_per_execution", ["1"],
                         "Keras steps_per_execution settings: steps per call of the compiled "
                         "train function (fewer host round trips per step).")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed executions (median, min, max reported per step).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Executions before timing (tracing, allocator warm-up).")
_ROOFLINE = flags.DEFINE_bool("roofline", True, "Measure the roofline here and report MFU.")
_REPEATS = flags.DEFINE_integer("roofline_repeats", 3, "Timed calls per roofline shape.")
_JSON = flags.DEFINE_string("json", None, "Also write the figures here.")


def _bool(text):
  if text not in ("true", "false"):
    raise app.UsageError(f"expected true or false, got {text!r}")
  return text == "true"


def _steps_per_execution(text):
  if not text.isdigit() or int(text) < 1:
    raise app.UsageError(f"--steps_per_execution: expected integers >= 1, got {text!r}")
  return int(text)


def time_case(cfg, policy, jit, steps, warmup, steps_per_execution=1):
  """(Spread of step seconds, peak MiB) of one case. ``steps`` and ``warmup`` count executions
  of the train function (``steps_per_execution`` steps each); the spread is per step."""
  keras.backend.clear_session()
  gc.collect()
  common.reset_peak_memory()
  tc = cfg.train
  with precision.policy_scope(policy):
    keras.utils.set_random_seed(tc.seed)
    task = task_lib.Task(cfg)
    generator, discriminator = task.build_models()
    g_opt, d_opt, _ = loop.make_optimizers(cfg.optimizer, 1)
    gan = models.TinyFacesGAN(generator, discriminator, cfg.loss,
                              shared_generator_forward=tc.shared_generator_forward)
    gan.compile(g_optimizer=g_opt, d_optimizer=d_opt, jit_compile=jit,
                steps_per_execution=steps_per_execution)
    dataset = task.build_synthetic_dataset()(tc.seed).prefetch(2)
    timer = common.StepTimer()  # Keras calls batch callbacks once per execution
    gan.fit(dataset, steps_per_epoch=(warmup + steps) * steps_per_execution, epochs=1,
            verbose=0, shuffle=False, callbacks=[timer])
  per_step = [s / steps_per_execution for s in timer.seconds[warmup:]]
  return common.Spread.of(per_step), common.peak_memory_mib()


def main(argv):
  del argv
  spes = [_steps_per_execution(text) for text in _SPE.value]  # before any timing
  report = {"machine": common.machine(), "steps": _STEPS.value, "warmup": _WARMUP.value,
            "roofline": {}, "cases": []}
  print(report["machine"], flush=True)
  for name in _CONFIGS.value:
    cfg = common.get_config(name)
    if _BATCH.value:
      cfg = config_lib.replace(cfg, train={"batch_size": _BATCH.value})
    batch = cfg.train.batch_size
    with precision.policy_scope("float32"):  # layer_rates.time_shape casts to each dtype itself
      generator, discriminator = task_lib.Task(cfg).build_models()
    lr_shape = (cfg.crop.lr_size, cfg.crop.lr_size, 3)
    g_flops, d_flops = flops.model_flops(generator, lr_shape), flops.model_flops(discriminator)
    rates_by_jit = {}  # the roofline each jit setting's step is held to: XLA's or TF's kernels
    if _ROOFLINE.value:
      dtypes = sorted({common.compute_dtype(p) for p in _POLICIES.value})
      for jit in map(_bool, _JIT.value):
        rates = rates_by_jit[jit] = {}
        for label, model, shape in (("G", generator, lr_shape), ("D", discriminator, None)):
          if model.count_params():
            _, rates[label] = layer_rates.model_roofline(
                model, shape, dtypes, batch, repeats=_REPEATS.value, jit=jit,
                label=f"{name} {label}{' jit' if jit else ''}")
      report["roofline"][name] = {("jit" if jit else "no_jit"): rates
                                  for jit, rates in rates_by_jit.items()}
    for policy in _POLICIES.value:
      for jit in map(_bool, _JIT.value):
        for shared, spe in itertools.product(map(_bool, _SHARED.value), spes):
          case_cfg = config_lib.replace(cfg, train={"shared_generator_forward": shared})
          row = {"config": name, "batch": batch, "policy": policy, "jit": jit,
                 "shared_generator_forward": shared, "steps_per_execution": spe}
          try:
            spread, peak_mib = time_case(case_cfg, policy, jit, _STEPS.value, _WARMUP.value, spe)
          except Exception as e:  # report and go on: e.g. XLA lacking a kernel on this device
            row["error"] = f"{e!r:.300}"
            print(row, flush=True)
            report["cases"].append(row)
            continue
          parts = flops.gan_step_parts(g_flops, d_flops, shared)
          step_flops = sum(parts.values())
          rois_per_s = batch / spread.median
          achieved = step_flops * rois_per_s / 1e9
          row.update(
              ms_per_step=round(spread.median * 1e3, 1), ms_min=round(spread.low * 1e3, 1),
              ms_max=round(spread.high * 1e3, 1), rois_per_s=round(rois_per_s, 2),
              gflop_per_roi=round(step_flops / 1e9, 2), achieved_gflops=round(achieved, 1),
              peak_mib=round(peak_mib))
          if rates_by_jit:
            ceiling = layer_rates.step_roofline(parts, rates_by_jit[jit],
                                                common.compute_dtype(policy))
            row.update(roofline_gflops=round(ceiling, 1), mfu=round(achieved / ceiling, 3))
          print(row, flush=True)
          report["cases"].append(row)
  _print_table(report["cases"])
  if _JSON.value:
    atomic.write_json(_JSON.value, report)


def _print_table(cases):
  print("| config | batch | policy | jit | shared G fwd | steps/exec | ms/step (min-max) | RoIs/s "
        "| GFLOP/RoI | GFLOP/s | roofline | MFU | peak MiB |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  for c in cases:
    if "error" in c:
      print(f"| {c['config']} | {c['batch']} | {c['policy']} | {c['jit']} | "
            f"{c['shared_generator_forward']} | {c.get('steps_per_execution', 1)} | "
            f"failed: {c['error'][:60]} |")
      continue
    print(f"| {c['config']} | {c['batch']} | {c['policy']} | {c['jit']} | "
          f"{c['shared_generator_forward']} | {c.get('steps_per_execution', 1)} | "
          f"{c['ms_per_step']:,} ({c['ms_min']:,}-"
          f"{c['ms_max']:,}) | {c['rois_per_s']} | {c['gflop_per_roi']} | "
          f"{c['achieved_gflops']} | {c.get('roofline_gflops', '-')} | {c.get('mfu', '-')} | "
          f"{c['peak_mib']:,} |")


if __name__ == "__main__":
  app.run(main)
