"""The public PyTorch implementation's train step on this machine, for comparison with ours at its
shapes (``benchmarks/train_step.py --configs=public``).

  git clone https://github.com/EthanGuan/Finding-Tiny-Faces-with-GAN /tmp/ftfgan
  pip install torch torchvision matplotlib # CPU or CUDA builds (its tools.py imports matplotlib);
                                           # not dependencies of this package
  python benchmarks/public_impl.py --checkout=/tmp/ftfgan --json=benchmarks/results/public_impl.json
  python benchmarks/train_step.py --configs=public --json=benchmarks/results/train_step_public.json
  python benchmarks/public_impl.py --checkout=/tmp/ftfgan --ours_json=benchmarks/results/train_step_public.json
  python benchmarks/public_impl.py --conv_shapes=16x128x128x256:256   # torch's own conv rate

That repository has no license, so nothing of it is copied here: its ``models.py`` (Generator,
Discriminator) and ``tools.py`` (G_loss, D_loss, weights_init_normal) are imported from the
checkout given, and one step is the sequence of calls its ``train.py`` makes per batch: the G
update on ``--faces`` LR faces (G forward and backward, D forward on SR), then the D update on SR
faces, SR backgrounds (one more G forward, no gradient), HR faces and HR backgrounds, each a
separate D call. LR 32 -> HR 128. Its D loads ImageNet VGG19 weights (``pretrained=True``); here it
is built with random weights (no downloads), which does not change the work. FLOPs are counted by
``torch.utils.flop_counter.FlopCounterMode`` over one step; "bf16" runs the step under
``torch.autocast(dtype=torch.bfloat16)``, that implementation's natural mixed precision.
"""
import functools
import importlib.util
import json
import os
import statistics
import sys
import time
import types

from absl import app
from absl import flags

import sampling  # benchmarks/, first on sys.path; imports no framework

_CHECKOUT = flags.DEFINE_string("checkout", None, "A clone of EthanGuan/Finding-Tiny-Faces-with-GAN.")
_PRECISIONS = flags.DEFINE_list("precisions", ["float32", "bf16"], "float32 and/or bf16.")
_FACES = flags.DEFINE_integer("faces", 8, "Faces (and as many backgrounds) per step: its "
                              "train.py default batch_size.")
_STEPS = flags.DEFINE_integer("steps", 5, "Timed steps (median, min, max reported).")
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed steps first.")
_OURS_JSON = flags.DEFINE_string("ours_json", None, "train_step.py's JSON with config 'public' "
                                 "cases: print the ratios ours / theirs.")
_JSON = flags.DEFINE_string("json", None, "Write the figures here (and read them back with "
                            "--ours_json).")
_CONV_SHAPES = flags.DEFINE_list(
    "conv_shapes", [], "Also time torch's own 3x3 stride-1 'same' convolutions at these shapes, "
    "BATCHxHxWxIN:OUT (e.g. 16x128x128x256:256, the dominant shapes benchmarks/train_step.py "
    "--configs=public prints), forward and backward per precision, as layer_rates.py times "
    "TensorFlow's: is the ceiling the CPU's or one library's?")

_LR, _HR = 32, 128


