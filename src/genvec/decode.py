"""Read what an embedding holds: decode compression states to text, and the logit lens of the special tokens.

Decoding (paper section 3.6, design decision 7 in docs/design.md): the compression states z (B, K, H) are the
frozen LLM's input
embeddings, its decoder prompt; the LLM then generates a response from them. Here generation keeps a KV cache (the
reference implementation re-runs the whole sequence for every token), runs batched, computes logits only for the
last position, and stops each row at any end-of-sequence id the backbone declares (generation config and
tokenizer). Every row's prompt has exactly K positions, so the batch needs no padding; a row that has finished is
dropped from the batch and its cache, so long rows do not make short ones pay.

Logit lens (paper section 8.4): for each special token, the LM head applied to (a) its final hidden state and
(b) its compression state z. z is an *input* embedding, not a hidden state; the head is applied to it directly,
without the final norm, as the paper's latent view does (with tied embeddings this ranks tokens by the dot product
of z with their input embeddings). (c), labelled separately, is what the LLM predicts next when it reads z as its
prompt: at the last compression token, the distribution of the first decoded token.

Round trip (decode fidelity): a decoded text read back by the same model should give the embedding it was decoded
from; the cosine between the two is its score (`Decoded`), and an n-best decode samples n candidates per embedding
and keeps the one with the best round trip. `genvec.inference.decode` computes both (it owns the model); this file
holds the result type and the checks of the settings.

This file does not do beam search, repetition penalties or streaming, and never changes the model. It works on the
backbone, its tokenizer and tensors alone; `genvec.inference` computes the states and calls it.

Shapes: B batch, K compression tokens, N special tokens, H hidden size, V vocabulary.
"""

import dataclasses
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from genvec import backbone as backbones
from genvec.config.sections import MAX_NEW_TOKENS
from genvec.errors import InputError, check_positive_int

logger = logging.getLogger(__name__)

# Below this a temperature samples the most probable token every time (greedy decoding by another name), and near
# float32's smallest numbers logits / temperature overflows to inf and the softmax to NaN.
MIN_TEMPERATURE = 1e-4


@dataclass(frozen=True)
class Sampling:
    """How the next token is chosen when sampling: temperature, nucleus (top-p) and an optional seed."""

    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True)
class Decoded:
    """A decoded text with its round-trip score (`decode(..., score=True)`)."""

    text: str
    score: float
    """The round trip: cosine between the embedding the text was decoded from and the embedding of `text` read back by
    the same model with the same instruction; 1 means the text gives the model back its embedding exactly."""
    candidates: tuple["Decoded", ...] = ()
    """With `best_of` > 1: every sampled candidate, in the order drawn, each with its score (`text` is the first of
    the highest); empty otherwise."""


def decode_prompts(
    backbone: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt_batches: Iterable[torch.Tensor],
    *,
    max_new_tokens: int,
    sampling: Sampling | None = None,
) -> list[str]:
    """The text the frozen LLM generates from each compression state; `GenVecModel.decode` documents the choices.

    Args:
        backbone: the causal LM.
        tokenizer: its tokenizer (for the end-of-sequence ids and to turn tokens into text).
        prompt_batches: (b, K, H) compression states, batch after batch (a generator is consumed lazily, so texts
            can be compressed one batch at a time).
        max_new_tokens: the most tokens generated per row.
        sampling: None is greedy decoding.

    Returns:
        One string per row, in order, special tokens removed.
    """
    end_ids = backbones.end_of_sequence_ids(tokenizer, backbone)
    weight = backbone.get_input_embeddings().weight
    generator = _generator(sampling, weight.device)
    decoded: list[str] = []
    for prompts in prompt_batches:
        token_rows = generate_token_ids(
            backbone,
            prompts.to(weight.device, weight.dtype),
            max_new_tokens=max_new_tokens,
            end_of_sequence_ids=end_ids,
            sampling=sampling,
            generator=generator,
        )
        decoded += tokenizer.batch_decode(token_rows, skip_special_tokens=True)
    return decoded


