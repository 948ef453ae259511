"""Device and dtype resolution: the only place where strings become torch objects.

`resolve_device("auto")` picks CUDA, then Apple MPS, then the CPU; `resolve_dtype("auto", device)` picks bf16 on
GPUs that support it and fp32 elsewhere (bf16 matrix products on a CPU are slower than fp32 ones). Both log the
choice and its reason, and raise early when the hardware cannot do what was asked.

The dtype names ("bf16", "fp16", "fp32") are defined here and nowhere else: `dtype_name` reads torch's spellings
of them (an official release's `torch_dtype`), `torch_dtype_name` writes them for transformers, vLLM and numpy.
"""

import logging
import os

import torch

from genvec.errors import ConfigError

logger = logging.getLogger(__name__)

# genvec's dtype vocabulary, the only one: every other module names dtypes through these.
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
# Every spelling of those dtypes that genvec reads: its own and torch's ("bfloat16", "half", "float"), as the configs
# of other tools write them (an official release's `torch_dtype`).
DTYPE_SPELLINGS = {
    **{spelling: DTYPE_NAMES[value] for spelling, value in vars(torch).items()
       if isinstance(value, torch.dtype) and value in DTYPE_NAMES},
    **{name: name for name in DTYPES},
}


def resolve_device(name: str | torch.device) -> torch.device:
    """Turn `"auto" | "cpu" | "cuda" | "cuda:1" | "mps"` into a `torch.device` that exists on this machine.

    Raises:
        ConfigError: the name is not a device, or the machine has no such device.
    """
    if isinstance(name, torch.device):
        return name
    if name == "auto":
        if torch.cuda.is_available():
            device, reason = torch.device("cuda"), "CUDA is available"
        elif torch.backends.mps.is_available():
            device, reason = torch.device("mps"), "Apple MPS is available"
        else:
            device, reason = torch.device("cpu"), "no GPU found"
        logger.debug("device: %s (auto: %s)", device, reason)
        return device
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device: {name!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.") from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {name!r} asked for, but this machine has no CUDA GPU; use 'cpu' or 'auto'.")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device: {name!r} asked for, but only {torch.cuda.device_count()} CUDA device(s) exist."
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device: {name!r} asked for, but Apple MPS is not available; use 'cpu' or 'auto'.")
    return device


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """Turn `"auto" | "bf16" | "fp16" | "fp32"` into a floating dtype suited to `device`.

    Raises:
        ConfigError: the name is unknown, or bf16 was asked for on a GPU without bf16 support.
    """
    if isinstance(name, torch.dtype):
        return name
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            dtype, reason = torch.bfloat16, "the GPU supports bf16"
        else:
            dtype, reason = torch.float32, f"{device.type} runs fp32 best"
        logger.debug("dtype: %s (auto: %s)", DTYPE_NAMES[dtype], reason)
        return dtype
    if name not in DTYPES:
        raise ConfigError(f"dtype: {name!r} is not a dtype; use one of 'auto', {', '.join(map(repr, DTYPES))}.")
    dtype = DTYPES[name]
    if dtype == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ConfigError("dtype: 'bf16' asked for, but this GPU has no bf16 support; use 'fp16' or 'fp32'.")
    return dtype


def dtype_name(spelling: str) -> str | None:
    """genvec's name ("bf16", "fp16", "fp32") of a dtype spelled genvec's way or torch's ("bfloat16",
    "torch.float16", "half"); None for anything else (including "auto")."""
    return DTYPE_SPELLINGS.get(spelling.removeprefix("torch."))


def torch_dtype_name(name: str) -> str:
    """torch's spelling ("bfloat16", "float16", "float32") of a genvec dtype name, as transformers, vLLM and numpy
    write it."""
    return str(DTYPES[name]).removeprefix("torch.")


def check_launch(state, consequence: str) -> None:
    """Refuse a launch where torchrun or `accelerate launch` started several processes but Accelerate set up one
    (`state`: an Accelerator or PartialState): each process would then `consequence`.

    Accelerate does this for CPU processes under torchrun unless told they are CPU processes.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and state.num_processes == 1:
        raise ConfigError(
            f"this process is one of {world_size} (WORLD_SIZE={world_size}), but Accelerate set up a single process "
            f"(distributed type {state.distributed_type.value}), so each process would {consequence}. For CPU "
            "processes set ACCELERATE_USE_CPU=1 (or use `accelerate launch --cpu`); for GPUs check that every process "
            "sees CUDA."
        )
