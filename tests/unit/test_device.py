"""Device and dtype resolution: auto choices and early errors."""

import pytest
import torch

from genvec.device import DTYPE_SPELLINGS, dtype_name, resolve_device, resolve_dtype, torch_dtype_name
from genvec.errors import ConfigError


def test_auto_picks_the_best_device_and_fp32_on_cpu():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32


def test_named_dtypes_and_errors():
    cpu = torch.device("cpu")
    assert resolve_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="'fp8' is not a dtype"):
        resolve_dtype("fp8", cpu)
    with pytest.raises(ConfigError, match="is not a device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="has no CUDA GPU"):
            resolve_device("cuda:0")


def test_one_dtype_vocabulary_reads_torch_spellings_and_writes_them():
    spellings = ("bf16", "bfloat16", "torch.bfloat16", "half", "torch.float16", "float", "fp32")
    assert [dtype_name(spelling) for spelling in spellings] == ["bf16", "bf16", "bf16", "fp16", "fp16", "fp32", "fp32"]
    assert [dtype_name(s) for s in ("auto", "float64", "int8", "torch.complex64", "tensor", "")] == [None] * 6
    assert [torch_dtype_name(name) for name in ("bf16", "fp16", "fp32")] == ["bfloat16", "float16", "float32"]
    assert set(DTYPE_SPELLINGS.values()) == {"bf16", "fp16", "fp32"}
