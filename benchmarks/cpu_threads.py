"""CPU thread setups on a quiet machine and beside busy processes: what `genvec`'s choice costs and saves.

    python benchmarks/cpu_threads.py                        # every setup, with 0, 1 and 2 busy processes
    python benchmarks/cpu_threads.py --busy 0 --rounds 5    # the quiet machine only

Each measurement is a fresh Python process (OpenMP reads its settings once, when torch loads) that runs one
workload and reports its seconds after a warm-up; setups are alternated within each round, so a shared machine's
changing speed hits all of them alike. Setups:
- `torch`: torch's own defaults (the environment cleared of OMP_*, GOMP_*, MKL_* variables; torch imported first);
- `genvec`: the same clean environment, `import genvec` first (its thread setup, `genvec.threads`);
- `passive`: OMP_WAIT_POLICY=PASSIVE; `one-thread`: OMP_NUM_THREADS=1; `spin-N`: GOMP_SPINCOUNT=N.
Workloads (the shapes of SmolLM2-135M, the README's backbone: hidden 576, MLP 1536):
- `mlp`: a 576 -> 1536 -> 576 MLP, forward and backward on 64 rows, 150 times (small matmuls: thread hand-offs
  dominate);
- `layer`: a transformer layer (576 wide, 9 heads, MLP 1536), forward and backward on 8 x 128 tokens, 15 times.
Busy processes are pure-Python loops (one CPU each), started before and stopped after each measurement.
Results: `benchmarks/results/cpu/threads.json` and `.md` (or `--results-dir`). Figures are printed, never asserted.
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import RESULTS, argument_parser, command_line, machine_facts, markdown_table, write_result

SETUPS = {
    "torch": {}, "genvec": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "one-thread": {"OMP_NUM_THREADS": "1"},
    "spin-1k": {"GOMP_SPINCOUNT": "1000"}, "spin-3k": {"GOMP_SPINCOUNT": "3000"},
    "spin-10k": {"GOMP_SPINCOUNT": "10000"},
    "spin-30k": {"GOMP_SPINCOUNT": "30000"}, "spin-100k": {"GOMP_SPINCOUNT": "100000"},
}
WORKLOAD = r"""
import sys, time
if sys.argv[1] == "genvec":
    import genvec  # noqa: F401  (its thread setup runs before torch loads)
import torch
torch.manual_seed(0)
kind = sys.argv[2]
if kind == "mlp":
    net = torch.nn.Sequential(torch.nn.Linear(576, 1536), torch.nn.GELU(), torch.nn.Linear(1536, 576))
    x, steps = torch.randn(64, 576), 150
else:
    net = torch.nn.TransformerEncoderLayer(576, 9, 1536, batch_first=True)
    x, steps = torch.randn(8, 128, 576), 15
def run(n):
    for _ in range(n):
        net(x).square().mean().backward()
run(max(2, steps // 10))
start = time.perf_counter()
run(steps)
print(time.perf_counter() - start)
"""


def clean_environment(extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "MKL_", "GENVEC_THREADS"))}
    return {**env, **extra}


def measure(setup: str, workload: str, busy: int) -> float:
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        time.sleep(0.2 if busy else 0)
        done = subprocess.run([sys.executable, "-c", WORKLOAD, setup, workload], env=clean_environment(SETUPS[setup]),
                              capture_output=True, text=True, check=True)
        return float(done.stdout.strip().splitlines()[-1])
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--setups", default=",".join(SETUPS), help="comma-separated names from: " + ", ".join(SETUPS))
    parser.add_argument("--workloads", default="mlp,layer")
    parser.add_argument("--busy", default="0,1,2", help="numbers of busy processes beside the measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--results-dir", default=str(RESULTS / "cpu"))
    args = parser.parse_args()
    setups, workloads = args.setups.split(","), args.workloads.split(",")
    busies = [int(b) for b in args.busy.split(",")]
    seconds: dict[str, list[float]] = {}
    for round_ in range(args.rounds):
        for busy in busies:
            for workload in workloads:
                for setup in setups:
                    key = f"{workload}/busy{busy}/{setup}"
                    seconds.setdefault(key, []).append(measure(setup, workload, busy))
                    print(f"round {round_ + 1}: {key}: {seconds[key][-1]:.2f} s", flush=True)
    rows, figures = [], {}
    for busy in busies:
        for workload in workloads:
            base = statistics.median(seconds[f"{workload}/busy{busy}/torch"]) if "torch" in setups else None
            for setup in setups:
                values = seconds[f"{workload}/busy{busy}/{setup}"]
                median = statistics.median(values)
                figures[f"{workload}/busy{busy}/{setup}"] = {"median_s": median, "runs_s": values}
                ratio = f"{median / base:.2f}" if base else ""
                rows.append([workload, str(busy), setup, f"{median:.2f}", ratio,
                             ", ".join(f"{v:.2f}" for v in values)])
    table = "\n".join(markdown_table(["workload", "busy processes", "setup", "median s", "/ torch default",
                                      "runs s"], rows)) + "\n"
    print(table)
    write_result(Path(args.results_dir), "threads", {"command": command_line(), "machine": machine_facts("cpu"),
                                                      "figures": figures}, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
