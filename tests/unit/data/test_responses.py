"""Response generation on a tiny backbone: chat-template prompts, records, resume, shards, merge, and file errors."""

import json
import os
import shutil
import warnings

import pytest

from genvec.config import DataConfig
from genvec.data import engines
from genvec.data.dataset import ResponseRecord, read_responses
from genvec.data.responses import PromptBuilder, generate_responses, merge_responses
from genvec.errors import InputError
from genvec.testing import build_tokenizer

QUERIES = [
    "Where do polar bears live?",
    "How do rivers form in the mountains and where do they go?",
    "",
    "What is a vector?",
    "Where do polar bears live?",
    "Name three cities by a river.",
    "Why is arctic ice melting?",
    "Train a model.",
    "What is the first question?",
]
GREEDY = DataConfig(max_new_tokens=6, decoding="greedy", generation_batch_size=3)


def test_prompt_is_the_chat_template_with_thinking_disabled():
    tokenizer = build_tokenizer()
    builder = PromptBuilder(tokenizer, max_length=1024)
    assert builder.uses_template and builder.no_thinking
    text = tokenizer.decode(builder("Where do polar bears live?"))
    expected = "<|im_start|>user\nWhere do polar bears live?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert text == expected


def test_thinking_is_decided_by_the_template_not_the_name():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = (
        "{% for m in messages %}[{{ m['content'] }}]{% endfor %}{% if add_generation_prompt %}>{% endif %}"
    )
    builder = PromptBuilder(tokenizer, max_length=1024)
    assert builder.uses_template and not builder.no_thinking
    assert tokenizer.decode(builder("hi")) == "[hi]>"


def test_no_chat_template_falls_back_to_the_raw_query_with_one_warning(backbone_dirs, tmp_path):
    from genvec import GenVecModel

    model = GenVecModel.from_backbone(str(backbone_dirs["llama"]), num_special_tokens=2, num_compression_tokens=1,
                                      dtype="fp32", device="cpu")
    model.tokenizer.chat_template = None
    with pytest.warns(UserWarning, match="has no chat template") as caught:
        generate_responses(QUERIES[:4], tmp_path / "raw.jsonl", model.loaded_backbone, GREEDY)
    assert sum("chat template" in str(item.message) for item in caught) == 1
    with pytest.warns(UserWarning, match="has no chat template"):
        builder = PromptBuilder(model.tokenizer, 1024)
    assert builder("Where do polar bears live?") == model.tokenizer("Where do polar bears live?")["input_ids"]
    assert json.loads((tmp_path / "raw.meta.json").read_text())["generation"]["chat_template"] is False


def test_long_prompts_lose_the_end_of_the_query_not_the_template():
    tokenizer = build_tokenizer()
    builder = PromptBuilder(tokenizer, max_length=40)
    with pytest.warns(UserWarning, match="longer than prompt_max_length=40"):
        ids = builder("polar bear " * 50)
    assert len(ids) <= 40 and builder.cut == 1
    assert tokenizer.decode(ids).endswith("<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")
    with pytest.raises(InputError, match="cannot hold the chat template"), pytest.warns(UserWarning):
        PromptBuilder(tokenizer, max_length=5)("polar bear " * 50)