@torch.no_grad()
def generate_token_ids(
    backbone: PreTrainedModel,
    prompt_embeddings: torch.Tensor,
    *,
    max_new_tokens: int,
    end_of_sequence_ids: list[int],
    sampling: Sampling | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Generate from a batch of prompts given as input embeddings, with a KV cache.

    Args:
        backbone: the causal LM.
        prompt_embeddings: (B, K, H) in the backbone's dtype and on its device; no padding.
        max_new_tokens: the most tokens generated per row.
        end_of_sequence_ids: a row stops at the first of these (not included in its output); [] never stops early.
        sampling: None for greedy (argmax), else temperature / top-p sampling.
        generator: random generator for sampling, on the prompts' device.

    Returns:
        B lists of generated token ids, without the end-of-sequence token.
    """
    batch_size = prompt_embeddings.shape[0]
    device = prompt_embeddings.device
    cache = DynamicCache(config=backbone.config)
    output = backbone(inputs_embeds=prompt_embeddings, cache=cache, use_cache=True, logits_to_keep=1)
    end_ids = set(end_of_sequence_ids)
    rows: list[list[int]] = [[] for _ in range(batch_size)]
    active = list(range(batch_size))  # the original row of each row still in the batch
    for step in range(max_new_tokens):
        next_ids = _next_token(output.logits[:, -1], sampling, generator)  # (b,)
        token_ids = next_ids.tolist()  # the step's one device-to-host copy
        ended = [token_id in end_ids for token_id in token_ids]
        for row, token_id, has_ended in zip(active, token_ids, ended):
            if not has_ended:
                rows[row].append(token_id)
        if step == max_new_tokens - 1 or all(ended):
            break
        if any(ended):
            # Finished rows leave the batch and the cache: every remaining row has the same length, so no mask.
            kept = [index for index, has_ended in enumerate(ended) if not has_ended]
            keep = torch.tensor(kept, device=device)  # (b',)
            cache.batch_select_indices(keep)
            next_ids = next_ids[keep]
            active = [active[index] for index in kept]
        output = backbone(input_ids=next_ids[:, None], cache=cache, use_cache=True, logits_to_keep=1)
    return rows


def _next_token(
    logits: torch.Tensor, sampling: Sampling | None, generator: torch.Generator | None
) -> torch.Tensor:
    """(b, V) logits -> (b,) token ids: argmax, or a draw from the temperature-scaled, top-p-truncated softmax."""
    if sampling is None:
        return logits.argmax(-1)
    probabilities = torch.softmax(logits.float() / sampling.temperature, dim=-1)  # (b, V)
    if sampling.top_p < 1.0:
        sorted_probabilities, order = probabilities.sort(dim=-1, descending=True)
        # Keep the smallest prefix whose mass reaches top_p: drop a token when the mass before it already does.
        outside = sorted_probabilities.cumsum(-1) - sorted_probabilities >= sampling.top_p
        outside[:, 0] = False  # the most probable token always stays (a top_p that is 0 in float32 keeps it alone)
        sorted_probabilities = sorted_probabilities.masked_fill(outside, 0.0)
        probabilities = torch.zeros_like(probabilities).scatter(-1, order, sorted_probabilities)
    return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)


def _generator(sampling: Sampling | None, device: torch.device) -> torch.Generator | None:
    if sampling is None or sampling.seed is None:
        return None
    return torch.Generator(device=device).manual_seed(sampling.seed)


def check_decode_arguments(max_new_tokens: object, sampling: Sampling | None, batch_size: object, *,
                           best_of: object = 1, score: object = False) -> None:
    """Refuse decode settings that generation does not accept, before any work; each error names its parameter."""
    check_positive_int(max_new_tokens, "max_new_tokens")
    if max_new_tokens > MAX_NEW_TOKENS:
        raise InputError(f"max_new_tokens must be at most {MAX_NEW_TOKENS}, got {max_new_tokens}.",
                         param="max_new_tokens")
    check_positive_int(batch_size, "batch_size")
    if not isinstance(score, bool):
        raise InputError(f"score must be True or False, got {score!r:.40}.", param="score")
    check_positive_int(best_of, "best_of")
    if best_of > 1 and sampling is None:
        raise InputError(f"best_of={best_of} needs sampling: greedy decoding gives the same text every time; pass "
                         "do_sample=True (with a temperature, top_p and seed as you like), or best_of=1.",
                         param="best_of")
    if sampling is None:
        return
    for name in ("temperature", "top_p"):
        _check_finite(getattr(sampling, name), name)
    seed = sampling.seed
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63):
        raise InputError(f"seed must be an integer between 0 and 2**63 - 1 (or None), got {seed!r}.", param="seed")
    if not sampling.temperature >= MIN_TEMPERATURE:
        raise InputError(f"temperature must be at least {MIN_TEMPERATURE:g}, got {sampling.temperature!r}; a lower "
                         "one always picks the most probable token: use do_sample=False (greedy) for that.",
                         param="temperature")
    if not 0 < sampling.top_p <= 1:
        raise InputError(f"top_p must be in (0, 1], got {sampling.top_p!r}.", param="top_p")


def _check_finite(value: object, name: str) -> None:
    """A finite int or float (not a bool); an int too large for a float counts as infinite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name} must be a finite number, got {value!r:.40}.", param=name)
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int of hundreds of digits
        finite = False
    if not finite:
        raise InputError(f"{name} must be a finite number, got {value!r:.40}.", param=name)


