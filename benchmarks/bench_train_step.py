"""RoIs/s of one GAN train_step (D update + G update) per precision policy and jit setting.

  python benchmarks/bench_train_step.py --generator=tinyfaces --backbone=resnet50 --batch=32

Prints one line per (policy, jit) pair. Not a test: figures go to BUILD_NOTES.md.
"""
import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from tinyfaces_tf import models
from tinyfaces_tf import precision


def measure(generator, backbone, batch, policy, jit, steps, warmup, tiny):
  with precision.policy_scope(policy):
    return _measure(generator, backbone, batch, jit, steps, warmup, tiny)


def _measure(generator, backbone, batch, jit, steps, warmup, tiny):
  keras.utils.set_random_seed(0)
  overrides = dict(width=16, upsample_width=32, residual_units=1) if tiny else {}
  g = models.build_generator(generator, **overrides)
  d = models.build_discriminator(backbone)
  gan = models.TinyFacesGAN(g, d)
  gan.compile(g_optimizer=keras.optimizers.Adam(1e-4), d_optimizer=keras.optimizers.Adam(1e-4),
              jit_compile=jit)
  rng = np.random.default_rng(0)
  data = {"lr": rng.uniform(-1, 1, (batch, 16, 16, 3)).astype(np.float32),
          "hr": rng.uniform(-1, 1, (batch, 64, 64, 3)).astype(np.float32),
          "label": (np.arange(batch) % 2).astype(np.int32),
          "box_target": rng.normal(size=(batch, 4)).astype(np.float32)}
  ds = tf.data.Dataset.from_tensors(data).repeat()
  gan.fit(ds, steps_per_epoch=warmup, epochs=1, verbose=0)
  start = time.perf_counter()
  gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
  return (time.perf_counter() - start) / steps


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--generator", default="tinyfaces")
  parser.add_argument("--backbone", default="resnet50")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--warmup", type=int, default=2)
  parser.add_argument("--tiny", action="store_true", help="the demo's small generator widths")
  parser.add_argument("--policies", default="float32,mixed_bfloat16")
  parser.add_argument("--jit", default="false,true")
  args = parser.parse_args()
  print(f"device: {tf.config.list_physical_devices()}  threads: intra="
        f"{tf.config.threading.get_intra_op_parallelism_threads()}")
  for policy in args.policies.split(","):
    for jit in args.jit.split(","):
      jit_flag = jit == "true"
      try:
        s = measure(args.generator, args.backbone, args.batch, policy, jit_flag, args.steps,
                    args.warmup, args.tiny)
        print(f"{args.generator}+{args.backbone} batch={args.batch} policy={policy:15s} "
              f"jit={jit_flag!s:5s} {s * 1000:8.1f} ms/step {args.batch / s:8.1f} RoIs/s", flush=True)
      except Exception as e:  # report and go on: e.g. XLA may lack a kernel on this device
        print(f"{args.generator}+{args.backbone} policy={policy} jit={jit_flag}: FAILED {e!r:.200}")


if __name__ == "__main__":
  main()
