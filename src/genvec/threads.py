"""How many CPU threads torch uses, and how they wait: chosen once, before torch starts them.

torch's CPU wheels run their parallel loops on GNU OpenMP (libgomp). Its defaults suit a machine the process has to
itself: one thread per CPU in the affinity mask, and threads that spin (busy-wait, about 300,000 turns) after each
parallel region so the next one starts without a wake-up. On a machine shared with other work (a CI runner, a
container with a CPU quota, a busy server) both defaults hurt: a quota of 2 CPUs on a 64-CPU host still gets 64
threads, and a thread that spins holds a CPU another process, or another of torch's own threads, needs; each
parallel region then waits for a thread the scheduler has put aside. Measured on a 2-core machine
(`benchmarks/cpu_threads.py`, figures in the README): beside one busy process, torch's defaults made a transformer
layer's forward and backward 1.45x and a small MLP 1.5x slower than a 1,000-turn spin, beside two busy processes the
MLP 4.6x; alone on the machine every setup was within the noise of the others (a few percent).

`configure` therefore sets, in this process's environment and only where the user has set nothing:
- `OMP_NUM_THREADS`: the CPUs this process may really use (its affinity mask, capped by a cgroup CPU quota);
- `GOMP_SPINCOUNT`: `SPIN_COUNT` turns of spinning before a thread sleeps: as fast as OpenMP's passive policy (no
  spin) beside busy processes, and it still catches the next parallel region of a quick loop without a wake-up,
  which the passive policy pays for on machines where waking a thread is slow. 10,000 turns already held a CPU long
  enough to cost 30-40% on the MLP beside one busy process.
The user's own setting always wins: any of `OMP_NUM_THREADS`, `OMP_WAIT_POLICY` or `GOMP_SPINCOUNT` in the
environment is kept, and `GENVEC_CPU_THREADS=torch` leaves everything to torch's defaults. OpenMP reads these once,
when torch loads, so `configure` does nothing once torch is imported (`genvec` calls it on import; import genvec
before torch, or set the variables yourself).
"""

import math
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

SPIN_COUNT = 1_000  # turns a waiting OpenMP thread spins before it sleeps (libgomp's default: 300,000)
OPT_OUT = "GENVEC_CPU_THREADS"  # "torch": leave torch's defaults alone


def usable_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its affinity mask, capped by a cgroup (v2 or v1) CPU quota; at least 1."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_quota(cgroup_root)
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def _cgroup_quota(root: Path) -> float | None:
    """CPUs' worth of time per period the cgroup allows (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`); None if
    unlimited or unknown."""
    try:
        quota, _, period = (root / "cpu.max").read_text().partition(" ")
        if quota.strip() != "max":
            return int(quota) / int(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota / period if quota > 0 and period > 0 else None


def configure(environ: MutableMapping[str, str] = os.environ, *, torch_loaded: bool | None = None) -> dict[str, str]:
    """Set the OpenMP thread count and spin count the user left unset (see the module); what was set.

    Does nothing when torch is already loaded (`torch_loaded`, by default whether `torch` is imported) or when
    `GENVEC_CPU_THREADS=torch`.
    """
    if torch_loaded is None:
        torch_loaded = "torch" in sys.modules
    if torch_loaded or environ.get(OPT_OUT, "").strip().lower() == "torch":
        return {}
    chosen = {}
    if "OMP_NUM_THREADS" not in environ:
        chosen["OMP_NUM_THREADS"] = str(usable_cpus())
    if "OMP_WAIT_POLICY" not in environ and "GOMP_SPINCOUNT" not in environ:
        chosen["GOMP_SPINCOUNT"] = str(SPIN_COUNT)
    environ.update(chosen)
    return chosen
