"""The arithmetic and parsing inside benchmarks/: the step roofline, the profile's op categories
and its reading of a TF profiler XSpace (hand-built here), peak-memory and spread helpers."""
import os
import sys

import pytest
from tensorflow.tsl.profiler.protobuf import xplane_pb2

sys.path.insert(0, os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks"))
import common  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import layer_rates  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import op_profile  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position


def test_step_roofline_is_the_flop_weighted_harmonic_mean_of_the_parts():
  # 2 GFLOP at 100 + 2 at 50 + 3 at 200 + 5 at 100 GFLOP/s = 0.125 s for 12 GFLOP: 96 GFLOP/s.
  parts = {"g_fwd": 2, "g_bwd": 2, "d_fwd": 3, "d_bwd": 5}
  rates = {"G": {"float32_fwd_gflops": 100.0, "float32_bwd_gflops": 50.0},
           "D": {"float32_fwd_gflops": 200.0, "float32_bwd_gflops": 100.0}}
  assert layer_rates.step_roofline(parts, rates, "float32") == pytest.approx(96.0)
  # A weightless generator (SBU) has no G parts and no G roofline.
  assert layer_rates.step_roofline({"g_fwd": 0, "g_bwd": 0, "d_fwd": 3, "d_bwd": 5},
                                  {"D": rates["D"]}, "float32") == pytest.approx(8 / 0.065)


@pytest.mark.parametrize("name,op_type,expected", [
    ("discriminator_1/conv1/convolution", "Conv2D", "conv forward"),
    ("gradient_tape/discriminator_1/conv1/convolution/Conv2DBackpropInput",
     "Conv2DBackpropInput", "conv backward (input)"),
    ("gradient_tape/generator_1/g1_conv1/convolution/Conv2DBackpropFilter",
     "Conv2DBackpropFilter", "conv backward (filter)"),
    ("generator_1/g1_deconv1/conv_transpose", "Conv2DBackpropInput", "transposed conv forward"),
    ("gradient_tape/generator_1/g1_deconv1/conv_transpose/Conv2D", "Conv2D",
     "transposed conv backward"),
    ("generator_1/g1_conv1_bn/moments/mean", "Mean", "batch norm"),
    ("adam/Sqrt_12", "Sqrt", "optimizer updates"),
    ("concat", "ConcatV2", "concat / split"),
    ("discriminator_1/Cast_3", "Cast", "casts"),
    ("discriminator_1/fc_cls/MatMul", "MatMul", "dense (matmul)"),
    ("generator_1/add_3", "AddV2", "other elementwise"),
])
def test_profile_categories(name, op_type, expected):
  assert op_profile.category(name, op_type) == expected


def test_op_times_sums_op_events_and_skips_containers(tmp_path):
  space = xplane_pb2.XSpace()
  plane = space.planes.add(name="/host:CPU")
  names = {1: "gen/conv/convolution:Conv2D", 2: "disc/Cast:Cast",
           3: "__inference_train_function_99:__inference_train_function_99",
           4: "StatefulPartitionedCall:StatefulPartitionedCall", 5: "ThreadpoolListener::Record"}
  for metadata_id, name in names.items():
    plane.event_metadata[metadata_id].id = metadata_id
    plane.event_metadata[metadata_id].name = name
  line = plane.lines.add(id=1, name="tf_executor")
  for metadata_id, picoseconds in ((1, 3_000_000), (1, 1_000_000), (2, 500_000),
                                   (3, 9_000_000), (4, 9_000_000), (5, 7_000_000)):
    line.events.add(metadata_id=metadata_id, duration_ps=picoseconds)
  space.planes.add(name="Task Environment")  # not a device plane: ignored
  run = tmp_path / "plugins" / "profile" / "2026_11_24"
  run.mkdir(parents=True)
  (run / "host.xplane.pb").write_bytes(space.SerializeToString())
  totals = op_profile.op_times(str(tmp_path))
  assert totals == {("gen/conv/convolution", "Conv2D"): pytest.approx(4e-6),
                    ("disc/Cast", "Cast"): pytest.approx(5e-7)}


def test_op_times_names_the_directory_without_a_trace(tmp_path):
  with pytest.raises(FileNotFoundError, match=str(tmp_path)):
    op_profile.op_times(str(tmp_path))


def test_spread_and_peak_memory():
  spread = common.Spread.of([0.3, 0.1, 0.2, 0.5])
  assert (spread.median, spread.low, spread.high, spread.count) == (0.25, 0.1, 0.5, 4)
  common.reset_peak_memory()
  before = common.peak_memory_mib()
  block = bytearray(256 * 2**20)  # touch 256 MiB: the peak resident set grows by about that
  block[::4096] = b"\x01" * len(block[::4096])
  assert common.peak_memory_mib() >= before + 200
  del block


def test_public_implementation_config_has_its_shapes():
  cfg = common.get_config("public")
  assert (cfg.crop.lr_size, cfg.crop.hr_size, cfg.train.batch_size) == (32, 128, 16)
  assert (cfg.discriminator.backbone, cfg.discriminator.reg_branch) == ("vgg19", False)
  assert cfg.generator.residual_units == 8


@pytest.mark.parametrize("op_type,expected", [
    ("_MklNativeFusedConv2D", "conv forward"), ("_FusedConv2D", "conv forward"),
    ("_MklNativeConv2DBackpropFilter", "conv backward (filter)"),
    ("_MklFusedMatMul", "dense (matmul)")])
def test_profile_categories_see_through_fused_kernel_names(op_type, expected):
  assert op_profile.category("discriminator_1/layer/op", op_type) == expected
