"""genvec benchmarks: one command, JSON plus a Markdown table, random weights of real architectures.

    python benchmarks/run.py --preset small                      # CPU, the workload of the earlier issues
    python benchmarks/run.py --preset qwen3-8b                    # GPU, bf16, the published recipe's workload
    python benchmarks/run.py --preset qwen3-8b --attn eager --only train_step_checkpointing     # a variant
    python benchmarks/run.py --preset qwen3-8b --estimate         # FLOP-based time estimate, runs nothing
    python benchmarks/run.py --summary                            # one table of every result file
    bash benchmarks/gpu.sh plan                                   # the GPU runs, one command each

Speed and memory do not depend on weight values, so random weights measure them honestly. The `qwen3-*` presets
are the real Qwen3 configs (see QWEN3_SOURCE in presets.py). Each measurement runs in a fresh subprocess, so its
peak memory is its own: resident set size above the process's import baseline (CPU: after importing torch,
transformers, genvec, the reference and the backbone architecture's modelling code, before any weights; it includes
loading the model), or `torch.cuda.max_memory_allocated` (GPU; weights included). CPU presets load their backbone
with `from_pretrained` from a directory written once in the preset's dtype, as hub releases are stored. A
measurement that runs out of GPU memory is recorded as `out_of_memory: true`, not a crash; one that fails otherwise
is recorded with its error and the others go on.

Results go to `benchmarks/results/<preset>-<device>[-<variant>][-<tag>].json` and `.md`, where the device is `cpu`
or the GPU's name (`nvidia-h100-80gb-hbm3`) and the variant names every switch that differs from the preset
(`eager`, `bf16-trainables`, `compile`, `fp32`, `1layers`) and every workload flag that differs from it
(`train_batch16`; not `--repeats` or `--decode-budget-s`), so variant runs never overwrite the default run. These
figures are printed, never asserted.

This file is the command line and the driver (a process per measurement). The measurements are in
`measurements/` (encode, train, data, decode), the presets and random models in `presets.py`, timing and result
files in `harness.py` (shared with serve.py and bulk.py), the estimate in `estimate.py`, the Markdown in `report.py`.
"""

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from estimate import print_estimate
from harness import RESULTS, argument_parser, command_line, current_rss_mb, machine_facts, peak_rss_mb, write_result
from measurements import MEASUREMENTS
from presets import PRESETS, Preset, Workload, save_backbone
from report import markdown, print_summary

# Workload fields that set how long a measurement tries, not what it measures: they do not make a variant.
EFFORT_FIELDS = ("repeats", "decode_budget_s")


def main() -> None:
    args = _parser().parse_args()
    if args.summary is not None:
        print_summary(Path(args.results_dir), args.summary)
    elif args.facts:
        print(json.dumps(machine_facts(resolve_preset(args).device), indent=2))
    elif args.child:
        run_child(args)
    else:
        raise SystemExit(run_parent(args))


def _parser() -> argparse.ArgumentParser:
    parser = argument_parser(__doc__)
    parser.add_argument("--preset", choices=list(PRESETS), default="small")
    parser.add_argument("--only", nargs="*", choices=list(MEASUREMENTS), help="run only these measurements")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="override the preset's device (CPU smoke tests)")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="override the preset's backbone dtype")
    parser.add_argument("--layers", type=int, help="override the preset's number of layers (smoke tests)")
    parser.add_argument("--attn", default="auto", choices=["auto", "sdpa", "eager", "flash_attention_2"],
                        help="attention kernel (model.attn_implementation); auto is transformers' choice (SDPA)")
    parser.add_argument("--trainable-dtype", default="fp32", choices=["fp32", "bf16"],
                        help="dtype of the special vectors and projections (tokens.trainable_dtype)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the decoder layers (train.compile) in encode and the train steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--results-dir", default=str(RESULTS), help="where the JSON and Markdown files go")
    parser.add_argument("--tag", default="", help="suffix of the result files, for a run split into parts")
    parser.add_argument("--child-timeout-s", type=int, default=0, help="stop a measurement after this long (0: never)")
    parser.add_argument("--estimate", action="store_true", help="print a FLOP-based GPU time estimate and exit")
    parser.add_argument("--facts", action="store_true", help="print the machine and package facts results record")
    parser.add_argument("--summary", nargs="?", const="", metavar="MATCH",
                        help="print one table of the result files whose names contain MATCH, and exit")
    workload = parser.add_argument_group("workload (default: the preset's)")
    for item in dataclasses.fields(Workload):
        flag = "--" + item.name.replace("_", "-")
        if item.type is bool:
            workload.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif item.type == tuple[int, ...]:
            workload.add_argument(flag, type=int, nargs="+", default=None)
        else:
            workload.add_argument(flag, type=item.type, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--saved-backbone", help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------------------------- parent


def run_parent(args) -> int:
    """Run each measurement in a subprocess, write JSON and Markdown; returns 1 if a measurement failed."""
    preset = resolve_preset(args)
    names = args.only or list(preset.measurements or MEASUREMENTS)
    if args.estimate:
        print_estimate(preset, args, names)
        return 0
    machine = machine_facts(preset.device)
    print(f"[{args.preset}] machine: {json.dumps(machine)}", file=sys.stderr, flush=True)
    if PRESETS[args.preset].device == "cpu":  # CPU presets; a GPU preset smoke-tested on a CPU builds in memory
        args.saved_backbone = save_backbone(preset)
    variant = variant_name(args)
    report = {
        "preset": args.preset,
        "variant": variant or "default",
        "switches": {"attn": args.attn, "trainable_dtype": args.trainable_dtype, "compile": args.compile,
                     "dtype": preset.dtype, "device": preset.device, "layers": preset.num_layers},
        "preset_config": {k: v for k, v in dataclasses.asdict(preset).items() if k not in ("workload", "measurements")},
        "workload": {item.name: getattr(args, item.name) for item in dataclasses.fields(Workload)},
        "machine": machine,
        "command": command_line(),
        "results": {},
    }
    directory = Path(args.results_dir)
    stem = "-".join(filter(None, [args.preset, machine["device_kind"], variant, args.tag]))
    json_path, markdown_path = directory / f"{stem}.json", directory / f"{stem}.md"
    if args.only and json_path.exists():  # a partial run updates its measurements, keeps the others
        report["results"] = json.loads(json_path.read_text()).get("results", {})
    failed = False
    for name in names:
        figures = _run_measurement(name, args)
        failed |= "error" in figures and not figures.get("out_of_memory")
        print(json.dumps({name: figures}), flush=True)
        report["results"][name] = figures
        # Written after every measurement, so a run stopped by a time limit keeps what it measured.
        write_result(directory, stem, report, markdown(report))
    print(f"wrote {json_path} and {markdown_path}", file=sys.stderr)
    return 1 if failed else 0


def _run_measurement(name: str, args) -> dict:
    """One measurement in a fresh subprocess; a crash or a timeout becomes an `error` entry."""
    command = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
    if args.saved_backbone:
        command += ["--saved-backbone", args.saved_backbone]
    print(f"[{args.preset}] {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        completed = subprocess.run(command, check=False, capture_output=True, text=True, env=env,
                                   timeout=args.child_timeout_s or None)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.child_timeout_s} s"}
    seconds = round(time.perf_counter() - started, 1)
    print(f"[{args.preset}] {name} done in {seconds} s", file=sys.stderr, flush=True)
    if completed.returncode != 0:
        print(completed.stderr[-4000:], file=sys.stderr)
        lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1][:500] if lines else f"exit status {completed.returncode}", "wall_s": seconds}
    return {**json.loads(completed.stdout.strip().splitlines()[-1]), "wall_s": seconds}


