"""Op-level time from a TF profiler trace: every op event of the trace's XPlane protobuf, named
``<op name>:<op type>``, summed per op and put in a category by its type and its Keras layer /
optimizer scope (profile_step.py prints the summary)."""
import collections
import glob
import os
import re

from tensorflow.tsl.profiler.protobuf import xplane_pb2

_OPTIMIZER_SCOPE = re.compile(r"(^|/)(adam|sgd|optimizer|loss_scale)", re.IGNORECASE)
_BN_SCOPE = re.compile(r"(_bn|batch_norm|batchnorm|bn\d*)(/|_\d|$)", re.IGNORECASE)
_CONTAINERS = {"PartitionedCall", "StatefulPartitionedCall", "__inference", "IteratorGetNext",
               "While", "If", "StatelessIf", "StatelessWhile"}


_KERNEL_PREFIX = re.compile(r"^_?(MklNative|Mkl)?_?")  # oneDNN / Grappler-fused kernel names


def base_type(op_type: str) -> str:
  """The op type without oneDNN's or Grappler's kernel prefixes: _MklNativeFusedConv2D ->
  FusedConv2D, _FusedMatMul -> FusedMatMul."""
  return _KERNEL_PREFIX.sub("", op_type)


def category(name: str, op_type: str) -> str:
  """The category of one op, by type first, then by the scope it runs in."""
  op_type = base_type(op_type)
  if op_type in ("Conv2DBackpropInput",) and "transpose" in name.lower():
    return "transposed conv forward"
  if "transpose" in name.lower() and op_type.startswith("Conv2D"):
    return "transposed conv backward"
  if op_type in ("Conv2D", "FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
    return "conv forward"
  if op_type == "Conv2DBackpropInput":
    return "conv backward (input)"
  if op_type in ("Conv2DBackpropFilter", "Conv2DBackpropFilterWithBias"):  # oneDNN: + bias grad
    return "conv backward (filter)"
  if op_type in ("MatMul", "FusedMatMul", "BatchMatMulV2", "Einsum"):
    return "dense (matmul)"
  if op_type == "Cast":
    return "casts"
  if op_type in ("ConcatV2", "Pack") or name.endswith("concat"):
    return "concat / split"
  if _OPTIMIZER_SCOPE.search(name) or op_type.startswith("ResourceApply"):
    return "optimizer updates"
  if op_type.startswith("FusedBatchNorm") or _BN_SCOPE.search(name):
    return "batch norm"
  if "VariableOp" in op_type:
    return "variable reads / writes"
  if op_type in ("MaxPool", "MaxPoolGrad", "AvgPool", "AvgPoolGrad", "Mean", "Sum"):
    return "pooling / reductions"
  return "other elementwise"


def _newest_space(logdir):
  paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))
  if not paths:
    raise FileNotFoundError(f"{logdir}: no *.xplane.pb trace")
  space = xplane_pb2.XSpace()
  with open(paths[-1], "rb") as f:
    space.ParseFromString(f.read())
  return space


def op_times(logdir: str) -> dict:
  """{(op name, op type): summed seconds} over every op event of the newest trace in logdir."""
  space = _newest_space(logdir)
  totals = collections.Counter()
  for plane in space.planes:
    if not plane.name.startswith("/host:") and not plane.name.startswith("/device:"):
      continue
    for line in plane.lines:
      for event in line.events:
        full = plane.event_metadata[event.metadata_id].name.split("#")[0]
        if ":" not in full or "::" in full:  # "name:Type", not C++ scopes
          continue
        name, op_type = full.rsplit(":", 1)
        if (not op_type or op_type.startswith("__") or not base_type(op_type)[:1].isalpha()
            or any(base_type(op_type).startswith(c) for c in _CONTAINERS)):
          continue
        totals[(name, op_type)] += event.duration_ps * 1e-12
  return totals


def _stat(plane, event, key):
  for stat in event.stats:
    if plane.stat_metadata[stat.metadata_id].name == key:
      if stat.HasField("ref_value"):
        return plane.stat_metadata[stat.ref_value].name
      return stat.str_value or None
  return None


def gpu_kernel_times(logdir: str) -> dict:
  """{(kernel name, the TF op or XLA HLO op that launched it): summed seconds} over the GPU
  planes' kernel events (CUPTI): on a GPU the host's op events time launches, not work. Empty
  when the trace holds no GPU kernels (no GPU, or CUPTI missing)."""
  space = _newest_space(logdir)
  totals = collections.Counter()
  for plane in space.planes:
    if not plane.name.startswith("/device:GPU:"):
      continue
    for line in plane.lines:
      if "Stream" not in line.name and "stream" not in line.name:
        continue  # the per-stream lines hold the kernels; others repeat them per op / step
      for event in line.events:
        kernel = plane.event_metadata[event.metadata_id].name
        origin = _stat(plane, event, "hlo_op") or _stat(plane, event, "tf_op") or ""
        totals[(kernel[:160], origin[:160])] += event.duration_ps * 1e-12
  return totals


# (pattern on "<kernel> <op>" lowercased, category), first match wins: cuDNN names its conv
# kernels fprop / dgrad / wgrad (XLA's custom calls cudnn-conv[-bw-input|-bw-filter]); "conv"
# must not match XLA's "convert" fusions (dtype casts); cuBLAS kernels are xmma too.
_KERNEL_CATEGORIES = (
    (r"wgrad|bw-filter|backpropfilter|backward_filter", "conv backward (filter)"),
    (r"dgrad|bw-input|backpropinput|backward_data", "conv backward (input)"),
    (r"batch_?norm|bn_fw|bn_bw", "batch norm"),
    (r"implicit_gemm|fprop|conv(?!ert)", "conv forward"),
    (r"gemm|matmul|cublas", "dense (matmul)"),
    (r"reduce|reduction", "reductions (batch norm statistics, losses)"),
    (r"memcpy|memset|copy", "copies"),
    (r"transpose", "layout transposes"),
)


def kernel_category(kernel: str, origin: str) -> str:
  """A GPU kernel's category by its name (cuDNN / cuBLAS / XLA emitter names) and its op."""
  text = f"{kernel} {origin}".lower()
  for pattern, name in _KERNEL_CATEGORIES:
    if re.search(pattern, text):
      return name
  return "other elementwise / fusions"


def summarise(totals):
  by_category = collections.Counter()
  by_type = collections.Counter()
  for (name, op_type), seconds in totals.items():
    by_category[category(name, op_type)] += seconds
    by_type[op_type] += seconds
  return by_category, by_type