def _load(checkout, name):
  spec = importlib.util.spec_from_file_location(f"public_{name}", os.path.join(checkout, f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# VGG19 ("configuration E", Simonyan & Zisserman 2015): channels per 3x3 conv, "M" = 2x2 max pool.
_VGG19 = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M")


@functools.lru_cache(maxsize=None)  # the stand-in registers itself: a second import finds it
def _torchvision():
  """torchvision, or where it cannot load (a CUDA build of it beside a CPU build of torch: its ops
  library needs libtorch_cuda) a stand-in with what that models.py / tools.py use: VGG19 with
  random weights (``.features`` as torchvision lays it out) and an empty ``utils``."""
  import torch  # pylint: disable=g-import-not-at-top
  try:
    import torchvision  # pylint: disable=g-import-not-at-top
    return torchvision, lambda: torchvision.models.vgg19(weights=None)
  except (ImportError, RuntimeError, OSError) as e:
    print(f"torchvision unusable here ({e!r:.80}); VGG19 built from its configuration E",
          flush=True)

  def vgg19():
    layers, channels = [], 3
    for v in _VGG19:
      if v == "M":
        layers.append(torch.nn.MaxPool2d(2, 2))
      else:
        layers += [torch.nn.Conv2d(channels, v, 3, padding=1), torch.nn.ReLU(inplace=True)]
        channels = v
    model = torch.nn.Module()
    model.features = torch.nn.Sequential(*layers)
    return model

  stand_in = types.ModuleType("torchvision")
  stand_in.models = types.SimpleNamespace(vgg19=vgg19)
  stand_in.utils = types.ModuleType("torchvision.utils")
  sys.modules.update({"torchvision": stand_in, "torchvision.models": stand_in.models,
                      "torchvision.utils": stand_in.utils})
  return stand_in, vgg19


def build(checkout):
  """(generator, discriminator, tools module) from the checkout, D without downloaded weights."""
  _, vgg19 = _torchvision()
  models = _load(checkout, "models")
  tools = _load(checkout, "tools")
  models.vgg19 = lambda pretrained=False, **kw: vgg19()
  generator, discriminator = models.Generator(), models.Discriminator()
  discriminator.apply(tools.weights_init_normal)
  return generator, discriminator, tools


def make_step(generator, discriminator, tools, faces):
  """One step as that train.py runs it per batch, on fixed random tensors."""
  import torch  # pylint: disable=g-import-not-at-top
  g_opt = torch.optim.Adam(generator.parameters(), lr=1e-4, betas=(0.9, 0.999))
  d_opt = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.9, 0.999))
  trade_off = torch.tensor([1e-4, 1e-3])
  target = {"fool": torch.ones(faces, 2), "sr_face": torch.tensor([0.0, 1.0]).expand(faces, 2),
            "sr_background": torch.zeros(faces, 2), "hr_face": torch.ones(faces, 2),
            "hr_background": torch.tensor([1.0, 0.0]).expand(faces, 2)}
  gen = torch.Generator().manual_seed(0)
  lr_face, lr_background = (torch.rand(faces, 3, _LR, _LR, generator=gen) * 2 - 1 for _ in "ab")
  hr_face, hr_background = (torch.rand(faces, 3, _HR, _HR, generator=gen) * 2 - 1 for _ in "ab")

  def step():
    g_opt.zero_grad()
    g1, sr_face = generator(lr_face)
    loss_g = tools.G_loss(g1, sr_face, hr_face, discriminator(sr_face), target["fool"],
                          trade_off) / faces
    loss_g.backward()
    g_opt.step()
    d_opt.zero_grad()
    loss_d = (tools.D_loss(discriminator(sr_face.detach()), target["sr_face"])
              + tools.D_loss(discriminator(generator(lr_background)[1].detach()),
                             target["sr_background"])
              + tools.D_loss(discriminator(hr_face), target["hr_face"])
              + tools.D_loss(discriminator(hr_background), target["hr_background"])) / (4 * faces)
    loss_d.backward()
    d_opt.step()
    return float(loss_d) + float(loss_g)  # waits for the step

  return step


def measure(checkout, precision, faces, steps, warmup):
  import torch  # pylint: disable=g-import-not-at-top
  from torch.utils.flop_counter import FlopCounterMode  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  generator, discriminator, tools = build(checkout)
  step = make_step(generator, discriminator, tools, faces)
  autocast = (torch.autocast("cuda" if torch.cuda.is_available() else "cpu", dtype=torch.bfloat16)
              if precision == "bf16" else None)

  def run():
    if autocast is None:
      return step()
    with autocast:
      return step()

  counter = FlopCounterMode(display=False)
  with counter:
    run()
  for _ in range(max(0, warmup - 1)):
    run()
  seconds = []
  for _ in range(steps):
    start = time.perf_counter()
    run()
    seconds.append(time.perf_counter() - start)
  median = statistics.median(seconds)
  rois = 2 * faces  # faces + backgrounds, as our batch counts RoIs
  return {"precision": precision, "rois_per_step": rois, "ms_per_step": round(median * 1e3, 1),
          "ms_min": round(min(seconds) * 1e3, 1), "ms_max": round(max(seconds) * 1e3, 1),
          "rois_per_s": round(rois / median, 3),
          "gflop_per_roi": round(counter.get_total_flops() / rois / 1e9, 2),
          "achieved_gflops": round(counter.get_total_flops() / median / 1e9, 1)}


