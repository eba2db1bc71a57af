"""precision="auto": the per-device choice, and that train() runs the policy it reports."""
import pytest

from tinyfaces_tf import precision


@pytest.mark.parametrize("gpus, flags, expected", [
    ([(9, 0)], set(), "mixed_bfloat16"),                 # H100
    ([(8, 0), (8, 6)], set(), "mixed_bfloat16"),         # A100 + A40
    ([(7, 0)], {"amx_bf16"}, "mixed_float16"),           # V100: the GPU decides, not the host CPU
    ([(8, 0), (7, 5)], set(), "mixed_float16"),          # mixed machine: the slowest GPU decides
    ([(6, 1)], set(), "float32"),                        # Pascal: no tensor cores
    ([], {"avx512f", "avx512_bf16"}, "mixed_bfloat16"),  # Cooper Lake / Sapphire Rapids CPU
    ([], {"avx512f", "amx_bf16", "amx_tile"}, "mixed_bfloat16"),
    ([], {"avx2", "avx512f"}, "float32"),                # bf16 would be emulated
    ([], set(), "float32"),
])
def test_choose_policy(gpus, flags, expected):
  assert precision.choose_policy(gpus, flags) == expected


def test_explicit_policies_pass_through_and_typos_fail():
  for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
    assert precision.resolve_precision(policy) == policy
  with pytest.raises(ValueError, match="mixed_bf16"):
    precision.resolve_precision("mixed_bf16")


def test_cpu_flags_reads_the_flags_line(tmp_path):
  cpuinfo = tmp_path / "cpuinfo"
  cpuinfo.write_text("processor\t: 0\nmodel name\t: X\nflags\t\t: fpu avx512f amx_bf16\n\n")
  assert precision.cpu_flags(str(cpuinfo)) == {"fpu", "avx512f", "amx_bf16"}
  assert precision.cpu_flags(str(tmp_path / "missing")) == set()
