"""Tokenisation and padding: left-padded queries with room for the special tokens, responses ending in EOS."""

import pytest
import torch

from genvec.data.collate import check_texts, join_instruction, pad_left, pad_right, tokenize_queries, tokenize_responses
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
    with pytest.warns(UserWarning, match="1 of 1 texts reached 5 tokens"):
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
