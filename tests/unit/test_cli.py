"""The CLI: verbs return 0 on success, 2 with a one-line error on bad input."""

import json

import numpy as np
import pytest

from genvec.cli import main
from genvec.errors import InputError


def test_encode_writes_npy_and_jsonl(qwen3_model, tmp_path, capsys):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "texts.txt").write_text("first text\n\nsecond text\n")
    assert main(["encode", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--input", str(tmp_path / "texts.txt"),
                 "--normalize", "--output", str(tmp_path / "out.npy")]) == 0
    vectors = np.load(tmp_path / "out.npy")
    assert vectors.shape == (2, 16)
    np.testing.assert_allclose(vectors, qwen3_model.encode(["first text", "second text"], normalize=True), atol=1e-6)
    assert main(["encode", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--query", "hello"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    expected = qwen3_model.encode_query(["hello"])[0]
    np.testing.assert_allclose(record["embedding"], expected, atol=1e-5)


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["encode", "--model", str(tmp_path), "hello"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert main(["encode", "--model", str(tmp_path)]) == 2
    assert "no texts given" in capsys.readouterr().err


def test_decode_prints_texts_or_json(qwen3_model, tmp_path, capsys):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    (tmp_path / "texts.txt").write_text("second text\n")
    expected = qwen3_model.decode(["first text", "second text"], max_new_tokens=6)
    assert main(["decode", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "first text",
                 "--input", str(tmp_path / "texts.txt"), "--max-new-tokens", "6", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["decoded"] for r in records] == expected and [r["text"] for r in records] == ["first text", "second text"]
    model = ["--model", str(tmp_path / "ckpt"), "--device", "cpu"]
    assert main(["decode", *model, "first text", "--max-new-tokens", "6"]) == 0
    assert capsys.readouterr().out == f"[0] first text\n{expected[0]}\n\n"
    assert main(["decode", *model, "x", "--max-new-tokens", "0"]) == 2
    assert "max_new_tokens must be a positive integer" in capsys.readouterr().err


def test_decode_scores_and_best_of_are_the_librarys(qwen3_model, tmp_path, capsys):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    model = ["--model", str(tmp_path / "ckpt"), "--device", "cpu", "--max-new-tokens", "6"]
    sampled = qwen3_model.decode(["first text"], max_new_tokens=6, do_sample=True, seed=2, best_of=3, score=True)
    assert main(["decode", *model, "first text", "--sample", "--seed", "2", "--best-of", "3", "--score",
                 "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["decoded"] == sampled[0].text and abs(record["score"] - sampled[0].score) < 1e-6
    greedy = qwen3_model.decode(["first text"], max_new_tokens=6, score=True)[0]
    assert main(["decode", *model, "first text", "--score"]) == 0
    assert capsys.readouterr().out == f"[0] first text\n{greedy.text}\nround trip {greedy.score:.4f}\n\n"
    assert main(["decode", *model, "first text", "--best-of", "2"]) == 2
    assert "best_of=2 needs sampling" in capsys.readouterr().err


def test_inspect_prints_a_table_or_json(qwen3_model, tmp_path, capsys):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    assert main(["inspect", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "polar bears", "--top-k", "2"]) == 0
    assert capsys.readouterr().out == qwen3_model.inspect("polar bears", top_k=2).to_table() + "\n\n"
    assert main(["inspect", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "a", "b", "--json"]) == 0
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [d["text"] for d in documents] == ["a", "b"] and len(documents[0]["special_tokens"][0]["hidden_state"]) == 10


def test_convert_writes_a_native_checkpoint(backbone_dirs, tmp_path, capsys):
    from genvec import load_model
    from genvec.testing import save_official_release

    release = save_official_release(tmp_path / "release", backbone_dirs["qwen3"])
    assert main(["convert", str(release), str(tmp_path / "native")]) == 0
    assert "wrote a genvec checkpoint" in capsys.readouterr().err
    converted = load_model(tmp_path / "native", device="cpu").encode(["hello"])
    np.testing.assert_array_equal(converted, load_model(release, device="cpu").encode(["hello"]))
    assert main(["convert", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2


def test_quickstart_takes_its_cache_from_the_flag_then_genvec_cache_and_prints_the_verdict(
    tmp_path, monkeypatch, capsys
):
    import genvec.quickstart.pipeline as pipeline

    seen = []

    def fake_run(options):
        seen.append(options)
        won = {"retrieval_accuracy": True, "harmful_top5": len(seen) == 1}
        paths = {name: tmp_path / name for name in ("report", "plot", "metrics")}
        return pipeline.QuickstartResult(tmp_path, "table", {}, won, paths, {"total": 1.0})

    monkeypatch.setattr(pipeline, "run_quickstart", fake_run)
    monkeypatch.setenv("GENVEC_CACHE", str(tmp_path / "env"))
    assert main(["quickstart", "--run-dir", str(tmp_path / "run")]) == 0
    assert seen[0].cache_dir == tmp_path / "env"
    assert "genvec beats both" in capsys.readouterr().out
    assert main(["quickstart", "--run-dir", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "flag")]) == 0
    assert seen[1].cache_dir == tmp_path / "flag"
    assert "genvec does NOT beat both" in capsys.readouterr().out


@pytest.fixture
def real_runs(monkeypatch, tmp_path) -> list:
    """The RealOptions of each `genvec quickstart --real` call, in order (run_real replaced: nothing runs)."""
    import genvec.quickstart.real as real

    seen = []
    monkeypatch.setattr(real, "run_real", lambda options: seen.append(options) or real.RealResult(
        tmp_path, "report", {}, {}))
    return seen


def test_target_scale_is_the_real_runs_flag(tmp_path, real_runs, capsys):
    seen = real_runs
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path), "--target-scale", "none"]) == 0
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path)]) == 0
    assert [options.target_scale for options in seen] == ["none", "unit_rms"]
    assert main(["quickstart", "--target-scale", "none"]) == 2  # the world quickstart has no such flag
    assert "--target-scale belongs to --real" in capsys.readouterr().err


def test_reconstruction_every_is_the_real_runs_flag_and_a_run_recorded_before_it_continues(tmp_path, real_runs,
                                                                                            capsys):
    import genvec.quickstart.real as real
    from genvec.quickstart.stages import recorded_options

    seen = real_runs
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path), "--reconstruction-every", "4"]) == 0
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path)]) == 0
    assert [options.reconstruction_every for options in seen] == [4, 1]
    assert real._config(seen[0], tmp_path, "backbone", "teacher").loss.reconstruction_every == 4
    assert "reconstruction_every" not in recorded_options(seen[1])  # as runs recorded before the option
    assert recorded_options(seen[0])["reconstruction_every"] == 4
    assert main(["quickstart", "--reconstruction-every", "4"]) == 2
    assert "--reconstruction-every belongs to --real" in capsys.readouterr().err


