"""The world LM: tokenizer and chat format, loss masks, the atomic cache, and a reduced LM that learns the world."""

import dataclasses
import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from genvec import GenVecModel
from genvec.quickstart.world import SMALL_WORLD, build_world
from genvec.quickstart.world_lm import (
    IGNORE_INDEX,
    INFO_FILE,
    SMALL_LM,
    WorldLMConfig,
    answer,
    build_world_tokenizer,
    cache_key,
    chat_prompt,
    encode_example,
    lm_examples,
    load_or_train_world_lm,
)

# A model too small to learn anything: for the tests of files and formats, trained in a second.
TINY_LM = WorldLMConfig(
    vocab_size=600, hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64, steps=3,
    batch_size=8, warmup_steps=1,
)


@pytest.fixture(scope="module")
def world():
    return build_world(SMALL_WORLD)


@pytest.fixture(scope="module")
def tokenizer(world):
    return build_world_tokenizer(lm_examples(world), 2048)


def test_examples_teach_answers_and_summaries(world):
    examples = lm_examples(world)
    assert len(examples) == len(world.train_queries) + len(world.documents)
    summaries = [(user, response) for user, response in examples if user.startswith("Summarize the following passage:")]
    assert {response for _, response in summaries} == set(world.documents)
    assert all(user.endswith(response) for user, response in summaries)


def test_tokenizer_round_trips_world_text_and_uses_a_qwen_style_chat_template(world, tokenizer):
    for text in [world.train_queries[0].text, *world.documents[:5]]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
    assert tokenizer.eos_token == "<|im_end|>"
    prompt = chat_prompt(tokenizer, "hello")
    assert prompt == "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    # Every word of the world is one token or two: the vocabulary holds the world, so sequences stay short.
    query = world.heldout_queries[0].text
    assert len(tokenizer(query, add_special_tokens=False)["input_ids"]) <= 2 * len(query.split())


def test_only_the_response_and_end_of_turn_are_labelled(tokenizer):
    ids, labels = encode_example(tokenizer, "What is the capital?", "Zosgor, a marble citadel.")
    prompt = chat_prompt(tokenizer, "What is the capital?")
    prompt_length = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    assert labels[:prompt_length] == [IGNORE_INDEX] * prompt_length
    assert labels[prompt_length:] == ids[prompt_length:]
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[prompt_length:-1]) == "Zosgor, a marble citadel."


def test_cache_key_changes_with_the_config_and_the_world(world):
    key = cache_key(world, TINY_LM)
    assert key == cache_key(build_world(SMALL_WORLD), TINY_LM)
    assert key != cache_key(world, dataclasses.replace(TINY_LM, steps=4))
    assert key != cache_key(build_world(dataclasses.replace(SMALL_WORLD, seed=3)), TINY_LM)


def test_the_world_lm_is_cached_atomically_and_reused(world, tmp_path):
    first = load_or_train_world_lm(world, TINY_LM, tmp_path, show_progress=False)
    assert not first.reused
    assert first.path.parent == tmp_path and first.path.name == cache_key(world, TINY_LM)
    # No temporary directory left behind: the LM and its lock file only.
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".{first.path.name}.lock", first.path.name]
    info = json.loads((first.path / INFO_FILE).read_text())
    assert info["world_fingerprint"] == world.fingerprint()
    second = load_or_train_world_lm(world, TINY_LM, tmp_path, show_progress=False)
    assert second.reused and second.path == first.path
    assert second.heldout_accuracy == first.heldout_accuracy
    # genvec loads it like a hub model: from_pretrained on the directory.
    model = GenVecModel.from_backbone(
        str(first.path), num_special_tokens=2, num_compression_tokens=1, embedding_dim=8, dtype="fp32", device="cpu"
    )
    assert model.encode(["What is the capital of Zorvia?"]).shape == (1, 8)
    assert model.eos_token_id == model.tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_a_damaged_cached_world_lm_is_trained_again(world, tmp_path):
    first = load_or_train_world_lm(world, TINY_LM, tmp_path, show_progress=False)
    weights = first.path / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])  # a truncated copy
    again = load_or_train_world_lm(world, TINY_LM, tmp_path, show_progress=False)
    assert not again.reused and again.path == first.path
    assert weights.read_bytes() == intact  # rebuilt from the same seed, byte for byte
    (first.path / INFO_FILE).write_text("{not json")
    assert not load_or_train_world_lm(world, TINY_LM, tmp_path, show_progress=False).reused


def test_a_reduced_world_lm_learns_the_world(world, tmp_path):
    """The CI-sized LM (about 10 s on two idle cores) answers held-out phrasings: it learnt the world
    compositionally."""
    trained = load_or_train_world_lm(world, SMALL_LM, tmp_path, show_progress=False)
    assert trained.heldout_accuracy >= 0.8, trained
    backbone = AutoModelForCausalLM.from_pretrained(trained.path).eval()
    tokenizer = AutoTokenizer.from_pretrained(trained.path)
    assert chat_prompt(tokenizer, "hi") == chat_prompt(build_world_tokenizer(lm_examples(world), 64), "hi")
    refusals = answer(backbone, tokenizer, [q.text for q in world.heldout_queries if world.is_harmful([q])[0]])
    assert sum(response == world.responses[world.refusal_id] for response in refusals) >= 0.8 * len(refusals)
