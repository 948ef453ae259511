"""Decoding and the logit lens: the KV-cache loop against a full recompute and against `generate`, batching, per-row
stopping, sampling controls, and the logit lens against the LM head applied by hand."""

import json

import numpy as np
import pytest
import torch

from genvec.data.collate import pad_left
from genvec.decode import Sampling, _next_token, generate_token_ids
from genvec.errors import InputError

TEXTS = [
    "Where do polar bears live?",
    "What is the capital city of the state by the river, and how many people live there after the war?",
    "Train a vector model.",
    "ice",
]


@torch.no_grad()
def full_recompute_greedy(backbone, prompt: torch.Tensor, num_tokens: int) -> list[list[int]]:
    """The reference loop: re-run the whole sequence for every token, no cache (what the official code does)."""
    inputs = prompt
    tokens = []
    for _ in range(num_tokens):
        next_ids = backbone(inputs_embeds=inputs, use_cache=False).logits[:, -1].argmax(-1)  # (B,)
        tokens.append(next_ids)
        inputs = torch.cat([inputs, backbone.get_input_embeddings()(next_ids)[:, None]], 1)
    return torch.stack(tokens, 1).tolist()


def test_cache_decoding_equals_full_recompute_and_generate(tiny_model):
    prompt = tiny_model.compress(TEXTS)
    ours = generate_token_ids(tiny_model.backbone, prompt, max_new_tokens=24, end_of_sequence_ids=[])
    assert ours == full_recompute_greedy(tiny_model.backbone, prompt, 24)
    generated = tiny_model.backbone.generate(
        inputs_embeds=prompt,
        attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long),
        max_new_tokens=24,
        do_sample=False,
        eos_token_id=None,
        pad_token_id=tiny_model.pad_token_id,
    )
    assert generated.tolist() == ours
    assert len({tuple(row) for row in ours}) > 1  # the prompts make a difference


def _stopping_token(rows: list[list[int]]) -> tuple[int, int]:
    """A token that row 0 first emits after a few steps and the last row emits later or never: (token, step)."""
    for step, token in enumerate(rows[0][2:], start=2):
        if token not in rows[0][:step] and token not in rows[-1][: step + 2]:
            return token, step
    raise AssertionError(f"no usable stopping token in {rows}")


def test_each_row_stops_at_its_end_of_sequence_token(qwen3_model):
    prompt = qwen3_model.compress(TEXTS)
    unstopped = generate_token_ids(qwen3_model.backbone, prompt, max_new_tokens=16, end_of_sequence_ids=[])
    token, step = _stopping_token(unstopped)
    stopped = generate_token_ids(qwen3_model.backbone, prompt, max_new_tokens=16, end_of_sequence_ids=[token])
    for full, cut in zip(unstopped, stopped):
        expected = full[: full.index(token)] if token in full else full
        assert cut == expected
    assert len(stopped[0]) == step and len(stopped[-1]) > step


def test_batched_decoding_equals_one_by_one(qwen3_model):
    prompt = qwen3_model.compress(TEXTS)
    unstopped = generate_token_ids(qwen3_model.backbone, prompt, max_new_tokens=16, end_of_sequence_ids=[])
    token, _ = _stopping_token(unstopped)
    # The backbone now declares this token as an end of sequence, so decode() stops each row on it.
    qwen3_model.backbone.generation_config.eos_token_id = [token]
    batched = qwen3_model.decode(TEXTS, max_new_tokens=16, batch_size=len(TEXTS))
    one_by_one = [qwen3_model.decode([text], max_new_tokens=16)[0] for text in TEXTS]
    in_pairs = qwen3_model.decode(TEXTS, max_new_tokens=16, batch_size=3)
    assert batched == one_by_one == in_pairs
    assert len(set(batched)) > 1