def test_the_long_preset_sets_its_recipe_flags_override_it_and_the_default_records_as_before(tmp_path, real_runs,
                                                                                             capsys):
    import genvec.quickstart.real as real
    from genvec.quickstart.stages import recorded_options

    seen = real_runs
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path), "--preset", "long"]) == 0
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path), "--preset", "long", "--steps", "200"]) == 0
    assert main(["quickstart", "--real", "--run-dir", str(tmp_path), "--preset", "default"]) == 0
    long, shorter, default = seen
    assert (long.steps, long.reconstruction_every) == (480, 4) and (shorter.steps, shorter.reconstruction_every) == (
        200, 4)
    assert long == real.RealOptions(run_dir=tmp_path, device="cpu", steps=480, reconstruction_every=4)
    assert default == real.RealOptions(run_dir=tmp_path, device="cpu")
    assert "extra_queries" not in recorded_options(default)  # a run recorded before the option continues
    assert recorded_options(real.RealOptions(extra_queries={"trivia": 5}))["extra_queries"] == {"trivia": 5}
    assert main(["quickstart", "--preset", "long"]) == 2
    assert "--preset belongs to --real" in capsys.readouterr().err
    with pytest.raises(InputError, match="unknown preset 'huge'; choose one of default, long"):
        real.preset("huge")


def test_file_system_problems_and_bad_arguments_are_one_error_line(qwen3_model, tmp_path, capsys):
    import os

    qwen3_model.save_pretrained(tmp_path / "ckpt")
    model = ["--model", str(tmp_path / "ckpt"), "--device", "cpu"]
    (tmp_path / "out.npy").mkdir()
    cases = [
        (["encode", *model, "hello", "--output", str(tmp_path / "out.npy")], "out.npy"),  # an existing directory
        (["encode", *model, "--input", str(tmp_path)], "is a directory"),
        (["encode", *model, os.fsdecode(b"caf\xe9")], "is not valid Unicode text"),  # bytes that are not UTF-8
        (["decode", *model, "hello", "--sample", "--seed", str(2**70)], "seed must be an integer"),
        (["generate-responses", "--queries", "q.txt", "--responses", "r.jsonl", "--num-shards", "0",
          "--backbone", "x"], "num_shards must be a positive integer, got 0"),
    ]
    for argv, message in cases:
        status = main(argv)
        err = capsys.readouterr().err
        assert status == 2, (argv, err)
        assert err.startswith("error: ") and message in err and "Traceback" not in err, (argv, err)