def check_states(states: object, hidden_size: int) -> torch.Tensor:
    """Compression states as a (B, K, H) tensor: a tensor or array of (B, K, H), a single (K, H) state (a batch of
    one), or a list of (K, H) arrays of one shape. Errors name `states` and the index of the bad row."""
    if isinstance(states, (list, tuple)):
        states = _stack_states(states, hidden_size)
    if isinstance(states, np.ndarray):
        states = torch.from_numpy(states)
    if not isinstance(states, torch.Tensor) or not states.is_floating_point():
        raise InputError(f"states must be a floating-point torch.Tensor or numpy array, got {type(states).__name__}.",
                         param="states")
    if states.dim() == 2:
        states = states.unsqueeze(0)
    if states.dim() != 3 or states.shape[0] == 0 or states.shape[1] == 0 or states.shape[2] != hidden_size:
        raise InputError(
            f"states has shape {tuple(states.shape)}; expected (B, K, {hidden_size}) compression states "
            "(as returned by model.compress) with B, K >= 1.", param="states",
        )
    if not torch.isfinite(states).all():
        rows = (~torch.isfinite(states).flatten(1).all(1)).nonzero().flatten().tolist()
        raise InputError(f"states rows {rows[:8]} hold NaN or infinite values; the LLM cannot read them as a prompt.",
                         param="states", index=rows[0])
    return states


def _stack_states(rows: list | tuple, hidden_size: int) -> np.ndarray:
    """A list of (K, H) states as one (B, K, H) float32 array; the first row of another shape is named."""
    if not rows:
        raise InputError("states is empty; pass at least one (K, H) state.", param="states")
    arrays = []
    for index, row in enumerate(rows):
        if _holds_booleans(row):
            raise InputError(f"states[{index}] holds true/false values; a state is numbers (K x H floats).",
                             param="states", index=index)
        try:
            array = np.asarray(row, dtype=np.float32)
        except (TypeError, ValueError) as err:
            raise InputError(f"states[{index}] is not a (K, H) array of numbers ({err}).", param="states",
                             index=index) from err
        shape = arrays[0].shape if arrays else (array.shape[0] if array.ndim == 2 else -1, hidden_size)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape != shape:
            raise InputError(f"states[{index}] has shape {list(array.shape)}; expected {list(shape)} (K compression "
                             "tokens x the hidden size, the same K for every row).", param="states", index=index)
        arrays.append(array)
    return np.stack(arrays)


def _holds_booleans(row: object) -> bool:
    """Whether a state row holds booleans, which numpy would silently read as 0.0 and 1.0 (JSON `true` included)."""
    if isinstance(row, np.ndarray):
        return row.dtype == np.bool_
    if isinstance(row, torch.Tensor):
        return row.dtype == torch.bool
    if not isinstance(row, (list, tuple)):
        return isinstance(row, (bool, np.bool_))
    # map(type, ...) runs in C: a row of nested lists is checked without a Python loop over its numbers
    return bool in map(type, row) or any(bool in map(type, values) for values in row if isinstance(values, list))


# ------------------------------------------------------------------------------------------------- logit lens


@dataclass(frozen=True)
class TokenProbability:
    """One vocabulary entry of a top-k list."""

    token_id: int
    token: str
    """The token as text (`tokenizer.decode([token_id])`), so byte-level pieces read as words."""
    probability: float


@dataclass(frozen=True)
class SpecialTokenLens:
    """What the LM head reads at one special-token position."""

    index: int
    """Position among the N special tokens, 1-based."""
    kind: Literal["thought", "compression"]
    hidden_state: tuple[TokenProbability, ...]
    """(a) Top tokens of softmax(LM head(final hidden state h)); h is after the backbone's final norm."""
    compression_state: tuple[TokenProbability, ...] | None
    """(b) Top tokens of softmax(LM head(z)), z = R(h) an input embedding; None for thought tokens (no z)."""
    decoder_prediction: tuple[TokenProbability, ...] | None
    """(c) What the LLM predicts next after reading z_1..z_k as its prompt; None for thought tokens."""


