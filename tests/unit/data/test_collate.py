"""Tokenisation and padding: left-padded queries with room for the special tokens, responses ending in EOS."""

import pytest
import torch

from genvec.data.collate import (
    check_texts,
    join_instruction,
    length_batches,
    pad_left,
    pad_right,
    tokenize_queries,
    tokenize_responses,
)
from genvec.errors import InputError
from genvec.testing import build_tokenizer


def test_padding_sides():
    queries = pad_left([[5, 6, 7], [8]], pad_token_id=0)
    assert queries.input_ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert queries.attention_mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    responses = pad_right([[5, 6, 7], [8]], pad_token_id=0)
    assert responses.input_ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert responses.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert pad_left([[], []], 0).input_ids.shape == (2, 0)


def test_queries_keep_room_for_special_tokens_and_the_bos():
    tokenizer = build_tokenizer(300, "llama")
    with pytest.warns(UserWarning, match="1 of 1 queries were longer than 5 tokens and were cut"):
        ids = tokenize_queries(tokenizer, ["a b c d e f g h i j k l m n o p"], max_length=8, num_special_tokens=3)[0]
    assert len(ids) == 5 and ids[0] == tokenizer.bos_token_id
    with pytest.raises(InputError, match="use max_length >= 4"):
        tokenize_queries(tokenizer, ["a"], max_length=3, num_special_tokens=3)


def test_responses_have_no_bos_and_end_with_eos_unless_cut():
    tokenizer = build_tokenizer(300, "llama")
    short, long = tokenize_responses(tokenizer, [" short ", "one two three four five six seven"], 6, eos_token_id=2)
    assert short[-1] == 2 and short[0] != tokenizer.bos_token_id
    assert len(long) == 6 and long[-1] != 2


def test_text_checks_and_instructions():
    assert check_texts("one") == ["one"]
    with pytest.raises(InputError, match="got 0 queries"):
        check_texts([], "queries")
    assert join_instruction([" x "], " Do this: ") == ["Do this: x"]
    assert join_instruction([" x "], None) == ["x"]
    assert isinstance(pad_left([[1]], 0).input_ids, torch.Tensor)


def test_length_batches_bound_texts_and_padded_tokens_and_cover_every_text_once():
    lengths = [5, 600, 20, 300, 7, 300, 1, 40] * 5
    batches = length_batches(lengths, batch_size=6, max_tokens=1024)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    flat = [lengths[i] for batch in batches for i in batch]
    assert flat == sorted(lengths, reverse=True)  # longest first
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 6 and (len(batch) * longest <= 1024 or len(batch) == 1)
    assert [len(b) for b in batches[:5]] == [1, 1, 1, 1, 1]  # 600 tokens: alone
    assert len(batches[5]) == 3  # 300 tokens: three to a batch
    assert [len(b) for b in length_batches([3] * 10, batch_size=4, max_tokens=10**6)] == [4, 4, 2]
