"""Every place a benchmark reaches below genvec's public model API, one small function each.

The measurements compare genvec's public calls (`encode`, `compress`, a training step) with bare backbone work on
the same token ids, and one switches a genvec mechanism off to time it. For that they need a few things behind the
front door; when genvec moves them, repoint the function here and nothing else. Where issue 24 moved something
(text reading from `GenVecModel` into `genvec.inference`), the function finds it in either place, so the same
measurement code runs on genvec before and after that change and the two can be compared.
"""

import contextlib
import importlib
from collections.abc import Iterator


def query_token_ids(model, texts: list[str]) -> list[list[int]]:
    """Each text's token ids as training reads a query (cut to leave room for the special tokens of a 512-token
    input), without the special tokens; for the bare forward passes the measurements compare with."""
    from genvec.data.collate import tokenize_queries

    return tokenize_queries(model.tokenizer, texts, 512, model.num_special_tokens)


def instruction_token_ids(model, texts: list[str], instruction: str) -> list[list[int]]:
    """Each `instruction + text`'s token ids as `encode` reads them (for counting the tokens they share)."""
    if hasattr(model, "prepare"):  # genvec.inference
        return model.prepare(texts, instruction=instruction).ids
    return model.tokenize(texts, instruction=instruction)


@contextlib.contextmanager
def shared_prefix_minimum(minimum: int) -> Iterator[None]:
    """Inside this block `encode` computes a shared instruction prefix once only from `minimum` tokens on; a huge
    `minimum` switches the prefix cache off (the plain path)."""
    owner = _shared_prefix_owner()
    default = owner.MIN_SHARED_PREFIX
    owner.MIN_SHARED_PREFIX = minimum
    try:
        yield
    finally:
        owner.MIN_SHARED_PREFIX = default


def default_shared_prefix_minimum() -> int:
    """The shortest shared prefix `encode` computes once by default."""
    return _shared_prefix_owner().MIN_SHARED_PREFIX


def _shared_prefix_owner():
    """The module whose MIN_SHARED_PREFIX `encode` reads: genvec.inference, or genvec.model before it existed."""
    for name in ("genvec.inference", "genvec.model"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if hasattr(module, "MIN_SHARED_PREFIX"):
            return module
    raise RuntimeError("neither genvec.inference nor genvec.model defines MIN_SHARED_PREFIX; repoint "
                       "benchmarks/internals.py to where encode's shared-prefix threshold lives now")


def decode_token_ids(model, prompt, max_new_tokens: int) -> list[list[int]]:
    """genvec's KV-cache decoding loop from compression states `prompt` (B, K, H), greedy, with no end-of-sequence
    id (every row generates exactly `max_new_tokens`)."""
    from genvec.decode import generate_token_ids

    return generate_token_ids(model.backbone, prompt, max_new_tokens=max_new_tokens, end_of_sequence_ids=[])


def attn_implementation(model) -> str:
    """The attention kernel transformers chose for the backbone (a private attribute of its config)."""
    return model.backbone.config._attn_implementation
