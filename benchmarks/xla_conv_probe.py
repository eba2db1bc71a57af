"""Sustained 3x3-convolution FLOP/s at the journal generator's dominant shapes on a GPU, through
XLA via JAX: the GPU roofline where TensorFlow itself cannot be installed (see BUILD_NOTES.md,
"Performance", GPU). Needs only jax with a CUDA plugin; not a dependency of this package.

  python benchmarks/xla_conv_probe.py --json=benchmarks/results/gpu_h100_xla_conv_probe.json

Shapes: 3x3 256->256 at 64x64 (47% of the journal G's FLOPs) at batch 32 and 128, and 3x3
64->64 at 64x64 at batch 32; forward, and backward (input and kernel gradients, 2x the forward
FLOPs); float32 exact (precision HIGHEST), float32 at XLA's default precision (TF32 on tensor
cores), bfloat16 and float16; plus an 8192^3 bfloat16 matmul as the chip's reference. Medians of
20 calls after 3 warm-ups.
"""
import argparse
import json
import statistics
import time


def _median_seconds(jax, fn, *args, n=20):
  for _ in range(3):
    jax.block_until_ready(fn(*args))
  times = []
  for _ in range(n):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--json", help="write the figures here")
  args = parser.parse_args()
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  print(jax.devices(), jax.__version__, flush=True)
  rates = {}
  for batch, side, channels in ((32, 64, 256), (128, 64, 256), (32, 64, 64)):
    for dtype, precision in (("float32", "highest"), ("float32", "default"), ("bfloat16", None),
                             ("float16", None)):
      x = jnp.ones((batch, side, side, channels), dtype)
      w = jnp.ones((3, 3, channels, channels), dtype) * 0.01
      p = jax.lax.Precision.HIGHEST if precision == "highest" else None
      conv = jax.jit(lambda x, w, p=p: jax.lax.conv_general_dilated(
          x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=p))
      grad = jax.jit(jax.grad(lambda x, w, conv=conv: conv(x, w).astype(jnp.float32).sum(),
                              argnums=(0, 1)))
      flops = 2 * batch * side * side * channels * channels * 9
      forward, backward = _median_seconds(jax, conv, x, w), _median_seconds(jax, grad, x, w)
      key = (f"conv3x3 b{batch} {side}x{side}x{channels} {dtype}"
             f"{'/' + precision if precision else ''}")
      rates[key] = {"fwd_tflops": round(flops / forward / 1e12, 1),
                    "bwd_tflops": round(2 * flops / backward / 1e12, 1)}
      print(key, rates[key], flush=True)
  a = jnp.ones((8192, 8192), jnp.bfloat16)
  seconds = _median_seconds(jax, jax.jit(lambda a: a @ a), a, n=10)
  rates["matmul 8192 bf16"] = round(2 * 8192**3 / seconds / 1e12, 1)
  print("matmul 8192 bf16", rates["matmul 8192 bf16"], flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"jax": jax.__version__, "devices": [str(d) for d in jax.devices()],
                 "rates": rates}, f, indent=1)


if __name__ == "__main__":
  main()