def test_records_metadata_and_finish_reasons(qwen3_model, tmp_path):
    summary = generate_responses(QUERIES, tmp_path / "r.jsonl", qwen3_model.loaded_backbone, GREEDY)
    records = read_responses(tmp_path / "r.jsonl")
    assert [record.id for record in records] == [0, 1, 3, 5, 6, 7, 8]  # row 2 empty, row 4 a duplicate
    # Cut at max_new_tokens means exactly 6 tokens; ended by the backbone means fewer (the EOS is not counted).
    assert all((r.finish_reason == "length") == (r.response_tokens == 6) for r in records)
    assert (summary.generated, summary.skipped_empty, summary.skipped_duplicates) == (7, 1, 1)
    meta = json.loads((tmp_path / "r.meta.json").read_text())
    assert meta["complete"] and meta["counts"]["written"] == 7
    assert meta["counts"]["eos"] == sum(r.finish_reason == "eos" for r in records) == summary.eos
    assert meta["generation"]["do_sample"] is False and meta["generation"]["thinking_disabled"] is True
    assert meta["requested"] == {"decoding": "greedy", "seed": 0, "max_new_tokens": 6, "prompt_max_length": 1024,
                                 "engine": "transformers"}

    # Declare the third token the backbone emits for the first query an end-of-sequence id: it must stop there.
    qwen3_model.backbone.generation_config.eos_token_id = [*qwen3_model.backbone.generation_config.eos_token_id,
                                                           _third_generated_token(qwen3_model, QUERIES[0])]
    generate_responses(QUERIES[:1], tmp_path / "eos.jsonl", qwen3_model.loaded_backbone, GREEDY)
    (stopped,) = read_responses(tmp_path / "eos.jsonl")
    assert stopped.finish_reason == "eos" and stopped.response_tokens == 2


def _third_generated_token(model, query):
    import torch

    prompt = PromptBuilder(model.tokenizer, 1024)(query)
    output = model.backbone.generate(torch.tensor([prompt]), max_new_tokens=3, do_sample=False,
                                     eos_token_id=None, pad_token_id=model.pad_token_id)
    return int(output[0, -1])


class Interrupt(Exception):
    pass


def _interrupt_after(monkeypatch, calls):
    original = engines.TransformersEngine.generate
    count = {"n": 0}

    def generate(self, prompts, seeds):
        count["n"] += 1
        if count["n"] > calls:
            raise Interrupt()
        return original(self, prompts, seeds)

    monkeypatch.setattr(engines.TransformersEngine, "generate", generate)


@pytest.mark.parametrize("config", [GREEDY, DataConfig(max_new_tokens=6, decoding="sample", seed=7,
                                                       generation_batch_size=3)], ids=["greedy", "sampled"])
def test_resume_after_an_interruption_equals_an_uninterrupted_run(qwen3_model, tmp_path, monkeypatch, config):
    generate_responses(QUERIES, tmp_path / "full.jsonl", qwen3_model.loaded_backbone, config)
    with monkeypatch.context() as patch:
        _interrupt_after(patch, 2)
        with pytest.raises(Interrupt):
            generate_responses(QUERIES, tmp_path / "cut.jsonl", qwen3_model.loaded_backbone, config)
    with pytest.warns(UserWarning, match=r"cut.jsonl is incomplete \(6 of 7 queries answered\)"):
        assert len(read_responses(tmp_path / "cut.jsonl")) == 6
    assert json.loads((tmp_path / "cut.meta.json").read_text())["complete"] is False
    # A torn write after the last complete batch, as a crash mid-line leaves it.
    with open(tmp_path / "cut.jsonl", "a") as file:
        file.write('{"id": 7, "query": "Train a mo')
    summary = generate_responses(QUERIES, tmp_path / "cut.jsonl", qwen3_model.loaded_backbone, config)
    assert (summary.resumed, summary.generated) == (6, 1)
    assert (tmp_path / "cut.jsonl").read_bytes() == (tmp_path / "full.jsonl").read_bytes()


def test_sampling_is_seeded(qwen3_model, tmp_path):
    def run(name, **settings):
        generate_responses(QUERIES, tmp_path / name, qwen3_model.loaded_backbone,
                           DataConfig(max_new_tokens=6, **settings))
        return [record.response for record in read_responses(tmp_path / name)]

    sampled = run("a.jsonl", decoding="sample", seed=1)
    assert run("b.jsonl", decoding="sample", seed=1) == sampled
    assert run("c.jsonl", decoding="sample", seed=2) != sampled
    assert run("d.jsonl", decoding="greedy") != sampled
    meta = json.loads((tmp_path / "a.meta.json").read_text())
    assert meta["generation"]["do_sample"] is True and meta["requested"]["seed"] == 1


