"""The quickstart recipes' shared pieces: the run record, the decode stage and its scores."""

import dataclasses
import json

import numpy as np
import pytest

from genvec.config import DataConfig, GenVecConfig
from genvec.decode import Decoded
from genvec.errors import InputError
from genvec.quickstart.stages import (
    RUN_FORMAT,
    decode_heldout,
    decoding_scores,
    open_run,
    recorded_options,
    seed_config,
    seed_dir,
    seed_stage,
)


def test_a_fresh_run_replaces_only_an_earlier_run_and_records_each_stage(tmp_path):
    run_dir = tmp_path / "run"
    with open_run(run_dir, "demo", {"steps": 3}, fresh=True) as run:
        (run_dir / "old.txt").write_text("an earlier run's file")
    with open_run(run_dir, "demo", {"steps": 4}, fresh=True) as run:
        assert run.stage("first", lambda: 7) == 7
        run.stage("second", lambda: None)
    assert not (run_dir / "old.txt").exists()
    record = json.loads((run_dir / "demo.json").read_text())
    assert (record["format"], record["format_version"], record["options"]) == (RUN_FORMAT, 1, {"steps": 4})
    assert list(record["timings"]) == ["first", "second"] and run.total == sum(record["timings"].values())

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for fresh in (True, False):
        refused = pytest.raises(InputError, match="is not an earlier demo run: it is not empty and holds no demo run")
        with refused, open_run(tmp_path / "mine", "demo", {}, fresh=fresh):
            pass
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_a_continued_run_keeps_its_stage_seconds_and_names_an_option_that_changed(tmp_path):
    options = {"steps": 3, "sizes": {"queries": 4}}
    with open_run(tmp_path / "run", "demo", options, fresh=False) as run:
        run.stage("train", lambda: None)
        run.timings["train"] = 12.5  # as if training had taken that long
        run.write()
    calls = []
    with open_run(tmp_path / "run", "demo", dict(options), fresh=False) as run:
        run.stage("train", lambda: calls.append("train"))
    assert calls == ["train"] and run.timings == {"train": 12.5}  # the stage ran (it resumes itself), timed once

    changed = {"steps": 4, "sizes": {"queries": 4}}
    refused = pytest.raises(InputError, match=r"holds a demo run with other options \(steps: recorded 3, now 4\)")
    with refused as error, open_run(tmp_path / "run", "demo", changed, fresh=False):
        pass
    assert "sizes" not in str(error.value)


def test_a_record_without_a_header_is_continued_and_a_newer_one_refused(tmp_path):
    """genvec 0.1.0 wrote real.json without the format header; a run it started continues."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "real.json").write_text(json.dumps({"options": {"steps": 3}, "timings": {"train": 9.0},
                                                            "completed": ["train"]}))
    with open_run(tmp_path / "old", "real", {"steps": 3}, fresh=False) as run:
        assert run.timings == {"train": 9.0}
    assert json.loads((tmp_path / "old" / "real.json").read_text())["format"] == RUN_FORMAT

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "real.json").write_text(json.dumps({"format": RUN_FORMAT, "format_version": 99, "options": {}}))
    with pytest.raises(InputError, match="format version 99"), open_run(tmp_path / "new", "real", {}, fresh=False):
        pass


class _Decoder:
    """Decodes a text to its upper-case form, padded with spaces; counts its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, int]] = []

    def decode(self, texts: list[str], *, max_new_tokens: int, batch_size: int, score: bool) -> list[Decoded]:
        assert score, "the stage asks for round trips"
        self.calls.append((len(texts), max_new_tokens, batch_size))
        return [Decoded(f" {text.upper()} ", ord(text) / 100) for text in texts]


def test_decode_heldout_pairs_each_decoded_text_with_its_response_and_a_rerun_reads_them_back(tmp_path):
    config = GenVecConfig(data=DataConfig(max_new_tokens=300, generation_batch_size=2))
    model = _Decoder()
    queries, responses = ["a", "b", "c"], ["A", "x", "C"]
    records = decode_heldout(model, queries, config, tmp_path, responses, show_progress=False)
    assert records == [{"query": q, "decoded": q.upper(), "response": r, "round_trip": ord(q) / 100}
                       for q, r in zip(queries, responses)]
    assert model.calls == [(2, 128, 2), (1, 128, 2)]  # batches of the generation size; at most 128 tokens
    assert decode_heldout(model, queries, config, tmp_path, responses, show_progress=False) == records
    assert len(model.calls) == 2


def test_decoding_scores_by_hand():
    records = [{"decoded": "a", "response": "a"}, {"decoded": "b", "response": "c"}]
    assert decoding_scores(records) == {"queries": 2, "exact_match": 0.5}
    vectors = {"a": [1.0, 0.0], "b": [0.6, 0.8], "c": [0.0, 1.0]}
    scores = decoding_scores(records, lambda texts: np.array([vectors[text] for text in texts]))
    # cosine(decoded, response): a-a 1.0, b-c 0.8; to the other response: a-c 0.0, b-a 0.6
    assert scores["cosine_to_own_response"] == pytest.approx(0.9)
    assert scores["cosine_to_other_responses"] == pytest.approx(0.3)
    assert scores["own_response_nearest"] == 1.0
    assert "round_trip" not in scores  # records without round trips (a decoded.jsonl written before they were scored)
    scored = [{**records[0], "round_trip": 0.9}, {**records[1], "round_trip": 0.4}]
    assert decoding_scores(scored) == {"queries": 2, "exact_match": 0.5, "round_trip": pytest.approx(0.65)}


def test_each_training_seed_has_its_directory_stage_names_and_seeds_and_shares_the_data(tmp_path):
    config = GenVecConfig(data=DataConfig(responses=str(tmp_path / "responses.jsonl")))
    assert seed_dir(tmp_path, 0) == tmp_path and seed_dir(tmp_path, 2) == tmp_path / "seed-2"
    assert (seed_stage("train", 0, 1), seed_stage("train", 0, 3), seed_stage("decode", 2, 3)) == (
        "train", "train (seed 0)", "decode (seed 2)")
    second = seed_config(config, tmp_path, 2)
    assert second.train.run_dir == str(tmp_path / "seed-2" / "train")
    assert (second.train.seed, second.tokens.init_seed) == (2, 2)
    assert second.data == config.data and second.teacher == config.teacher and second.model == config.model
    first = seed_config(config, tmp_path, 0)
    assert first.train.run_dir == str(tmp_path / "train") and first.tokens.init_seed == 0


def test_the_record_keeps_seeds_only_when_more_than_one(tmp_path):
    @dataclasses.dataclass
    class Options:
        steps: int = 3
        seeds: int = 1
        show_progress: bool = True

    assert recorded_options(Options()) == {"steps": 3}  # continues a run recorded before seeds existed
    assert recorded_options(Options(seeds=3)) == {"steps": 3, "seeds": 3}
    with open_run(tmp_path / "run", "demo", recorded_options(Options()), fresh=False):
        pass
    refused = pytest.raises(InputError, match="holds a demo run with other options \\(seeds: recorded None, now 3\\)")
    with refused, open_run(tmp_path / "run", "demo", recorded_options(Options(seeds=3)), fresh=False):
        pass
