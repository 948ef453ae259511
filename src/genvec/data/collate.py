"""Tokenisation and batching for the encoder side (queries) and the decoder side (responses).

- Queries are tokenised with the tokenizer's own special tokens (a Llama BOS stays), cut to leave room for the N
  special tokens, and left-padded, so that the special tokens, appended by the model, are the last positions of
  every row (paper section 3.2). The text is cut, never the special tokens.
- Responses are tokenised without special tokens and followed by the tokenizer's real end-of-sequence token
  (never a literal string), then right-padded: the decoder input is `[z ; response ; pads]` and every row puts its
  prompt at the same positions (design decision 3, docs/design.md).

Shapes: B batch, L query length, T response length.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from genvec.errors import InputError

# Padded tokens per inference batch (texts x longest) on a CPU, and on an accelerator. Measured on 2 CPU cores,
# SmolLM2-135M over 256 MMLU questions (up to 591 tokens): batches of 32 took 80 s uncapped, 38 s capped at 4,096
# (attention over a few long texts padded across a large batch dominated). 32 x 512 leaves GPU batches as they were.
CPU_BATCH_TOKENS = 4096
ACCELERATOR_BATCH_TOKENS = 32 * 512


@dataclass
class QueryBatch:
    """Left-padded query tokens, without the special tokens (the model appends them)."""

    input_ids: torch.Tensor  # (B, L) int64
    attention_mask: torch.Tensor  # (B, L) int64, 0 on the left pads

    def to(self, device: torch.device) -> "QueryBatch":
        return QueryBatch(self.input_ids.to(device), self.attention_mask.to(device))


@dataclass
class ResponseBatch:
    """Right-padded response tokens followed by the end-of-sequence token."""

    input_ids: torch.Tensor  # (B, T) int64
    attention_mask: torch.Tensor  # (B, T) int64, 0 on the right pads

    def to(self, device: torch.device) -> "ResponseBatch":
        return ResponseBatch(self.input_ids.to(device), self.attention_mask.to(device))


def check_texts(texts: object, what: str = "texts") -> list[str]:
    """Return `texts` as a list of strings, or raise an `InputError` that says what was wrong.

    A single string is accepted as a list of one.
    """
    if isinstance(texts, str):
        return [texts]
    if not isinstance(texts, (list, tuple)):
        raise InputError(f"{what} must be a list of strings, got {type(texts).__name__}.", param=what)
    if len(texts) == 0:
        raise InputError(f"got 0 {what}; pass a non-empty list of strings.", param=what)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"{what}[{index}] is {type(text).__name__} ({text!r:.40}); every item must be a string.",
                             param=what, index=index)
        if not _is_encodable(text):
            raise InputError(
                f"{what}[{index}] ({text!r:.40}) is not valid Unicode text (it holds a lone surrogate, e.g. from "
                "bytes that were not UTF-8); decode your input as UTF-8 first.", param=what, index=index,
            )
    return list(texts)


def _is_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def join_instruction(texts: list[str], instruction: str | None) -> list[str]:
    """`instruction.strip() + " " + text.strip()` for each text; texts are only stripped without an instruction."""
    if instruction is not None and not isinstance(instruction, str):
        raise InputError(f"instruction must be a string or None, got {type(instruction).__name__} "
                         f"({instruction!r:.40}).", param="instruction")
    if instruction is not None and not _is_encodable(instruction):
        raise InputError(f"instruction ({instruction!r:.40}) is not valid Unicode text (it holds a lone surrogate); "
                         "decode it as UTF-8 first.", param="instruction")
    if instruction is None or not instruction.strip():
        return [text.strip() for text in texts]
    prefix = instruction.strip() + " "
    return [prefix + text.strip() for text in texts]


def tokenize_queries(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, num_special_tokens: int
) -> list[list[int]]:
    """Token ids of each training query, cut to `max_length - num_special_tokens` tokens (room for the special
    tokens) as `cut_to_length` cuts them, with a warning that says how many were cut."""
    max_text_tokens = max_length - num_special_tokens
    if max_text_tokens < 1:
        raise InputError(
            f"max_length={max_length} cannot hold one text token plus the {num_special_tokens} special tokens; "
            f"use max_length >= {num_special_tokens + 1}.", param="max_length",
        )
    ids, cut = cut_to_length(tokenizer, texts, max_text_tokens)
    if cut:
        warnings.warn(
            f"{len(cut)} of {len(texts)} queries were longer than {max_text_tokens} tokens and were cut "
            f"(max_length={max_length} includes {num_special_tokens} special tokens); raise max_length to keep more.",
            stacklevel=2,
        )
    return ids


def cut_to_length(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_text_tokens: int
) -> tuple[list[list[int]], list[int]]:
    """Token ids of each text (with the tokenizer's own special tokens) and the indices of the texts that were
    longer than `max_text_tokens` and were cut to their first `max_text_tokens` tokens.

    The tokenizer stops one token past the limit, so a text that fits exactly is not counted as cut, and a tokenizer
    that appends a token at the end (an EOS) loses it with the cut text's tail, as a plain slice would.
    """
    ids = tokenizer(texts, add_special_tokens=True, truncation=True, max_length=max_text_tokens + 1)["input_ids"]
    cut = [index for index, row in enumerate(ids) if len(row) > max_text_tokens]
    for index in cut:
        ids[index] = ids[index][:max_text_tokens]
    return ids, cut


def tokenize_responses(
    tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int, eos_token_id: int
) -> list[list[int]]:
    """Token ids of each response followed by `eos_token_id`; a response longer than `max_length` is cut (no EOS)."""
    ids = tokenizer([text.strip() for text in texts], add_special_tokens=False)["input_ids"]
    return [row + [eos_token_id] if len(row) < max_length else row[:max_length] for row in ids]


def pad_left(sequences: list[list[int]], pad_token_id: int) -> QueryBatch:
    """Left-pad token id lists into a `QueryBatch`."""
    length = max(len(row) for row in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for index, row in enumerate(sequences):
        if row:
            input_ids[index, length - len(row) :] = torch.tensor(row, dtype=torch.long)
            attention_mask[index, length - len(row) :] = 1
    return QueryBatch(input_ids, attention_mask)


def pad_right(sequences: list[list[int]], pad_token_id: int) -> ResponseBatch:
    """Right-pad token id lists into a `ResponseBatch`."""
    length = max(len(row) for row in sequences)
    input_ids = torch.full((len(sequences), length), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for index, row in enumerate(sequences):
        input_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[index, : len(row)] = 1
    return ResponseBatch(input_ids, attention_mask)


def batch_token_budget(device: torch.device) -> int:
    """The padded tokens an inference batch may hold on `device`."""
    return CPU_BATCH_TOKENS if device.type == "cpu" else ACCELERATOR_BATCH_TOKENS


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int) -> list[np.ndarray]:
    """Indices of texts in batches, longest first: each batch holds at most `batch_size` texts and at most
    `max_tokens` padded tokens (texts x its longest; a text longer than that goes alone). Long texts go a few to a
    batch and short ones many, so neither padding nor a few long texts' attention dominates the time."""
    order = np.argsort([-n for n in lengths], kind="stable")
    batches, start = [], 0
    while start < len(order):
        size = max(1, min(batch_size, max_tokens // max(1, lengths[order[start]])))
        batches.append(order[start : start + size])
        start += size
    return batches