def test_decoded_text_strips_special_tokens_and_the_end_token(qwen3_model):
    tokenizer = qwen3_model.tokenizer
    prompt = qwen3_model.compress(TEXTS)
    rows = generate_token_ids(qwen3_model.backbone, prompt, max_new_tokens=12, end_of_sequence_ids=[])
    special = tokenizer.convert_tokens_to_ids("<|im_start|>")
    # Make the LM head prefer <|im_start|> where it preferred the first generated token: it now shows up in the
    # generated ids, but never in the text.
    with torch.no_grad():
        qwen3_model.backbone.lm_head.weight[special] = 1.5 * qwen3_model.backbone.lm_head.weight[rows[0][0]]
    rows = generate_token_ids(qwen3_model.backbone, prompt, max_new_tokens=12, end_of_sequence_ids=[])
    assert any(special in row for row in rows)
    texts = qwen3_model.decode(states=prompt, max_new_tokens=12)
    assert texts == tokenizer.batch_decode(rows, skip_special_tokens=True)
    assert not any("<|im_start|>" in text for text in texts)


def test_states_are_used_as_given(qwen3_model):
    states = qwen3_model.compress(TEXTS)
    from_texts = qwen3_model.decode(TEXTS, max_new_tokens=8)
    assert qwen3_model.decode(states=states, max_new_tokens=8) == from_texts
    assert qwen3_model.decode(states=states.numpy(), max_new_tokens=8) == from_texts
    assert qwen3_model.decode(states=states[1], max_new_tokens=8) == from_texts[1:2]  # (K, H): a batch of one
    edited = states.clone()
    edited[0] = states[1]
    assert qwen3_model.decode(states=edited, max_new_tokens=8)[0] == from_texts[1]


def test_sampling_is_seeded_and_top_p_keeps_the_nucleus(qwen3_model):
    greedy = qwen3_model.decode(TEXTS, max_new_tokens=10)
    first = qwen3_model.decode(TEXTS, max_new_tokens=10, do_sample=True, temperature=1.5, seed=3)
    again = qwen3_model.decode(TEXTS, max_new_tokens=10, do_sample=True, temperature=1.5, seed=3)
    other = qwen3_model.decode(TEXTS, max_new_tokens=10, do_sample=True, temperature=1.5, seed=4)
    assert first == again and first != other and first != greedy
    # A tiny nucleus holds only the most probable token: sampling becomes greedy.
    assert qwen3_model.decode(TEXTS, max_new_tokens=10, do_sample=True, top_p=1e-6, seed=0) == greedy


def test_top_p_sampling_draws_only_from_the_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).repeat(2000, 1)
    generator = torch.Generator().manual_seed(0)
    drawn = _next_token(logits, Sampling(top_p=0.8), generator)
    counts = torch.bincount(drawn, minlength=4).float() / len(drawn)
    assert counts[2:].sum() == 0  # 0.5 + 0.3 reach 0.8: the two least probable tokens are cut
    assert abs(counts[0] - 0.5 / 0.8) < 0.05


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of texts"),
        ({"texts": ["a"], "states": torch.zeros(1, 2, 64)}, "exactly one of texts"),
        ({"states": torch.zeros(1, 2, 32)}, r"states has shape \(1, 2, 32\); expected \(B, K, 64\)"),
        ({"states": torch.zeros(1, 2, 64, dtype=torch.long)}, "floating-point"),
        ({"texts": ["a"], "max_new_tokens": 0}, "max_new_tokens must be a positive integer, got 0"),
        ({"texts": ["a"], "batch_size": 0}, "batch_size must be a positive integer"),
        ({"texts": ["a"], "do_sample": True, "temperature": 0.0}, "temperature must be at least 0.0001, got 0.0"),
        ({"texts": ["a"], "do_sample": True, "top_p": 1.5}, r"top_p must be in \(0, 1\]"),
        ({"texts": []}, "got 0 texts"),
    ],
)
def test_decode_rejects_bad_arguments(qwen3_model, kwargs, message):
    with pytest.raises(InputError, match=message):
        qwen3_model.decode(**kwargs)


