"""The arithmetic and parsing inside benchmarks/: the step roofline, the profile's op categories
and its reading of a TF profiler XSpace (hand-built here), peak-memory and spread helpers."""
import os
import subprocess
import sys

import keras
import numpy as np
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


# Kernel names and their HLO ops as an H100 trace of the jit journal step shows them.
@pytest.mark.parametrize("kernel,origin,expected", [
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64",
     "cudnn-conv-bias-activation.635", "conv forward"),
    ("sm90_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64",
     "cudnn-conv-bw-input.125", "conv backward (input)"),
    ("sm90_xmma_wgrad_indexed_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc",
     "cudnn-conv-bw-filter.158", "conv backward (filter)"),
    ("input_convert_reduce_fusion_59", "input_convert_reduce_fusion.59",
     "reductions (batch norm statistics, losses)"),
    ("MemcpyH2D", "IteratorGetNext/_4:_Recv", "copies"),
    ("loop_select_fusion", "loop_select_fusion", "other elementwise / fusions"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize64x128x64", "custom-call.3",
     "dense (matmul)"),
])
def test_gpu_kernel_categories(kernel, origin, expected):
  assert op_profile.kernel_category(kernel, origin) == expected


def test_gpu_kernel_times_reads_the_stream_lines_of_gpu_planes(tmp_path):
  space = xplane_pb2.XSpace()
  host = space.planes.add(name="/host:CPU")
  host.event_metadata[1].name = "gen/conv/convolution:Conv2D"
  host.lines.add(name="tf_executor").events.add(metadata_id=1, duration_ps=9_000_000)
  gpu = space.planes.add(name="/device:GPU:0")
  gpu.event_metadata[1].name = "sm90_xmma_fprop_kernel"
  gpu.event_metadata[2].name = "loop_add_fusion"
  gpu.stat_metadata[10].name = "hlo_op"
  gpu.stat_metadata[11].name = "cudnn-conv-bias-activation.7"
  stream = gpu.lines.add(name="Stream #13(Compute)")
  for metadata_id, picoseconds in ((1, 2_000_000), (1, 3_000_000), (2, 1_000_000)):
    event = stream.events.add(metadata_id=metadata_id, duration_ps=picoseconds)
    if metadata_id == 1:
      event.stats.add(metadata_id=10, ref_value=11)
  # The per-op line repeats the stream's kernels: not counted twice.
  gpu.lines.add(name="XLA Ops").events.add(metadata_id=1, duration_ps=5_000_000)
  run = tmp_path / "plugins" / "profile" / "2026_11_24"
  run.mkdir(parents=True)
  (run / "gpu.xplane.pb").write_bytes(space.SerializeToString())
  totals = op_profile.gpu_kernel_times(str(tmp_path))
  assert totals == {("sm90_xmma_fprop_kernel", "cudnn-conv-bias-activation.7"):
                    pytest.approx(5e-6), ("loop_add_fusion", ""): pytest.approx(1e-6)}


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


def test_step_timer_records_one_interval_per_execution():
  """train_step.py divides each interval by steps_per_execution: Keras must call the batch
  callbacks once per execution, not once per step."""
  model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
  model.compile(optimizer="sgd", loss="mse", steps_per_execution=3)
  timer = common.StepTimer()
  x, y = np.zeros((24, 4), np.float32), np.zeros((24, 1), np.float32)
  model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[timer])
  assert len(timer.seconds) == 12 // 3
  assert int(model.optimizer.iterations.numpy()) == 12


def test_public_implementation_config_has_its_shapes():
  cfg = common.get_config("public")
  assert (cfg.crop.lr_size, cfg.crop.hr_size, cfg.train.batch_size) == (32, 128, 16)
  assert (cfg.discriminator.backbone, cfg.discriminator.reg_branch) == ("vgg19", False)
  assert cfg.generator.residual_units == 8


@pytest.mark.parametrize("shapes", ["16x128x128:64", "16x128x128x64", "16x128x128x64:x"])
def test_public_impl_rejects_a_conv_shape_it_cannot_read_before_importing_torch(shapes):
  # A subprocess: the script's absl flags (--steps, ...) would clash with the CLI's in this one.
  script = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "public_impl.py")
  result = subprocess.run([sys.executable, script, f"--conv_shapes={shapes}"],
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1
  assert f"--conv_shapes: expected BATCHxHxWxIN:OUT, got {shapes!r}" in result.stderr
  assert "No module named 'torch'" not in result.stderr


@pytest.mark.parametrize("op_type,expected", [
    ("_MklNativeFusedConv2D", "conv forward"), ("_FusedConv2D", "conv forward"),
    ("_MklNativeConv2DBackpropFilter", "conv backward (filter)"),
    ("_MklNativeConv2DBackpropFilterWithBias", "conv backward (filter)"),
    ("_MklFusedMatMul", "dense (matmul)")])
def test_profile_categories_see_through_fused_kernel_names(op_type, expected):
  assert op_profile.category("discriminator_1/layer/op", op_type) == expected