def test_resume_drops_a_partly_written_batch_and_a_finished_run_does_nothing(qwen3_model, tmp_path, monkeypatch):
    generate_responses(QUERIES, tmp_path / "full.jsonl", qwen3_model.loaded_backbone, GREEDY)
    lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "part.jsonl").write_text("".join(lines[:4]))  # one batch of 3, then 1 of the next batch
    with pytest.raises(InputError, match=r"part.jsonl holds responses but has no part.meta.json beside it"):
        generate_responses(QUERIES, tmp_path / "part.jsonl", qwen3_model.loaded_backbone, GREEDY)
    shutil.copy(tmp_path / "full.meta.json", tmp_path / "part.meta.json")
    summary = generate_responses(QUERIES, tmp_path / "part.jsonl", qwen3_model.loaded_backbone, GREEDY)
    assert (summary.resumed, summary.generated) == (3, 4)
    assert (tmp_path / "part.jsonl").read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    monkeypatch.setattr("genvec.data.responses.open_engine", lambda *args: pytest.fail("loaded a model for nothing"))
    again = generate_responses(QUERIES, tmp_path / "part.jsonl", qwen3_model.loaded_backbone, GREEDY)
    assert (again.resumed, again.generated) == (7, 0)


def test_resume_refuses_other_settings_and_other_queries(qwen3_model, tmp_path):
    generate_responses(QUERIES[:4], tmp_path / "r.jsonl", qwen3_model.loaded_backbone, GREEDY)
    other = DataConfig(max_new_tokens=7, decoding="greedy", generation_batch_size=3)
    with pytest.raises(InputError, match=r"generated with other settings \(max_new_tokens: recorded 6, now 7\)"):
        generate_responses(QUERIES[:4], tmp_path / "r.jsonl", qwen3_model.loaded_backbone, other)
    with pytest.raises(InputError, match="was written for other queries"):
        generate_responses(["Another question?", *QUERIES], tmp_path / "r.jsonl", qwen3_model.loaded_backbone, GREEDY)


def test_union_of_shards_equals_the_full_run(backbone_dirs, tmp_path):
    backbone = str(backbone_dirs["qwen3"])
    generate_responses(QUERIES, tmp_path / "full.jsonl", backbone, GREEDY)
    for shard_id in range(3):
        summary = generate_responses(QUERIES, tmp_path / "sharded.jsonl", backbone, GREEDY, num_shards=3,
                                     shard_id=shard_id)
        assert summary.output.name == f"sharded.shard-0000{shard_id}-of-00003.jsonl"
    assert read_responses(tmp_path / "sharded.jsonl") == read_responses(tmp_path / "full.jsonl")
    output, count = merge_responses(tmp_path / "sharded.jsonl")
    assert count == 7 and output == tmp_path / "sharded.jsonl"
    assert output.read_bytes() == (tmp_path / "full.jsonl").read_bytes()
    meta = json.loads((tmp_path / "sharded.meta.json").read_text())
    assert meta["complete"] and meta["counts"]["written"] == 7 and len(meta["shard"]["merged_from"]) == 3


def test_bad_shards_and_queries(qwen3_model, tmp_path):
    with pytest.raises(InputError, match=r"shard_id must be in 0..1 for num_shards=2, got 2"):
        generate_responses(QUERIES, tmp_path / "r.jsonl", qwen3_model.loaded_backbone, GREEDY, num_shards=2, shard_id=2)
    with pytest.raises(InputError, match="no queries to answer"):
        generate_responses(["", "  "], tmp_path / "r.jsonl", qwen3_model.loaded_backbone, GREEDY)