# ------------------------------------------------------------------------------------------------- round trip


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two (B, D) arrays, by hand."""
    return (first * second).sum(1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))


def test_the_round_trip_score_is_decode_then_encode_then_cosine(tiny_model):
    decoded = tiny_model.decode(TEXTS, side="query", max_new_tokens=12, score=True)
    texts = tiny_model.decode(TEXTS, side="query", max_new_tokens=12)  # the default still returns strings
    assert [item.text for item in decoded] == texts and all(item.candidates == () for item in decoded)
    by_hand = cosines(tiny_model.encode_query(TEXTS), tiny_model.encode_query(texts))
    assert np.allclose([item.score for item in decoded], by_hand, atol=1e-5)
    assert np.ptp(by_hand) > 1e-3  # the texts' round trips differ: the score is not a constant


def test_states_are_scored_against_the_embedding_they_give_read_back_as_told(qwen3_model):
    states = qwen3_model.compress(TEXTS, side="query")
    original = qwen3_model.encode_query(TEXTS)  # the embedding of these states: A of their mean
    plain = qwen3_model.decode(states=states, max_new_tokens=10, score=True)
    texts = [item.text for item in plain]
    # States do not say which instruction they were read with: without one the decoded texts are read back bare ...
    assert np.allclose([item.score for item in plain], cosines(original, qwen3_model.encode(texts)), atol=1e-5)
    # ... and with a side or an instruction, with that one; from texts, with theirs.
    for read_back in ({"side": "query"}, {"instruction": qwen3_model.config.model.instructions["query"]}):
        scored = qwen3_model.decode(states=states, max_new_tokens=10, score=True, **read_back)
        assert [item.text for item in scored] == texts
        assert np.allclose([item.score for item in scored], cosines(original, qwen3_model.encode_query(texts)),
                           atol=1e-5)
    from_texts = qwen3_model.decode(TEXTS, side="query", max_new_tokens=10, score=True)
    assert np.allclose([item.score for item in from_texts], [item.score for item in scored], atol=1e-5)


def test_a_text_that_decodes_to_nothing_is_scored_as_the_empty_text_reads(qwen3_model):
    prompt = qwen3_model.compress(TEXTS)
    first = generate_token_ids(qwen3_model.backbone, prompt, max_new_tokens=1, end_of_sequence_ids=[])[0][0]
    qwen3_model.backbone.generation_config.eos_token_id = [first]  # row 0 now ends before its first token
    decoded = qwen3_model.decode(TEXTS, max_new_tokens=6, score=True)
    assert decoded[0].text == ""
    by_hand = cosines(qwen3_model.encode(TEXTS[:1]), qwen3_model.encode([""]))
    assert decoded[0].score == pytest.approx(float(by_hand[0]), abs=1e-5)


def test_best_of_keeps_the_sampled_candidate_with_the_best_hand_computed_round_trip(qwen3_model):
    states = qwen3_model.compress(TEXTS)
    sampling = {"max_new_tokens": 8, "do_sample": True, "temperature": 2.0, "seed": 11}
    best = qwen3_model.decode(states=states, best_of=3, score=True, **sampling)
    # The candidates are the samples of each state three times over, drawn as one batch (adjacent rows).
    drawn = qwen3_model.decode(states=states.repeat_interleave(3, 0), **sampling)
    original = qwen3_model.encode(TEXTS)
    picks = []
    for index, item in enumerate(best):
        candidates = drawn[3 * index : 3 * index + 3]
        assert [candidate.text for candidate in item.candidates] == candidates
        by_hand = cosines(original[[index] * 3], qwen3_model.encode(candidates))
        assert np.allclose([candidate.score for candidate in item.candidates], by_hand, atol=1e-5)
        picks.append(int(np.argmax(by_hand)))
        assert item.text == candidates[picks[-1]] and item.score == pytest.approx(by_hand.max(), abs=1e-5)
    assert any(pick != 0 for pick in picks)  # the choice is made, not the first draw taken
    assert qwen3_model.decode(states=states, best_of=3, **sampling) == [item.text for item in best]


@pytest.mark.parametrize(("kwargs", "param", "message"), [
    ({"best_of": 2}, "best_of", "best_of=2 needs sampling: greedy decoding gives the same text every time"),
    ({"best_of": 0, "do_sample": True}, "best_of", "best_of must be a positive integer, got 0"),
    ({"best_of": 2.0, "do_sample": True}, "best_of", "best_of must be a positive integer"),
    ({"score": "yes"}, "score", "score must be True or False, got 'yes'"),
])
def test_bad_round_trip_settings_name_their_parameter(qwen3_model, kwargs, param, message):
    with pytest.raises(InputError, match=message) as refused:
        qwen3_model.decode(["a question"], max_new_tokens=4, **kwargs)
    assert refused.value.param == param


# ------------------------------------------------------------------------------------------------- logit lens


def test_logit_lens_matches_the_lm_head_by_hand(tiny_model):
    model = tiny_model  # N = 4: two thought tokens, then two compression tokens
    lens = model.inspect(TEXTS[0], top_k=5)
    assert [entry.kind for entry in lens.special_tokens] == ["thought", "thought", "compression", "compression"]
    assert [entry.index for entry in lens.special_tokens] == [1, 2, 3, 4]
    ids = model.tokenizer(TEXTS[0])["input_ids"]

    with torch.no_grad():
        special = model.special_states(pad_left([ids], model.pad_token_id))[0]  # (N, H)
        compression = model.compression_states(special[None])[0]  # (K, H)
    head = model.backbone.get_output_embeddings().weight
    for entry, state in zip(lens.special_tokens, special):
        probabilities = torch.softmax(state @ head.T, -1)
        expected = probabilities.topk(5)
        assert [t.token_id for t in entry.hidden_state] == expected.indices.tolist()
        np.testing.assert_allclose([t.probability for t in entry.hidden_state], expected.values, atol=1e-6)
        assert entry.hidden_state[0].token == model.tokenizer.decode([expected.indices[0].item()])
    for entry, state in zip(lens.special_tokens[2:], compression):
        expected = torch.softmax(state @ head.T, -1).topk(5)
        assert [t.token_id for t in entry.compression_state] == expected.indices.tolist()
    assert lens.special_tokens[0].compression_state is None and lens.special_tokens[0].decoder_prediction is None
    # (c) at the last compression token is the distribution of the first decoded token.
    first = generate_token_ids(model.backbone, compression[None], max_new_tokens=1, end_of_sequence_ids=[])[0][0]
    assert lens.special_tokens[-1].decoder_prediction[0].token_id == first


def test_logit_lens_serialises_and_prints(qwen3_model):
    lens = qwen3_model.inspect("polar bears", top_k=3)
    document = json.loads(json.dumps(lens.to_dict()))
    assert document["text"] == "polar bears" and len(document["special_tokens"]) == 4
    probabilities = [t["probability"] for t in document["special_tokens"][-1]["hidden_state"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < probabilities[-1] <= probabilities[0] <= 1
    table = lens.to_table()
    assert "special token 4 (compression)" in table and "next token from z" in table
    assert len(table.splitlines()) == 1 + 4 * 6  # text line; per token: blank, title, header, 3 ranks
    with pytest.raises(InputError, match="top_k must be an integer between 1 and the vocabulary size"):
        qwen3_model.inspect("polar bears", top_k=0)


def test_non_finite_states_and_bad_sampling_arguments_are_refused(qwen3_model):
    states = torch.full((1, 2, qwen3_model.hidden_size), float("nan"))
    with pytest.raises(InputError, match=r"states rows \[0\] hold NaN or infinite values"):
        qwen3_model.decode(states=states, max_new_tokens=4)
    good = qwen3_model.compress(["a question"])
    for arguments, message in (({"seed": "abc"}, "seed must be an integer"),
                               ({"seed": 2**70}, "seed must be an integer"),
                               ({"temperature": "1.0"}, "temperature must be a finite number"),
                               ({"top_p": float("nan")}, "top_p must be a finite number")):
        with pytest.raises(InputError, match=message):
            qwen3_model.decode(states=good, max_new_tokens=4, do_sample=True, **arguments)


def test_max_new_tokens_is_bounded(qwen3_model):
    with pytest.raises(InputError, match="max_new_tokens must be at most 32768, got 100000"):
        qwen3_model.decode(["a question"], max_new_tokens=100_000)