def test_serve_settings_come_from_the_file_then_the_environment_then_generated_flags(tmp_path, monkeypatch, capsys):
    import genvec.serve

    seen = []
    monkeypatch.setattr(genvec.serve, "serve", lambda model, config, **options: seen.append((model, config, options)))
    (tmp_path / "serve.yaml").write_text("serve:\n  port: 1001\n  max_inputs: 7\n  batch_wait_ms: 3\n")
    monkeypatch.setenv("GENVEC_SERVE_PORT", "1002")
    monkeypatch.setenv("GENVEC_SERVE_MAX_INPUTS", "8")
    monkeypatch.setenv("GENVEC_EVAL_BATCH_SIZE", "not read by serve")
    monkeypatch.setenv("GENVEC_API_KEY", "k")
    argv = ["serve", "--model", "ckpt", "--config", str(tmp_path / "serve.yaml"), "--serve.port", "1003",
            "--max-batch-texts", "5", "--truncate", "cut"]  # --max-batch-texts, --truncate: kebab aliases
    assert main(argv) == 0
    ((model, config, options),) = seen
    assert model == "ckpt" and options["api_key"] == "k"
    assert (config.port, config.max_inputs, config.batch_wait_ms, config.max_batch_texts, config.truncate) == (
        1003, 8, 3, 5, "cut")
    monkeypatch.setenv("GENVEC_SERVE_PORT", "eighty")
    monkeypatch.setenv("GENVEC_SERVE_PROT", "80")
    assert main(["serve", "--model", "ckpt", "--serve.truncate", "maybe"]) == 2
    err = capsys.readouterr().err
    assert "GENVEC_SERVE_PORT: expected an integer, got 'eighty'" in err and "GENVEC_SERVE_PROT: no such setting" in err
    assert "serve.truncate: must be one of 'error', 'cut', got 'maybe'" in err and len(seen) == 1


def test_serve_and_evaluate_flags_are_generated_from_their_config_sections(monkeypatch, capsys):
    import dataclasses

    import pytest

    from genvec.config import EvalConfig, ServeConfig, environment_variable, field_docs

    monkeypatch.setenv("COLUMNS", "2000")  # one line per flag: the help text is compared whole
    for verb, section, cls in (("serve", "serve", ServeConfig), ("evaluate", "eval", EvalConfig)):
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = capsys.readouterr().out
        for item in dataclasses.fields(cls):
            dotted = f"{section}.{item.name}"
            value = "VALUE [VALUE ...]" if str(item.type).startswith("list[") else "VALUE"  # a list takes words
            assert f"--{dotted} {value}, --{item.name.replace('_', '-')} {value}" in text
            assert field_docs(cls)[item.name] in text and environment_variable(dotted) in text


def test_evaluate_passes_its_eval_section_and_leaves_the_similarity_to_the_library(tmp_path, monkeypatch):
    import genvec.cli
    from genvec.config import EvalConfig
    from genvec.evaluate import run

    seen = []
    monkeypatch.setattr(run, "select_tasks", lambda **chosen: (["a task"], None))
    monkeypatch.setattr(run, "evaluate_model", lambda model, tasks, output, **options: seen.append(options["config"])
                        or run.EvaluationResult(output))
    monkeypatch.setattr(genvec.cli, "_load_model", lambda args: "a model")
    assert main(["evaluate", "--model", "ckpt", "--benchmark", "advbench-ir"]) == 0
    monkeypatch.setenv("GENVEC_EVAL_BATCH_SIZE", "4")
    assert main(["evaluate", "--model", "ckpt", "--benchmark", "advbench-ir", "--eval.similarity", "cosine"]) == 0
    assert main(["evaluate", "--model", "ckpt", "--benchmark", "advbench-ir", "--batch-size", "2"]) == 0
    assert seen == [EvalConfig(), EvalConfig(batch_size=4, similarity="cosine"), EvalConfig(batch_size=2)]
    monkeypatch.setenv("GENVEC_EVAL_BATCH_SIZE", "0")
    assert main(["evaluate", "--model", "ckpt", "--benchmark", "advbench-ir"]) == 2 and len(seen) == 3