def _parse_conv_shape(text):
  try:
    dims, out = text.split(":")
    batch, height, width, channels = (int(v) for v in dims.split("x"))
    return batch, height, width, channels, int(out)
  except ValueError:
    raise app.UsageError(f"--conv_shapes: expected BATCHxHxWxIN:OUT, got {text!r}") from None


def _seconds_per_call(fn, repeats=3):
  """layer_rates' measure of one call's sustained time, for a torch call on the CPU (which
  returns when done)."""
  def sample(calls):
    start = time.perf_counter()
    for _ in range(calls):
      fn()
    return time.perf_counter() - start
  for _ in range(2):
    sample(1)
  return sampling.seconds_per_call(sample, repeats)


def conv_rates(shape, precision):
  """torch's forward and backward (input + weight gradients, 2x the forward's FLOPs) GFLOP/s of
  one convolution shape, channels-last, in float32 or bfloat16 tensors."""
  import torch  # pylint: disable=g-import-not-at-top
  batch, height, width, channels, out = shape
  dtype = torch.bfloat16 if precision == "bf16" else torch.float32
  gen = torch.Generator().manual_seed(0)
  x = torch.randn(batch, channels, height, width, generator=gen).to(
      dtype=dtype, memory_format=torch.channels_last)
  w = torch.randn(out, channels, 3, 3, generator=gen).to(
      dtype=dtype, memory_format=torch.channels_last)
  conv = functools.partial(torch.nn.functional.conv2d, stride=1, padding=1)
  with torch.no_grad():
    dy = torch.ones_like(conv(x, w))
    forward = lambda: conv(x, w)
    backward = lambda: torch.ops.aten.convolution_backward(
        dy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [True, True, False])
    flops = 2 * batch * height * width * channels * out * 9
    return {"shape": f"{batch}x{height}x{width}x{channels}:{out}", "precision": precision,
            "fwd_gflops": round(flops / _seconds_per_call(forward) / 1e9, 1),
            "bwd_gflops": round(2 * flops / _seconds_per_call(backward) / 1e9, 1)}


def compare(theirs, ours_path):
  """Rows of ours / theirs for matching precisions (float32 vs float32, bf16 vs mixed_bfloat16)."""
  with open(ours_path) as f:
    ours = [c for c in json.load(f)["cases"] if c["config"] == "public" and "rois_per_s" in c]
  policy = {"float32": "float32", "bf16": "mixed_bfloat16"}
  for t in theirs:
    for o in ours:
      if o["policy"] == policy[t["precision"]]:
        print(f"{t['precision']}: ours (jit={o['jit']}, shared G forward="
              f"{o['shared_generator_forward']}) {o['rois_per_s']} RoIs/s, "
              f"{o['achieved_gflops']} GFLOP/s; theirs {t['rois_per_s']} RoIs/s, "
              f"{t['achieved_gflops']} GFLOP/s; ratio RoIs/s "
              f"{o['rois_per_s'] / t['rois_per_s']:.2f}x, FLOP/s "
              f"{o['achieved_gflops'] / t['achieved_gflops']:.2f}x")


def main(argv):
  del argv
  shapes = [_parse_conv_shape(text) for text in _CONV_SHAPES.value]  # before any timing
  import torch  # pylint: disable=g-import-not-at-top
  theirs = []
  rates = []
  for shape in shapes:
    for precision in _PRECISIONS.value:
      rates.append(conv_rates(shape, precision))
      print(rates[-1], flush=True)
  if _CHECKOUT.value:
    for precision in _PRECISIONS.value:
      row = measure(_CHECKOUT.value, precision, _FACES.value, _STEPS.value, _WARMUP.value)
      print(row, flush=True)
      theirs.append(row)
    report = {"torch": torch.__version__, "threads": torch.get_num_threads(),
              "checkout": os.path.abspath(_CHECKOUT.value), "python": sys.version.split()[0],
              "cases": theirs, "conv_rates": rates}
    if _JSON.value:
      with open(_JSON.value, "w") as f:
        json.dump(report, f, indent=1)
  elif _JSON.value:
    with open(_JSON.value) as f:
      theirs = json.load(f)["cases"]
  elif not rates:
    raise app.UsageError("give --checkout (measure) or --json (a previous measurement)")
  if _OURS_JSON.value:
    compare(theirs, _OURS_JSON.value)


if __name__ == "__main__":
  app.run(main)