def test_read_responses_errors(tmp_path):
    record = ResponseRecord(0, "q", "r", 1, "eos")
    (tmp_path / "x.shard-00000-of-00003.jsonl").write_text(record.to_json() + "\n")
    (tmp_path / "x.shard-00002-of-00003.jsonl").write_text("")
    with pytest.raises(InputError, match=r"1 of 3 shards of .*x.jsonl' are missing \(x.shard-00001-of-00003.jsonl\)"):
        read_responses(tmp_path / "x.jsonl")
    with pytest.raises(InputError, match="no responses at"):
        read_responses(tmp_path / "nothing.jsonl")
    (tmp_path / "bad.jsonl").write_text(record.to_json() + "\n" + '{"id": 1, "query": "q"}\n')
    with pytest.raises(InputError, match=r"bad.jsonl: line 2 lacks response, response_tokens, finish_reason"):
        read_responses(tmp_path / "bad.jsonl")
    (tmp_path / "bad.jsonl").write_text(json.dumps({**json.loads(record.to_json()), "finish_reason": "stop"}) + "\n")
    with pytest.raises(InputError, match="finish_reason must be 'eos' or 'length', got 'stop'"):
        read_responses(tmp_path / "bad.jsonl")
    (tmp_path / "dir").mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / "dir" / name).write_text(record.to_json() + "\n")
    with pytest.raises(InputError, match="response id 0 appears in"):
        read_responses(tmp_path / "dir")
    (tmp_path / "torn.jsonl").write_text(record.to_json() + "\n" + '{"id": 1, "que')
    with pytest.warns(UserWarning, match="the last line has no newline"):
        assert read_responses(tmp_path / "torn.jsonl") == [record]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_responses(str(tmp_path / "dir" / "a.*")) == [record]


def test_a_second_writer_of_one_response_file_is_refused_naming_the_holder(qwen3_model, tmp_path):
    from genvec.errors import BusyError
    from genvec.files import exclusive_lock, lock_file_for

    output = tmp_path / "r.jsonl"
    with (
        exclusive_lock(lock_file_for(output), "the response file"),  # another run is writing it
        pytest.raises(BusyError, match=rf"r.jsonl is being written by process {os.getpid()} on "),
    ):
        generate_responses(QUERIES, output, qwen3_model.loaded_backbone, GREEDY)
    assert not output.exists()
    summary = generate_responses(QUERIES, output, qwen3_model.loaded_backbone, GREEDY)  # released: it runs
    assert summary.generated == summary.queries


def test_a_duplicated_record_is_named_as_such(qwen3_model, tmp_path):
    generate_responses(QUERIES[:3], tmp_path / "r.jsonl", qwen3_model.loaded_backbone, GREEDY)
    lines = (tmp_path / "r.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "r.jsonl").write_text("".join(lines + lines[:1]))
    with pytest.raises(InputError,
                       match=r"response id 0 appears twice in .*r.jsonl: the file holds a duplicated record"):
        read_responses(tmp_path / "r.jsonl")


def test_bad_arguments_and_a_finished_file_left_as_it_is(qwen3_model, tmp_path, backbone_dirs, monkeypatch):
    with pytest.raises(InputError, match="config must be a DataConfig .* got dict"):
        generate_responses(["a"], tmp_path / "x.jsonl", qwen3_model.loaded_backbone, {"max_new_tokens": 2})
    with pytest.raises(InputError, match="num_shards must be a positive integer, got True"):
        generate_responses(["a"], tmp_path / "x.jsonl", qwen3_model.loaded_backbone, GREEDY, num_shards=True)
    # Generated through a relative path, resumed through the absolute one: the same directory, the same backbone.
    monkeypatch.chdir(backbone_dirs["qwen3"].parent)
    generate_responses(QUERIES[:4], tmp_path / "r.jsonl", backbone_dirs["qwen3"].name, GREEDY)
    meta = tmp_path / "r.meta.json"
    written = meta.stat().st_mtime_ns
    summary = generate_responses(QUERIES[:4], tmp_path / "r.jsonl", str(backbone_dirs["qwen3"]), GREEDY)
    assert summary.generated == 0 and meta.stat().st_mtime_ns == written  # nothing to do: nothing written