def resolve_preset(args) -> Preset:
    """The preset with --device, --dtype and --layers applied; fills every workload flag left unset."""
    preset = PRESETS[args.preset]
    changes = {"device": args.device, "dtype": args.dtype, "num_layers": args.layers}
    preset = dataclasses.replace(preset, **{k: v for k, v in changes.items() if v})
    for item in dataclasses.fields(Workload):
        if getattr(args, item.name) is None:
            setattr(args, item.name, getattr(preset.workload, item.name))
    return preset


def variant_name(args) -> str:
    """What differs from the preset's defaults, e.g. `eager-bf16-trainables` or `train_batch16` ('' for the default
    run), so that a run on other settings or another workload never lands in the default run's file."""
    preset = PRESETS[args.preset]
    parts = [
        args.attn if args.attn != "auto" else "",
        "bf16-trainables" if args.trainable_dtype != "fp32" else "",
        "compile" if args.compile else "",
        args.dtype if args.dtype and args.dtype != preset.dtype else "",
        f"{args.layers}layers" if args.layers and args.layers != preset.num_layers else "",
    ]
    for item in dataclasses.fields(Workload):
        value, default = getattr(args, item.name), getattr(preset.workload, item.name)
        if item.name in EFFORT_FIELDS or value is None or _flat(value) == _flat(default):
            continue
        if isinstance(value, bool):
            parts.append(item.name if value else f"no-{item.name}")
        else:
            parts.append(f"{item.name}{_flat(value)}")
    return "-".join(part for part in parts if part)


def _flat(value) -> str:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


# --------------------------------------------------------------------------------------------- child


def run_child(args) -> None:
    """One measurement in this process; prints its JSON on the last line of stdout."""
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    preset = resolve_preset(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    import_code(preset)
    baseline_rss = current_rss_mb()  # after imports, before any model: the "import baseline"
    if preset.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        result = MEASUREMENTS[args.child](preset, args)
    except torch.cuda.OutOfMemoryError as err:
        # The answer to "does it fit?", not a failure of the benchmark.
        result = {"out_of_memory": True, "error": str(err).splitlines()[0][:300]}
    result["peak_rss_above_baseline_mb"] = round(peak_rss_mb() - baseline_rss, 1)
    result["import_baseline_rss_mb"] = round(baseline_rss, 1)
    if preset.device == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    print(json.dumps(result))


def import_code(preset: Preset) -> None:
    """Import what every measurement runs (genvec, the reference, the architecture's modelling module) up front.

    Imports cost memory (the modelling module alone pulls in transformers' generation and attention code), and the
    official code's import baseline includes them, so the figures above the baseline are those of weights and work.
    """
    import importlib

    modelling = f"transformers.models.{preset.architecture}.modeling_{preset.architecture}"
    for name in ("genvec.model", "genvec.training", "reference", modelling):
        importlib.import_module(name)


if __name__ == "__main__":
    main()
