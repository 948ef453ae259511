"""The front door: how texts become model input (instruction or side, the one truncation policy, errors that name
the parameter and the index), and that every run on prepared inputs equals the plain methods."""

import dataclasses

import numpy as np
import pytest
import torch

from genvec import inference
from genvec.errors import InputError, InputTooLongError


def test_a_side_is_the_saved_instruction_and_an_instruction_is_taken_as_given(qwen3_model):
    saved = qwen3_model.config.model.instructions
    assert qwen3_model.prepare(["a"], side="query").instruction == saved["query"]
    assert qwen3_model.prepare(["a"], side="document").instruction == saved["document"]
    assert qwen3_model.prepare(["a"], instruction="Say:").instruction == "Say:"
    plain = qwen3_model.prepare(["  a  "])
    assert plain.instruction is None and plain.texts == ("  a  ",)
    assert plain.ids == qwen3_model.tokenizer(["a"], add_special_tokens=True)["input_ids"]
    assert plain.num_tokens == len(plain.ids[0]) and len(plain) == 1


@pytest.mark.parametrize(("kwargs", "param", "message"), [
    ({"side": "query", "instruction": "Say:"}, "instruction", "not both"),
    ({"side": "passage"}, "side", 'side must be "query" or "document", got \'passage\''),
    ({"instruction": 3}, "instruction", "instruction must be a string or None, got int"),
    ({"instruction": "bad \ud800"}, "instruction", "lone surrogate"),
    ({"instruction": " "}, "instruction", "empty or only white space"),
    ({"instruction": ""}, "instruction", "pass None"),
    ({"truncate": "drop"}, "truncate", 'truncate must be "cut" or "error", got \'drop\''),
    ({"max_length": 4}, "max_length", "cannot hold one text token plus the 4 special tokens"),
    ({"max_length": True}, "max_length", "max_length must be a positive integer"),
])
def test_a_bad_option_names_its_parameter(qwen3_model, kwargs, param, message):
    with pytest.raises(InputError, match=message) as refused:
        qwen3_model.prepare(["a"], **kwargs)
    assert refused.value.param == param


def test_a_side_the_model_saved_no_instruction_for_is_refused(qwen3_model):
    model_config = dataclasses.replace(qwen3_model.config.model, instructions={"query": "Q:"})
    qwen3_model.config = dataclasses.replace(qwen3_model.config, model=model_config)
    with pytest.raises(InputError, match="no saved document instruction") as refused:
        qwen3_model.encode(["a"], side="document")
    assert refused.value.param == "side"


def test_a_bad_text_names_its_index(qwen3_model):
    with pytest.raises(InputError, match=r"texts\[1\] is int") as refused:
        qwen3_model.prepare(["a", 7])
    assert (refused.value.param, refused.value.index) == ("texts", 1)
    with pytest.raises(InputError, match=r"input\[0\] .* lone surrogate") as surrogate:
        inference.prepare(qwen3_model, ["\udc00"], what="input")
    assert (surrogate.value.param, surrogate.value.index) == ("input", 0)


def test_long_texts_are_cut_and_counted_or_refused_with_their_index(qwen3_model):
    limit = inference.text_limit(qwen3_model)
    texts = ["short", "ice " * (limit + 3), "also short", "river " * (limit + 9)]
    inputs = qwen3_model.prepare(texts)
    assert inputs.cut == (1, 3) and [len(row) for row in inputs.ids][1::2] == [limit, limit]
    with pytest.raises(InputTooLongError, match=rf"texts\[1\] is longer than the {limit} tokens") as refused:
        qwen3_model.prepare(texts, truncate="error")
    assert (refused.value.param, refused.value.index) == ("texts", 1)
    with pytest.warns(UserWarning, match="2 of 4 texts were longer than the model reads and were cut"):
        qwen3_model.encode(texts)


def test_a_text_cut_to_its_first_characters_counts_as_cut(qwen3_model, monkeypatch):
    monkeypatch.setattr(inference, "CHARS_PER_TOKEN", 1)  # a limit of `limit` characters
    limit = inference.text_limit(qwen3_model)
    text = "x" * (limit + 1)  # over the character limit, yet few tokens once cut
    assert qwen3_model.prepare([text]).cut == (0,)
    with pytest.raises(InputTooLongError, match=r"texts\[0\] has .* characters, far more than"):
        qwen3_model.prepare([text], truncate="error")


