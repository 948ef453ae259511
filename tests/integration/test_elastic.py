"""Elastic multi-node training: two torchrun "nodes" (CPU processes, gloo, c10d rendezvous over loopback); when one
node's worker is killed, the launchers restart the group and the run continues from its newest checkpoint with no
flag, repeating the losses of an uninterrupted run."""

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_train import OVERRIDES, make_config, make_examples, read_metrics

from genvec.errors import ConfigError
from genvec.training import train

DRIVER = Path(__file__).with_name("elastic_driver.py")
STEPS = {"train.max_steps": 6, "train.save_every": 2, "model.device": "cpu"}
PAUSE_STEP = 2  # the killed worker has written this step's checkpoint and not begun the next step


def test_a_killed_node_is_restarted_and_the_run_repeats_the_uninterrupted_losses(backbone_dirs, tmp_path):
    examples = make_examples()
    data = tmp_path / "data.npz"
    np.savez(data, queries=examples.queries, responses=examples.responses, targets=examples.teacher_embeddings)
    backbone = backbone_dirs["qwen3"]

    # Both jobs at once (each its own rendezvous): their start-up, most of the time, overlaps.
    with (two_nodes("straight", data, backbone, tmp_path, pause_step=0) as straight,
          two_nodes("killed", data, backbone, tmp_path, pause_step=PAUSE_STEP) as nodes):
        worker = wait_for_pause(tmp_path / "killed.pid", nodes)
        assert worker not in {node.pid for node in nodes}  # the worker, not its launcher
        os.kill(worker, signal.SIGKILL)
        assert [node.wait(timeout=300) for node in nodes] == [0, 0], output(tmp_path, "killed")
        assert [node.wait(timeout=300) for node in straight] == [0, 0], output(tmp_path, "straight")

    restarts = [line for line in output(tmp_path, "killed").splitlines() if "restarted worker of elastic job" in line]
    assert restarts and all("step-00000002" in line for line in restarts), output(tmp_path, "killed")
    reference, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "killed")
    assert [m["step"] for m in reference] == [m["step"] for m in resumed] == list(range(1, 7))
    for a, b in zip(reference, resumed):
        for key in ("loss", "reconstruction", "alignment", "learning_rate"):
            assert abs(a[key] - b[key]) < 1e-6, (a["step"], key, a[key], b[key])
    state = json.loads((tmp_path / "killed" / "checkpoints" / "step-00000006" / "trainer_state.json").read_text())
    assert state["elastic_job"] == "killed" and state["num_processes"] == 2


def test_only_a_restart_of_the_same_elastic_job_continues_a_run_without_being_told(
    backbone_dirs, tmp_path, monkeypatch, caplog
):
    # torchrun gives every worker of a job, and of each of its restarts, the job's rendezvous id.
    examples, run_dir = make_examples(), tmp_path / "run"
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    train(make_config(backbone_dirs["qwen3"], run_dir, **{"train.max_steps": 2}), examples)
    longer = make_config(backbone_dirs["qwen3"], run_dir, **{"train.max_steps": 4})
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-b")
    with pytest.raises(ConfigError, match="already holds 1 checkpoint.*set train.resume to 'latest'"):
        train(longer, examples)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    with pytest.raises(ConfigError, match="already holds 1 checkpoint"):
        train(longer, examples)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # the id of launches given none: unrelated launches share it
    train(make_config(backbone_dirs["qwen3"], tmp_path / "static", **{"train.max_steps": 2}), examples)
    with pytest.raises(ConfigError, match="already holds 1 checkpoint"):
        train(make_config(backbone_dirs["qwen3"], tmp_path / "static", **{"train.max_steps": 4}), examples)

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job-a")
    with caplog.at_level(logging.INFO, logger="genvec.training.checkpoints"):
        train(longer, examples)
    assert "restarted worker of elastic job job-a: resuming from" in caplog.text
    assert "resumed from" in caplog.text and "step-00000002 at step 2" in caplog.text
    assert [m["step"] for m in read_metrics(run_dir)] == [1, 2, 3, 4]


@contextlib.contextmanager
def two_nodes(job: str, data: Path, backbone: Path, tmp_path: Path, pause_step: int):
    """Two torchrun launchers of one node each, joining job `job` by c10d rendezvous on a free loopback port, their
    output in `JOB-node-N.log`; launchers still running at the end are stopped (SIGTERM: they stop their workers)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    words = [f"{key}={value}" for key, value in {**OVERRIDES, **STEPS}.items()]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=1", "--rdzv-backend=c10d",
        f"--rdzv-endpoint=127.0.0.1:{port}", f"--rdzv-id={job}", "--max-restarts=2", "--monitor-interval=0.1",
        str(DRIVER), str(tmp_path / f"{job}.pid"), str(pause_step), str(data), str(backbone), str(tmp_path / job),
        *words,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1",
           "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}  # see the README's elastic recipe
    nodes = []
    try:
        for node in range(2):
            with open(tmp_path / f"{job}-node-{node}.log", "w") as log:
                nodes.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT))
        yield nodes
    finally:
        for node in nodes:
            if node.poll() is None:
                node.terminate()
                node.wait(timeout=60)


def wait_for_pause(pid_file: Path, nodes: list[subprocess.Popen]) -> int:
    """The process id of the worker that paused after its checkpoint (see elastic_driver.py)."""
    deadline = time.time() + 300
    while not pid_file.exists():
        assert time.time() < deadline, "no worker paused after its checkpoint within 300 s"
        assert all(node.poll() is None for node in nodes), "a launcher ended before the checkpoint to pause at"
        time.sleep(0.05)
    return int(pid_file.read_text())


def output(tmp_path: Path, job: str) -> str:
    """Both nodes' output: the launchers' and their workers'."""
    return "\n".join(log.read_text()[-4000:] for log in sorted(tmp_path.glob(f"{job}-node-*.log")))
