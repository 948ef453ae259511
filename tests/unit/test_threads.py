"""torch's CPU thread setup: chosen from the CPUs the process may use, before torch loads, never over the user's own."""

import os
import subprocess
import sys

import pytest

from genvec import threads


def cgroup(tmp_path, v2: str | None = None, v1: tuple[str, str] | None = None):
    if v2 is not None:
        (tmp_path / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (tmp_path / "cpu").mkdir()
        (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text(v1[0] + "\n")
        (tmp_path / "cpu" / "cpu.cfs_period_us").write_text(v1[1] + "\n")
    return tmp_path


@pytest.mark.parametrize(("v2", "v1", "quota"), [
    ("150000 100000", None, 1.5), ("max 100000", None, None), (None, ("50000", "100000"), 0.5),
    (None, ("-1", "100000"), None), (None, None, None), ("garbage", None, None),
])
def test_a_cgroup_quota_is_read_from_v2_or_v1(tmp_path, v2, v1, quota):
    assert threads._cgroup_quota(cgroup(tmp_path, v2, v1)) == quota


def test_usable_cpus_is_the_affinity_mask_capped_by_the_quota(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    assert threads.usable_cpus(cgroup(tmp_path / "none")) == 8
    (tmp_path / "q").mkdir()
    assert threads.usable_cpus(cgroup(tmp_path / "q", v2="250000 100000")) == 2  # 2.5 CPUs of time: 2 threads
    (tmp_path / "small").mkdir()
    assert threads.usable_cpus(cgroup(tmp_path / "small", v2="20000 100000")) == 1  # never 0


def test_configure_sets_only_what_the_user_left_unset(monkeypatch):
    monkeypatch.setattr(threads, "usable_cpus", lambda: 3)
    environ = {}
    assert threads.configure(environ, torch_loaded=False) == {"OMP_NUM_THREADS": "3",
                                                              "GOMP_SPINCOUNT": str(threads.SPIN_COUNT)}
    assert environ["OMP_NUM_THREADS"] == "3"
    environ = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}
    assert threads.configure(environ, torch_loaded=False) == {}
    assert environ == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "ACTIVE"}
    environ = {"GOMP_SPINCOUNT": "0"}
    assert threads.configure(environ, torch_loaded=False) == {"OMP_NUM_THREADS": "3"}


@pytest.mark.parametrize("environ", [{"GENVEC_CPU_THREADS": "torch"}, {"GENVEC_CPU_THREADS": " Torch "}])
def test_configure_can_be_switched_off(environ):
    assert threads.configure(environ, torch_loaded=False) == {} and "OMP_NUM_THREADS" not in environ


def test_configure_does_nothing_once_torch_is_loaded():
    environ = {}
    assert threads.configure(environ, torch_loaded=True) == {} and environ == {}


def run_python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "GENVEC_CPU"))}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_genvec_before_torch_gives_torch_the_chosen_setup():
    report = "import os, torch; print(torch.get_num_threads(), os.environ.get('GOMP_SPINCOUNT'))"
    assert run_python("import genvec\n" + report) == f"{threads.usable_cpus()} {threads.SPIN_COUNT}"
    assert run_python("import genvec\n" + report, OMP_NUM_THREADS="1") == f"1 {threads.SPIN_COUNT}"
    assert run_python("import torch, genvec\n" + report) == f"{torch_default_threads()} None"  # too late: untouched


def torch_default_threads() -> int:
    return int(run_python("import torch; print(torch.get_num_threads())"))