@dataclass(frozen=True)
class LogitLens:
    """The logit lens of one text: one entry per special token, in order."""

    text: str
    special_tokens: tuple[SpecialTokenLens, ...]

    def to_dict(self) -> dict[str, object]:
        """Plain dicts and lists, ready for JSON."""
        return dataclasses.asdict(self)

    def to_table(self) -> str:
        """A readable fixed-width table: one block per special token, one row per rank."""
        views = [("final hidden state", "hidden_state"), ("compression state", "compression_state"),
                 ("next token from z", "decoder_prediction")]
        lines = [f"text: {self.text!r}"]
        for lens in self.special_tokens:
            shown = [(title, getattr(lens, name)) for title, name in views if getattr(lens, name) is not None]
            lines += ["", f"special token {lens.index} ({lens.kind})"]
            lines.append("rank  " + "  ".join(f"{title:<30}" for title, _ in shown).rstrip())
            for rank in range(len(lens.hidden_state)):
                cells = [f"{_printable(top[rank].token):<22}{top[rank].probability:>8.4f}" for _, top in shown]
                lines.append(f"{rank + 1:<4}  " + "  ".join(cells))
        return "\n".join(lines)


def check_top_k(top_k: object, vocab_size: int) -> None:
    """Refuse a logit-lens `top_k` that is not an integer from 1 to the vocabulary size."""
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= vocab_size:
        raise InputError(f"top_k must be an integer between 1 and the vocabulary size {vocab_size}, got {top_k!r}.",
                         param="top_k")


@torch.no_grad()
def logit_lens(
    backbone: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    text: str,
    special_states: torch.Tensor,
    compression_states: torch.Tensor,
    *,
    top_k: int = 10,
) -> LogitLens:
    """Top tokens of the LM head at every special-token position of one text (see the module docstring).

    Args:
        backbone, tokenizer: the frozen LLM and its tokenizer.
        text: the text the states belong to (shown in the result).
        special_states: (N, H) final hidden states of the N special tokens, in the backbone's dtype.
        compression_states: (K, H) compression states z of the last K of them.
        top_k: tokens listed per view.
    """
    dtype = backbone.get_input_embeddings().weight.dtype
    decoder = backbone(inputs_embeds=compression_states[None].to(dtype), use_cache=False).logits[0]  # (K, V)
    hidden_top = _top_tokens(tokenizer, _lm_head(backbone, special_states), top_k)  # N lists
    compression_top = _top_tokens(tokenizer, _lm_head(backbone, compression_states.to(dtype)), top_k)  # K lists
    decoder_top = _top_tokens(tokenizer, decoder, top_k)  # K lists
    num_thought = special_states.shape[0] - compression_states.shape[0]
    entries = []
    for index in range(special_states.shape[0]):
        is_thought = index < num_thought
        entries.append(
            SpecialTokenLens(
                index=index + 1,
                kind="thought" if is_thought else "compression",
                hidden_state=hidden_top[index],
                compression_state=None if is_thought else compression_top[index - num_thought],
                decoder_prediction=None if is_thought else decoder_top[index - num_thought],
            )
        )
    return LogitLens(text=text, special_tokens=tuple(entries))


def _lm_head(backbone: PreTrainedModel, states: torch.Tensor) -> torch.Tensor:
    """(n, H) states -> (n, V) fp32 logits of the backbone's LM head, with its final-logit soft-capping if any."""
    logits = backbone.get_output_embeddings()(states).float()
    softcap = getattr(backbone.config.get_text_config(), "final_logit_softcapping", None)
    if softcap is not None:
        logits = torch.tanh(logits / softcap) * softcap
    return logits


def _top_tokens(
    tokenizer: PreTrainedTokenizerBase, logits: torch.Tensor, top_k: int
) -> list[tuple[TokenProbability, ...]]:
    """(n, V) logits -> for each row, the top_k tokens by softmax probability, most probable first."""
    probabilities, token_ids = torch.softmax(logits.float(), dim=-1).topk(top_k, dim=-1)  # (n, top_k)
    return [
        tuple(
            TokenProbability(token_id=token_id, token=tokenizer.decode([token_id]), probability=probability)
            for token_id, probability in zip(row_ids, row_probabilities)
        )
        for row_ids, row_probabilities in zip(token_ids.tolist(), probabilities.tolist())
    ]


def _printable(token: str) -> str:
    """A token for a fixed-width table: repr-escaped (spaces and newlines visible), cut to 20 characters."""
    shown = repr(token)
    return shown if len(shown) <= 20 else shown[:19] + "…"
