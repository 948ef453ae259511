"""How every benchmark times and records: wall and CPU seconds, memory, machine facts, and the result files.

`run.py`, `serve.py` and `bulk.py` time wall-clock seconds through `timed_call` (the device synchronised before and
after, so GPU work is counted where it runs), run.py repeats and interleaves through `timed` and `interleaved`,
`serve.py` and `serve_overhead.py` count CPU seconds through `cpu_seconds`, and every result file is written by
`write_result` (`<stem>.json` plus `<stem>.md`). Figures are printed, never asserted. Nothing here builds a model
(see `presets.py`).
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

RESULTS = Path(__file__).parent / "results"

T = TypeVar("T")


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The parser every benchmark script starts from: its docstring's first line as the description."""
    return argparse.ArgumentParser(description=doc.splitlines()[0])


# --------------------------------------------------------------------------------------------- wall-clock time


def synchronize(device) -> None:
    """Wait for the device's queued work (CUDA); nothing for a CPU or `None`."""
    if device is not None and device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def timed_call(function: Callable[[], T], device=None) -> tuple[T, float]:
    """`function()`'s result and its wall-clock seconds, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return result, time.perf_counter() - start


def timed(function: Callable[[], object], device, repeats: int, warm_up: bool = True) -> list[float]:
    """Wall-clock seconds of `repeats` calls, after one warm-up call unless `warm_up` is False."""
    if warm_up:
        function()
    return [timed_call(function, device)[1] for _ in range(repeats)]


def median_seconds(function: Callable[[], object], device, repeats: int, warm_up: bool = True) -> float:
    """The median of `timed`."""
    return statistics.median(timed(function, device, repeats, warm_up))


def interleaved(functions: dict[str, Callable[[], object]], device, repeats: int) -> dict[str, float]:
    """Median seconds of each function over `repeats` rounds that run each once, so load drifts hit all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            seconds[name] += timed(function, device, 1, warm_up=False)
    return {name: statistics.median(values) for name, values in seconds.items()}


def warm_up(*functions: Callable[[], object], device=None) -> float:
    """Call each function once (kernels, allocator, compilation); their wall seconds until the device is done,
    including the work it had queued before."""
    start = time.perf_counter()
    for function in functions:
        function()
    synchronize(device)
    return time.perf_counter() - start


# --------------------------------------------------------------------------------------------- CPU time, memory


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds so far of process `pid` (Linux /proc), or of this process when None."""
    if pid is None:
        return time.process_time()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_memory_mb() -> float:
    import torch

    return round(torch.cuda.memory_allocated() / 2**20, 1)


# --------------------------------------------------------------------------------------------- machine facts


def machine_facts(device: str) -> dict:
    """Python, package and hardware facts a result file records; `device` "cuda" adds the GPU's (and needs one)."""
    import torch
    import transformers

    import genvec

    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "genvec": genvec.__version__,
        "other_packages": _package_versions(("accelerate", "peft", "psutil")),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device_kind": "cpu",
    }
    if device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("this preset runs on a CUDA GPU and none is visible; use --device cpu for a smoke test")
        properties = torch.cuda.get_device_properties(0)
        machine.update(
            gpu=properties.name,
            gpu_memory_gb=round(properties.total_memory / 1e9, 1),
            gpu_capability=f"{properties.major}.{properties.minor}",
            gpu_sm_count=properties.multi_processor_count,
            gpu_bf16=torch.cuda.is_bf16_supported(),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu_driver=_gpu_driver(),
            device_kind=properties.name.replace(" ", "-").lower(),
        )
    return machine


def _package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Each package's version, or why it cannot be imported (the reference step needs peft, memory figures psutil)."""
    import importlib

    versions = {}
    for name in names:
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError as err:
            versions[name] = f"MISSING ({err})"
    return versions


def _gpu_driver() -> str | None:
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                check=False, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return output.strip().splitlines()[0] if output.strip() else None


# --------------------------------------------------------------------------------------------- result files


def command_line() -> str:
    """This run's command as a result file records it: `python benchmarks/<script> <arguments>`."""
    return f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:])


def markdown_table(header: list[str], rows: list[list[object]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def write_result(directory: Path, stem: str, result: dict, markdown: str) -> tuple[Path, Path]:
    """Write `<stem>.json` (indented) and `<stem>.md` into `directory`, each atomically (never a torn file for a
    reader or a partial rerun); returns their paths. Not Path.with_suffix: "qwen3-0.6b-..." would lose everything
    after its dot."""
    from genvec.files import write_text_atomic

    directory.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = directory / f"{stem}.json", directory / f"{stem}.md"
    write_text_atomic(json_path, json.dumps(result, indent=2) + "\n")
    write_text_atomic(markdown_path, markdown)
    return json_path, markdown_path