def test_runs_on_prepared_inputs_equal_the_methods(qwen3_model):
    texts = ["where do polar bears live?", "How do rivers form?", "ice"]
    inputs = qwen3_model.prepare(texts, side="query")
    assert np.array_equal(inference.embed(qwen3_model, inputs), qwen3_model.encode_query(texts))
    assert np.array_equal(qwen3_model.encode(texts, side="query"), qwen3_model.encode_query(texts))
    normalized = inference.embed(qwen3_model, inputs, normalize=True)
    assert np.allclose(np.linalg.norm(normalized, axis=1), 1, atol=1e-6)
    assert np.allclose(inference.normalize_rows(inference.embed(qwen3_model, inputs)), normalized, atol=1e-7)
    states = inference.compress(qwen3_model, inputs)
    assert torch.equal(states, qwen3_model.compress(texts, side="query"))
    assert inference.decode(qwen3_model, inputs, max_new_tokens=3) == qwen3_model.decode(
        texts, side="query", max_new_tokens=3) == qwen3_model.decode(states=states, max_new_tokens=3)
    lens = inference.inspect(qwen3_model, qwen3_model.prepare(texts[:1]), top_k=2)
    assert lens.text == texts[0] and lens == qwen3_model.inspect(texts[0], top_k=2)
    with pytest.raises(InputError, match="inspect reads one text"):
        inference.inspect(qwen3_model, inputs)
    with pytest.raises(InputError, match="batch_size must be a positive integer") as refused:
        inference.embed(qwen3_model, inputs, batch_size=0)
    assert refused.value.param == "batch_size"


def test_decode_from_prepared_inputs_reads_back_with_their_instruction(qwen3_model):
    texts = ["where do polar bears live?", "ice"]
    inputs = qwen3_model.prepare(texts, instruction="Answer:")
    scored = inference.decode(qwen3_model, inputs, max_new_tokens=4, score=True)
    assert scored == qwen3_model.decode(texts, instruction="Answer:", max_new_tokens=4, score=True)
    decoded = [item.text for item in scored]
    assert np.allclose([item.score for item in scored], inference.round_trip_scores(
        qwen3_model, decoded, inference.embed(qwen3_model, inputs), instruction="Answer:"), atol=1e-6)
    with pytest.raises(InputError, match="prepared inputs carry their own instruction") as refused:
        inference.decode(qwen3_model, inputs, max_new_tokens=4, score=True, instruction="Answer:")
    assert refused.value.param == "instruction"
    states = inference.compress(qwen3_model, inputs)
    with pytest.raises(InputError, match="lone surrogate") as bad:  # refused before anything is generated
        inference.decode(qwen3_model, states, max_new_tokens=4, score=True, instruction="bad \ud800")
    assert bad.value.param == "instruction"


def test_decode_settings_name_their_parameter(qwen3_model):
    for kwargs, param in [({"max_new_tokens": 0}, "max_new_tokens"), ({"batch_size": False}, "batch_size"),
                          ({"do_sample": True, "top_p": 0}, "top_p"), ({"do_sample": True, "seed": -1}, "seed"),
                          ({"do_sample": True, "temperature": float("nan")}, "temperature"),
                          ({"do_sample": "yes"}, "do_sample"), ({"best_of": 3}, "best_of"),
                          ({"score": 1}, "score")]:
        with pytest.raises(InputError) as refused:
            qwen3_model.decode(["a"], **kwargs)
        assert refused.value.param == param, kwargs
    with pytest.raises(InputError, match="exactly one of texts") as both:
        qwen3_model.decode(["a"], states=torch.zeros(1, 2, qwen3_model.hidden_size))
    assert both.value.param == "texts"


def test_rerank_orders_documents_by_the_cosine_of_query_and_document_embeddings(qwen3_model):
    documents = ["the sea is deep", "a cat sleeps", "ships cross the sea", "bread and butter"]
    query = qwen3_model.encode_query(["what lies under the sea?"], normalize=True)[0]
    passages = qwen3_model.encode_document(documents, normalize=True)
    cosines = passages @ query
    ranked = qwen3_model.rerank("what lies under the sea?", documents)
    assert [hit.index for hit in ranked] == sorted(range(4), key=lambda i: -cosines[i])
    np.testing.assert_allclose([hit.score for hit in ranked], sorted(cosines, reverse=True), atol=1e-5)
    assert qwen3_model.rerank("what lies under the sea?", documents, top_n=2) == ranked[:2]
    # an instruction replaces the query side's; documents keep theirs
    told = qwen3_model.encode(["what lies under the sea?"], instruction="Refute:", normalize=True)[0]
    hits = qwen3_model.rerank("what lies under the sea?", documents, instruction="Refute:")
    np.testing.assert_allclose(sorted(hit.score for hit in hits), sorted(passages @ told), atol=1e-5)


def test_rank_keeps_the_given_order_for_equal_scores_and_refuses_a_bad_top_n(qwen3_model):
    ranked = inference.rank(np.array([0.5, 0.9, 0.5, 0.1], dtype=np.float32))
    assert [hit.index for hit in ranked] == [1, 0, 2, 3]
    assert [hit.index for hit in inference.rank(np.array([0.5, 0.9, 0.5]), top_n=10)] == [1, 0, 2]
    for top_n in (0, -1, 1.5, True):
        with pytest.raises(InputError) as refused:
            qwen3_model.rerank("q", ["a", "b"], top_n=top_n)
        assert refused.value.param == "top_n"
    with pytest.raises(InputError) as refused:
        qwen3_model.rerank(["q"], ["a"])
    assert refused.value.param == "query"
    with pytest.raises(InputError) as refused:
        qwen3_model.rerank("q", ["a", 3])
    assert (refused.value.param, refused.value.index) == ("documents", 1)
