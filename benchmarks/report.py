"""run.py's result document as Markdown, and `--summary`: one table of the headline figures of many result files."""

import json
from pathlib import Path

from harness import markdown_table


def markdown(report: dict) -> str:
    """The `.md` beside a run.py result file: the machine, one row per measurement, the command."""
    lines = [f"# genvec benchmark: preset `{report['preset']}`, variant `{report['variant']}`", ""]
    machine = report["machine"]
    where = (f"{machine['gpu']} ({machine['gpu_memory_gb']} GB, driver {machine['gpu_driver']}, CUDA {machine['cuda']})"
             if "gpu" in machine else machine["cpu"])
    lines.append(
        f"Machine: {where}, {machine['cpu_count']} CPUs, torch {machine['torch']}, transformers "
        f"{machine['transformers']}, genvec {machine['genvec']}."
    )
    lines.append("")
    rows = [[name, ", ".join(f"{key} {value}" for key, value in figures.items())]
            for name, figures in report["results"].items()]
    lines += markdown_table(["measurement", "figures"], rows)
    lines.append("")
    lines.append(f"Command: `{report['command']}`")
    return "\n".join(lines) + "\n"


def print_summary(directory: Path, match: str) -> None:
    """One Markdown table of the headline figures of every result file in `directory` whose name holds `match`."""
    header = ["file", "encode texts/s (x bare)", "train step s, peak GB: plain / checkpointing",
              "reference step s, peak GB: plain / checkpointing", "decode tok/s b1, b16 (longest)",
              "generate tok/s b32"]
    rows = []
    for path in sorted(directory.glob("*.json")):
        if match not in path.name:
            continue
        results = json.loads(path.read_text()).get("results", {})
        encode = results.get("encode", {})
        rows.append([
            path.name.removesuffix(".json"),
            f"{encode['texts_per_s']} ({encode['ratio_to_bare_forward']})" if "texts_per_s" in encode else "-",
            " / ".join(_step(results.get(n)) for n in ("train_step", "train_step_checkpointing")),
            " / ".join(_step(results.get(n)) for n in ("reference_train_step", "reference_train_step_checkpointing")),
            ", ".join(_longest_decode(results.get(n, {})) for n in ("decode_batch1", "decode_batch16")),
            str(results.get("generate_b32", {}).get("tokens_per_s", "-")),
        ])
    print("\n".join(markdown_table(header, rows)))


def _step(figures: dict | None) -> str:
    if not figures:
        return "-"
    peak = figures.get("peak_gpu_mb", figures.get("peak_rss_above_baseline_mb", 0)) / 1024
    if figures.get("out_of_memory"):
        return f"OOM ({peak:.1f})"
    if "error" in figures:
        return "error"
    return f"{figures['step_s']:.3g} ({peak:.1f})"


def _longest_decode(figures: dict) -> str:
    """genvec's decode tokens/s at the longest length measured."""
    lengths = [int(key[1:].split("_")[0]) for key in figures if key.endswith("_ours_tokens_per_s")]
    return str(figures[f"n{max(lengths)}_ours_tokens_per_s"]) if lengths else "-"
