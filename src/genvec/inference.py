"""The front door of a model: every use of a `GenVecModel` reads its texts and runs the model through here.

One path from texts to what the model computes of them:
1. `prepare` picks the instruction (one given, or the model's saved one for a `side`, "query" or "document"), then
   tokenises `instruction + text` and cuts a text longer than the model reads (`truncate="cut"`, counted in
   `Inputs.cut`) or refuses it (`truncate="error"`). Every error names the parameter and the index of the bad text
   (`InputError.param`, `.index`), so the server turns it into its 4xx without checking anything again.
2. `embed`, `compress`, `decode` or `inspect` runs the prepared inputs, batched by one rule (`collate.length_batches`:
   longest first, at most `batch_size` texts and the device's padded tokens), an instruction shared by every text
   read once (design decision 10), and `normalize_rows` the one normaliser. `embed(..., dimensions=d)` keeps the
   first d coordinates, then normalises: `check_dimensions` allows d < D only on a truncatable model
   (`genvec.truncation`). `precision` ("int8", "binary", ...) quantizes the result last (`check_precision`:
   int8/uint8 by the ranges the model's checkpoint carries, `genvec.quantization`).
3. `relevance` and `rank` score documents against queries (cosine of a query-side and a document-side embedding) for
   `rerank` and the server's rerank and score routes.
4. `identity` names which model this is, for every manifest, cache key and mteb revision.

`GenVecModel` gets its text-reading methods (`encode`, `encode_query`, `encode_document`, `rerank`, `compress`,
`decode`, `inspect`, `identity`) from `InferenceMixin`, as transformers' models get `generate` from
`GenerationMixin`: users call the model, the model calls this module, and this module calls the method
(`special_states`, `compression_states`, `embed`, in `model.py`) through the `Method` protocol. The library, the
CLI, the server, bulk encoding, the mteb encoder and the framework adapters all come through here, so one text and
side give one vector, and an over-long text is cut or refused the same way, whichever door it came through.

What it does not do: the method itself (`model.py`), generation and the logit lens (`decode.py`), HTTP (`serve/`).

Why over 450 lines: the methods users call (`encode`, `decode`, ...) carry their user documentation here, beside
the one path they share; split, the door would be read in two files.

Shapes: B texts, K compression tokens, H hidden size, D embedding size.
"""

import copy
import dataclasses
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from genvec import decode as decoding
from genvec import layers, quantization
from genvec.config import GenVecConfig
from genvec.data.collate import (
    QueryBatch,
    batch_token_budget,
    check_texts,
    cut_to_length,
    join_instruction,
    length_batches,
    pad_left,
)
from genvec.errors import InputError, InputTooLongError, check_positive_int
from genvec.formats import shows_progress

Side = Literal["query", "document"]
Truncate = Literal["cut", "error"]
SIDES = ("query", "document")
TRUNCATE = ("cut", "error")

# A token of any tokenizer genvec meets spans far fewer characters than this, so a text is cut to its first
# `limit x CHARS_PER_TOKEN` characters before tokenising (a megabyte of text costs no tokenizer time), and refused
# right away when truncation is off.
CHARS_PER_TOKEN = 32
# Shortest shared prefix (in tokens) computed once; below it the copy of the cache costs more than it saves.
MIN_SHARED_PREFIX = 4


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Texts ready for the model: token ids of `instruction + text`, each at most the model's text limit."""

    ids: list[list[int]]
    """Token ids per text (with the tokenizer's own special tokens, without genvec's)."""
    texts: tuple[str, ...] = ()
    """The texts as given (before the instruction), when prepared from texts."""
    instruction: str | None = None
    """The instruction put before every text (None: none)."""
    cut: tuple[int, ...] = ()
    """Indices of the texts that were longer than the model reads and were cut."""

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_tokens(self) -> int:
        """Tokens the model reads of these texts (instruction included, special tokens not)."""
        return sum(len(row) for row in self.ids)


class Method(Protocol):
    """What the front door needs of a model: `GenVecModel` (model.py) is the one implementation."""

    config: GenVecConfig
    backbone: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    pad_token_id: int
    layers_compiled: bool
    device: torch.device
    dtype: torch.dtype
    hidden_size: int
    embedding_dim: int
    num_special_tokens: int
    num_compression_tokens: int
    backbone_record: dict[str, object]
    truncation: dict | None
    quantization: dict | None

    def special_states(self, batch: QueryBatch, *, prefix: "SharedPrefix | None" = None,
                       cache_query: bool = False) -> torch.Tensor: ...

    def compression_states(self, special_states: torch.Tensor) -> torch.Tensor: ...

    def embed(self, compression_states: torch.Tensor) -> torch.Tensor: ...

    def trainable_state_dict(self) -> dict[str, torch.Tensor]: ...


@dataclasses.dataclass(frozen=True)
class SharedPrefix:
    """The keys and values of the token ids every text of a call starts with (an instruction), for one row."""

    length: int
    cache: object  # the backbone's cache object after reading the prefix

    def cache_for(self, batch_size: int):
        """A fresh copy of the cache for `batch_size` rows (a forward pass appends to the cache it is given)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch_size)
        return cache


# ------------------------------------------------------------------------------------------------- prepare


def prepare(
    model: Method,
    texts: Sequence[str] | str,
    *,
    instruction: str | None = None,
    side: Side | None = None,
    truncate: Truncate = "cut",
    max_length: int | None = None,
    what: str = "texts",
) -> Inputs:
    """Texts as the model reads them: `instruction + text`, tokenised, each cut to the model's limit or refused.

    Args:
        model: the model.
        texts: a list of strings (a single string counts as a list of one).
        instruction: the instruction put before every text; or give `side` for the model's saved one.
        side: "query" or "document": the model's saved instruction for that side (`config.model.instructions`).
        truncate: "cut" keeps a long text's first tokens (counted in `Inputs.cut`); "error" refuses it.
        max_length: tokens per input, special tokens included; None means `config.model.max_length`.
        what: the name of `texts` in error messages (the server calls them `input`).

    Raises:
        InputError: a bad text (`param=what`, `index`), both or a bad `side` / `instruction`, a bad `truncate`
            or `max_length`; `InputTooLongError` for a long text with `truncate="error"`.
    """
    texts = check_texts(texts, what)
    instruction = resolve_instruction(model, instruction=instruction, side=side)
    if truncate not in TRUNCATE:
        raise InputError(f"truncate must be \"cut\" or \"error\", got {truncate!r}.", param="truncate")
    limit = text_limit(model, max_length)
    characters = limit * CHARS_PER_TOKEN
    if truncate == "error":
        for index, text in enumerate(texts):
            if len(text) > characters:
                raise InputTooLongError(
                    f"{what}[{index}] has {len(text):,} characters, far more than this model reads ({limit} tokens); "
                    f"shorten it, or use truncate=\"cut\" to keep its first {limit} tokens.", param=what, index=index)
    ids, cut = cut_to_length(model.tokenizer, join_instruction([t[:characters] for t in texts], instruction), limit)
    # A text cut to its first characters counts as cut too, even if what is left fits (tokens of 32+ characters).
    cut = sorted(set(cut) | {index for index, text in enumerate(texts) if len(text) > characters})
    if cut and truncate == "error":
        raise InputTooLongError(
            f"{what}[{cut[0]}] is longer than the {limit} tokens this model reads (instruction included: max_length "
            f"{limit + model.num_special_tokens} less {model.num_special_tokens} special tokens); shorten it, or use "
            f"truncate=\"cut\" to keep its first {limit} tokens.", param=what, index=cut[0])
    return Inputs(ids, tuple(texts), instruction, tuple(cut))


def resolve_instruction(model: Method, *, instruction: str | None = None, side: Side | None = None) -> str | None:
    """The instruction given, or the model's saved one for `side`; None when neither is given.

    Raises:
        InputError: both given, a blank instruction (None means none), a side other than query/document, or a side the
            model saved no instruction for.
    """
    if side is None:
        if instruction is not None and not isinstance(instruction, str):
            raise InputError(f"instruction must be a string or None, got {type(instruction).__name__}.",
                             param="instruction")
        if instruction is not None and not instruction.strip():
            raise InputError(f"instruction is empty or only white space ({instruction!r:.40}); pass None (or leave it "
                             "out) for no instruction.", param="instruction")
        return instruction
    if instruction is not None:
        raise InputError("give an instruction or a side (query/document), not both.", param="instruction")
    if side not in SIDES:
        raise InputError(f"side must be \"query\" or \"document\", got {side!r}.", param="side")
    saved = model.config.model.instructions.get(side)
    if not saved:
        raise InputError(f"this model has no saved {side} instruction (config.model.instructions holds "
                         f"{sorted(model.config.model.instructions)}); pass an instruction instead.", param="side")
    return saved


def text_limit(model: Method, max_length: int | None = None) -> int:
    """The most tokens of instruction + text the model reads: `max_length` less the special tokens."""
    max_length = model.config.model.max_length if max_length is None else max_length
    check_positive_int(max_length, "max_length")
    if max_length < model.num_special_tokens + 1:
        raise InputError(f"max_length={max_length} cannot hold one text token plus the {model.num_special_tokens} "
                         f"special tokens; use max_length >= {model.num_special_tokens + 1}.", param="max_length")
    return max_length - model.num_special_tokens


# ------------------------------------------------------------------------------------------------- run


@torch.inference_mode()
def embed(
    model: Method, inputs: Inputs, *, batch_size: int = 32, normalize: bool = False, show_progress: bool | None = None,
    dimensions: int | None = None, precision: str = "float32",
) -> np.ndarray:
    """Embeddings of prepared inputs, (B, D) float32 in their order, or their first `dimensions` coordinates
    (B, dimensions) on a truncatable model (`check_dimensions`); unit length with `normalize`, after truncating;
    then at `precision` (`check_precision`: int8/uint8 (B, d), binary/ubinary (B, d/8) packed bits)."""
    if not isinstance(normalize, bool):
        raise InputError(f"normalize must be True or False, got {normalize!r}.", param="normalize")
    dimensions = check_dimensions(model, dimensions)
    ranges = check_precision(model, precision, dimensions, normalize)
    vectors = np.empty((len(inputs), model.embedding_dim), dtype=np.float32)
    for indices, states in _compression_batches(model, inputs, batch_size, show_progress, "encode"):
        vectors[indices] = model.embed(states).float().cpu().numpy()
    vectors = truncate_rows(vectors, dimensions)
    vectors = normalize_rows(vectors) if normalize else vectors
    return quantization.quantize(vectors, precision, ranges)


def check_dimensions(model: Method, dimensions: object) -> int | None:
    """How many leading coordinates of the embedding a caller asks for: None for all D (`dimensions` None or D).

    d < D is allowed only on a truncatable model (`model.truncation`, written by `genvec make-truncatable`): there the
    first coordinates are the best d-dimensional view of the embeddings; elsewhere they are an arbitrary d of D.

    Raises:
        InputError (`param="dimensions"`): not a whole number, outside 1..D, or d < D on a model not truncatable.
    """
    if dimensions is None:
        return None
    size = model.embedding_dim
    if isinstance(dimensions, bool) or not isinstance(dimensions, (int, np.integer)):
        raise InputError(f"dimensions must be a whole number from 1 to {size} (this model's embedding size), got "
                         f"{dimensions!r:.40} (a {type(dimensions).__name__}); leave it out for all {size}.",
                         param="dimensions")
    dimensions = int(dimensions)
    if not 1 <= dimensions <= size:
        raise InputError(f"dimensions={dimensions} is outside 1..{size}: this model's embeddings have {size} "
                         f"coordinates; pass 1 to {size}, or leave dimensions out for all {size}.", param="dimensions")
    if dimensions == size:
        return None
    if getattr(model, "truncation", None) is None:
        raise InputError(
            f"dimensions={dimensions} asks for the first {dimensions} of this model's {size} coordinates, but the "
            "model is not truncatable: its coordinates are in no particular order, so any prefix loses more than it "
            "must. Make a truncatable copy once (the same vectors at full size, rotated so the first coordinates "
            "carry the most): `genvec make-truncatable MODEL --texts FILE --output DIR` (FILE: sample texts, one a "
            "line) or `genvec.truncation.make_truncatable(model, texts)`, and use that; or leave dimensions out.",
            param="dimensions")
    return dimensions


def check_precision(model: Method, precision: object, dimensions: int | None = None,
                    normalize: bool = False) -> np.ndarray | None:
    """Check that `model` can give its embeddings (their first `dimensions` coordinates, checked by
    `check_dimensions`; unit length with `normalize`) at `precision`; return the int8/uint8 ranges (2, d) to
    quantize them by (`quantization.ranges_for` the model's `quantization` record), None for other precisions.

    Raises:
        InputError: an unknown precision (`param="precision"`); int8/uint8 on a model never calibrated; binary or
            ubinary of a size that is not a multiple of 8 (`param="dimensions"`).
    """
    precision = quantization.check_precision(precision)
    if precision in quantization.PACKED:
        quantization.check_packable(model.embedding_dim if dimensions is None else dimensions)
    if precision in quantization.CALIBRATED:
        return quantization.ranges_for(model.quantization, model.embedding_dim, dimensions, normalize)
    return None


def quantize_rows(model: Method, vectors: np.ndarray, precision: str, dimensions: int | None = None,
                  normalize: bool = False) -> np.ndarray:
    """(B, d) float32 rows `embed` returned (with these `dimensions` and `normalize`) at `precision`."""
    return quantization.quantize(vectors, precision, check_precision(model, precision, dimensions, normalize))


def truncate_rows(vectors: np.ndarray, dimensions: int | None) -> np.ndarray:
    """The first `dimensions` coordinates of each row, (B, dimensions) float32 (None: the rows as they are). Checked
    by `check_dimensions` first; normalise after truncating, never before."""
    return vectors if dimensions is None else np.ascontiguousarray(vectors[:, :dimensions])


@torch.no_grad()  # not inference_mode: callers may feed the states to autograd code (decoding, probes)
def compress(model: Method, inputs: Inputs, *, batch_size: int = 32) -> torch.Tensor:
    """Compression states z = R(h) of prepared inputs: the decoder prompts, (B, K, H) fp32 on the model's device."""
    states = torch.empty(len(inputs), model.num_compression_tokens, model.hidden_size, device=model.device)
    for indices, batch_states in _compression_batches(model, inputs, batch_size, False, "compress"):
        states[torch.as_tensor(indices, device=model.device)] = batch_states.float()
    return states


def decode(
    model: Method,
    source: Inputs | torch.Tensor | np.ndarray | Sequence[np.ndarray],
    *,
    max_new_tokens: int = 128,
    sampling: decoding.Sampling | None = None,
    batch_size: int = 16,
    score: bool = False,
    best_of: int = 1,
    instruction: str | None = None,
) -> list[str] | list[decoding.Decoded]:
    """Text the frozen LLM generates from compression states: of prepared inputs (compressed batch by batch, so
    memory holds one batch) or of states given (`decoding.check_states`); greedy unless `sampling` is given.

    The round trip (`score=True`, and the choice among `best_of` sampled candidates): each decoded text is read back
    by the model, with the instruction its source was read with, and scored by the cosine between that embedding and
    the embedding the states give (A of their mean, what `embed` gives of the same inputs). States alone do not say
    which instruction they were compressed with: for them `instruction` says how the decoded texts are read back
    (None: without one). A decoded text longer than the model reads is cut for it, silently.

    Args:
        score: return `decoding.Decoded` items (text, round-trip score) instead of strings.
        best_of: sample this many candidates per input (`sampling` needed) and keep the one with the best round trip.
        instruction: for states only (prepared inputs carry their own): the instruction decoded texts are read with.

    Returns:
        One string per input, or with `score` one `Decoded` per input, in order.
    """
    decoding.check_decode_arguments(max_new_tokens, sampling, batch_size, best_of=best_of, score=score)
    if isinstance(source, Inputs):
        if instruction is not None:
            raise InputError("instruction is for decoding states; prepared inputs carry their own instruction "
                             "(Inputs.instruction): leave instruction out.", param="instruction")
        instruction = source.instruction
        states = (compress(model, _rows(source, start, batch_size), batch_size=batch_size)
                  for start in range(0, len(source), batch_size))
    else:
        join_instruction([], instruction)  # its checks, before any generation
        prompts = decoding.check_states(source, model.hidden_size)
        states = (prompts[start : start + batch_size] for start in range(0, prompts.shape[0], batch_size))
    rounds = score or best_of > 1
    originals: list[np.ndarray] = []  # (b, D) embeddings of the states decoded, batch by batch

    def prompt_batches():
        for batch in states:
            if rounds:
                with torch.no_grad():
                    originals.append(model.embed(batch.to(model.device)).float().cpu().numpy())
            # best_of candidates of a state are adjacent rows; a batch still generates at most batch_size rows
            rows = batch.repeat_interleave(best_of, 0) if best_of > 1 else batch
            yield from rows.split(batch_size)

    with layers.eager(model.layers_compiled):
        texts = decoding.decode_prompts(model.backbone, model.tokenizer, prompt_batches(),
                                        max_new_tokens=max_new_tokens, sampling=sampling)
    if not rounds:
        return texts
    scores = round_trip_scores(model, texts, np.concatenate(originals).repeat(best_of, 0), instruction=instruction,
                               batch_size=batch_size)
    chosen = [_best(texts[start : start + best_of], scores[start : start + best_of])
              for start in range(0, len(texts), best_of)]
    return chosen if score else [item.text for item in chosen]


def round_trip_scores(
    model: Method, texts: Sequence[str], embeddings: np.ndarray, *, instruction: str | None = None,
    batch_size: int = 32,
) -> np.ndarray:
    """(B,) cosine between each text's embedding (read with `instruction`, cut to the model's length) and the (B, D)
    `embeddings` it should give back: the round-trip score of decoded texts."""
    inputs = prepare(model, list(texts), instruction=instruction, truncate="cut")
    read_back = embed(model, inputs, batch_size=batch_size, normalize=True)
    return (read_back * normalize_rows(np.asarray(embeddings, dtype=np.float32))).sum(1)


def _best(texts: Sequence[str], scores: np.ndarray) -> decoding.Decoded:
    """The candidate with the highest round trip (the first of equals), holding every candidate when there are
    several."""
    candidates = tuple(decoding.Decoded(text, float(value)) for text, value in zip(texts, scores))
    best = candidates[int(np.argmax(scores))]
    return best if len(candidates) == 1 else dataclasses.replace(best, candidates=candidates)


@torch.no_grad()
def inspect(model: Method, inputs: Inputs, *, top_k: int = 10) -> decoding.LogitLens:
    """The logit lens of one prepared text (see `genvec.decode`)."""
    if len(inputs) != 1:
        raise InputError(f"inspect reads one text, got {len(inputs)}.", param="texts")
    decoding.check_top_k(top_k, model.backbone.get_output_embeddings().weight.shape[0])
    special = model.special_states(pad_left(inputs.ids, model.pad_token_id).to(model.device))  # (1, N, H)
    compression = model.compression_states(special)  # (1, K, H)
    text = inputs.texts[0] if inputs.texts else model.tokenizer.decode(inputs.ids[0])
    with layers.eager(model.layers_compiled):
        return decoding.logit_lens(model.backbone, model.tokenizer, text, special[0], compression[0], top_k=top_k)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length (a zero row stays zero): (B, D) float32."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One document of a ranking: its index in the documents given and its relevance (a cosine, -1 to 1)."""

    index: int
    score: float


def relevance(queries: np.ndarray, documents: np.ndarray) -> np.ndarray:
    """Cosine of every query embedding (Q, D) with every document embedding (N, D): (Q, N) float32."""
    return normalize_rows(queries) @ normalize_rows(documents).T


def rank(scores: np.ndarray, top_n: int | None = None) -> list[Ranked]:
    """Documents by one query's `scores` (N,), most relevant first (equal scores in the order given); the first
    `top_n` (None: all)."""
    if top_n is not None:
        check_positive_int(top_n, "top_n")
    order = np.argsort(-scores, kind="stable")[:top_n]
    return [Ranked(int(index), float(scores[index])) for index in order]


def identity(model: Method) -> str:
    """32 hex digits naming what a model computes: its backbone's architecture and tokenizer, the dtype it runs in,
    the settings that shape its inputs, and its trainable tensors. Two models with one identity give one vector of
    one text; every manifest, cache key and mteb revision uses it."""
    digest = hashlib.sha256()
    facts = {"backbone": model.backbone_record["fingerprint"], "dtype": str(model.dtype),
             "num_special_tokens": model.num_special_tokens, "num_compression_tokens": model.num_compression_tokens,
             "max_length": model.config.model.max_length, "embedding_dim": model.embedding_dim}
    digest.update(json.dumps(facts, sort_keys=True).encode())
    for name, tensor in model.trainable_state_dict().items():
        digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:32]


def warn_if_cut(inputs: Inputs, stacklevel: int = 3) -> None:
    """The library's way of saying that texts were cut: one warning with the count."""
    if inputs.cut:
        warnings.warn(f"{len(inputs.cut)} of {len(inputs)} texts were longer than the model reads and were cut "
                      f"(first: index {inputs.cut[0]}); raise max_length to keep more, or pass truncate=\"error\" to "
                      "refuse them.", stacklevel=stacklevel)


# ------------------------------------------------------------------------------------------------- internals


def _compression_batches(model: Method, inputs: Inputs, batch_size: int, show_progress: bool | None, desc: str):
    """(indices, compression states (b, K, H)) per batch, longest texts first; a shared instruction read once."""
    check_positive_int(batch_size, "batch_size")
    if not isinstance(inputs, Inputs) or not inputs.ids:
        raise InputError("pass the inputs `prepare` returns (at least one text).", param="inputs")
    prefix = _shared_prefix(model, inputs)
    lengths = [len(row) + model.num_special_tokens for row in inputs.ids]
    batches = length_batches(lengths, batch_size, batch_token_budget(model.device))
    show = shows_progress(show_progress, len(inputs), batch_size)
    for indices in tqdm(batches, desc=desc, unit="batch", disable=not show):
        skip = prefix.length if prefix is not None else 0
        batch = pad_left([inputs.ids[i][skip:] for i in indices], model.pad_token_id).to(model.device)
        yield indices, model.compression_states(model.special_states(batch, prefix=prefix))


def _shared_prefix(model: Method, inputs: Inputs) -> SharedPrefix | None:
    """The tokens every text starts with (its instruction), run once; None without an instruction, for one text,
    or when too few tokens are shared to be worth a cache."""
    if inputs.instruction is None or len(inputs) < 2:
        return None
    length = len(os.path.commonprefix(inputs.ids))
    if length < MIN_SHARED_PREFIX:
        return None
    prefix_ids = torch.tensor([inputs.ids[0][:length]], device=model.device)  # (1, P)
    with layers.eager(model.layers_compiled):
        cache = model.backbone.base_model(input_ids=prefix_ids, use_cache=True).cache
    if not hasattr(cache, "batch_repeat_interleave"):  # a cache type that cannot be copied per row: plain path
        return None
    return SharedPrefix(length, cache)


def _rows(inputs: Inputs, start: int, count: int) -> Inputs:
    """Inputs `start` to `start + count` (the same instruction, so the shared prefix still applies)."""
    rows = slice(start, start + count)
    return Inputs(inputs.ids[rows], inputs.texts[rows], inputs.instruction)


# ------------------------------------------------------------------------------------------------- the model's door


class InferenceMixin:
    """The text-reading methods of `GenVecModel`: each one is `prepare` and one function of this module."""

    def prepare(
        self: Method,
        texts: Sequence[str] | str,
        *,
        instruction: str | None = None,
        side: Side | None = None,
        truncate: Truncate = "cut",
        max_length: int | None = None,
    ) -> Inputs:
        """Texts as this model reads them (see `genvec.inference.prepare`); cut texts are counted, not warned of."""
        return prepare(self, texts, instruction=instruction, side=side, truncate=truncate, max_length=max_length)

    def encode(
        self: Method,
        texts: Sequence[str] | str,
        *,
        instruction: str | None = None,
        side: Side | None = None,
        truncate: Truncate = "cut",
        batch_size: int = 32,
        max_length: int | None = None,
        normalize: bool = False,
        show_progress: bool | None = None,
        dimensions: int | None = None,
        precision: str = "float32",
    ) -> np.ndarray:
        """Embed texts: (len(texts), D) float32 numpy array, in the order given (or quantized: `precision`).

        Texts are sorted by length and batched (less padding), then put back in order. With an instruction each
        input is `instruction.strip() + " " + text.strip()`, and the instruction's tokens are read once for all
        texts. Texts longer than `max_length` less the special tokens are cut at the end (a warning says how many)
        or, with `truncate="error"`, refused.

        Args:
            texts: a list of strings (a single string counts as a list of one).
            instruction: task instruction, e.g. "Generate a passage that best answers this question:".
            side: "query" or "document": the model's saved instruction for that side, instead of `instruction`.
            truncate: "cut" (keep a long text's first tokens) or "error" (refuse it).
            batch_size: texts per forward pass at most (batches of long texts hold fewer: at most 4,096 padded
                tokens on a CPU, 16,384 on an accelerator).
            max_length: tokens per input, special tokens included; None means `config.model.max_length`.
            normalize: L2-normalise each embedding (for cosine similarity by dot product), after truncating.
            show_progress: progress bar; None shows one from `formats.PROGRESS_MIN_BATCHES` batches on.
            dimensions: keep the first d coordinates, (len(texts), d); d < D needs a truncatable model
                (`genvec make-truncatable`); None or D: all of them.
            precision: "float32"; "int8" or "uint8" (a byte per coordinate, by the ranges the model was calibrated
                with: `genvec calibrate` or `genvec make-truncatable`); "binary" (int8) or "ubinary" (uint8): the
                signs, 8 coordinates per byte, (len(texts), d/8). As sentence-transformers' `quantize_embeddings`.

        Raises:
            InputError: empty input, a non-string item, a bad batch size, max_length, side, instruction,
                dimensions or precision; `InputTooLongError` for a long text with `truncate="error"`.
        """
        check_precision(self, precision, check_dimensions(self, dimensions), normalize)  # before any text is read
        inputs = prepare(self, texts, instruction=instruction, side=side, truncate=truncate, max_length=max_length)
        warn_if_cut(inputs)
        return embed(self, inputs, batch_size=batch_size, normalize=normalize, show_progress=show_progress,
                     dimensions=dimensions, precision=precision)

    def encode_query(
        self: Method, texts: Sequence[str] | str, *, truncate: Truncate = "cut", batch_size: int = 32,
        max_length: int | None = None, normalize: bool = False, show_progress: bool | None = None,
        dimensions: int | None = None, precision: str = "float32",
    ) -> np.ndarray:
        """`encode` with the model's `query` instruction (`config.model.instructions`)."""
        check_precision(self, precision, check_dimensions(self, dimensions), normalize)
        inputs = prepare(self, texts, side="query", truncate=truncate, max_length=max_length)
        warn_if_cut(inputs)  # here, not through `encode`, so the warning points at the caller's line
        return embed(self, inputs, batch_size=batch_size, normalize=normalize, show_progress=show_progress,
                     dimensions=dimensions, precision=precision)

    def encode_document(
        self: Method, texts: Sequence[str] | str, *, truncate: Truncate = "cut", batch_size: int = 32,
        max_length: int | None = None, normalize: bool = False, show_progress: bool | None = None,
        dimensions: int | None = None, precision: str = "float32",
    ) -> np.ndarray:
        """`encode` with the model's `document` instruction (`config.model.instructions`)."""
        check_precision(self, precision, check_dimensions(self, dimensions), normalize)
        inputs = prepare(self, texts, side="document", truncate=truncate, max_length=max_length)
        warn_if_cut(inputs)  # here, not through `encode`, so the warning points at the caller's line
        return embed(self, inputs, batch_size=batch_size, normalize=normalize, show_progress=show_progress,
                     dimensions=dimensions, precision=precision)

    def rerank(
        self: Method, query: str, documents: Sequence[str], *, instruction: str | None = None,
        top_n: int | None = None, truncate: Truncate = "cut", batch_size: int = 32, max_length: int | None = None,
    ) -> list[Ranked]:
        """`documents` ordered by relevance to `query`: the cosine between the query's embedding (the model's query
        instruction, or `instruction`) and each document's (its document instruction), most relevant first.

        Returns:
            The first `top_n` (None: all) as `Ranked(index, score)`: the document's index in `documents` and the
            cosine; equal scores keep the order given.

        Example:
            >>> [(hit.index, round(hit.score, 3)) for hit in model.rerank("who wrote Hamlet?", passages, top_n=3)]
        """
        if not isinstance(query, str):
            raise InputError(f"rerank() takes one query (a string), got {type(query).__name__}.", param="query")
        if top_n is not None:
            check_positive_int(top_n, "top_n")
        question = prepare(self, [query], instruction=instruction, side=None if instruction is not None else "query",
                           truncate=truncate, max_length=max_length, what="query")
        passages = prepare(self, documents, side="document", truncate=truncate, max_length=max_length,
                           what="documents")
        warn_if_cut(question)
        warn_if_cut(passages)
        scores = relevance(embed(self, question, batch_size=batch_size), embed(self, passages, batch_size=batch_size))
        return rank(scores[0], top_n)

    def compress(
        self: Method, texts: Sequence[str] | str, *, instruction: str | None = None, side: Side | None = None,
        truncate: Truncate = "cut", max_length: int | None = None, batch_size: int = 32,
    ) -> torch.Tensor:
        """Compression states z = R(h) of each text: the decoder prompt, (B, K, H) fp32 on the model's device.

        Texts run `batch_size` at a time, longest first (as in `encode`), so memory stays bounded by one batch.
        """
        inputs = prepare(self, texts, instruction=instruction, side=side, truncate=truncate, max_length=max_length)
        warn_if_cut(inputs)
        return compress(self, inputs, batch_size=batch_size)

    def decode(
        self: Method,
        texts: Sequence[str] | str | None = None,
        *,
        states: torch.Tensor | np.ndarray | None = None,
        instruction: str | None = None,
        side: Side | None = None,
        truncate: Truncate = "cut",
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 16,
        score: bool = False,
        best_of: int = 1,
    ) -> list[str] | list[decoding.Decoded]:
        """Turn embeddings back into text: the frozen LLM generates from the compression states z (paper 3.6).

        Args:
            texts: strings to compress first (with `instruction` or `side`, as `compress` does); or give `states`.
            states: (B, K, H) or (K, H) compression states, e.g. stored or edited outputs of `compress`.
            instruction, side, truncate: how texts are read, as in `encode`; with `states`, how the decoded texts
                are read back for the round trip (states do not record their instruction; none by default).
            max_new_tokens: the most tokens generated per text; a row stops earlier at an end-of-sequence token.
            do_sample: sample the next token instead of taking the most probable one (greedy).
            temperature: softmax temperature when sampling (at least `decode.MIN_TEMPERATURE`, 1e-4).
            top_p: nucleus sampling mass when sampling, in (0, 1]; 1 keeps the whole vocabulary.
            seed: seed of the sampling generator, for reproducible samples.
            batch_size: rows generated together.
            score: also say how faithful each text is: its round trip, the cosine between the embedding it was
                decoded from and its own embedding, read back with the same instruction (see `inference.decode`).
            best_of: sample this many candidates per text or state row (needs `do_sample`; `seed` makes the draw
                reproducible) and keep the one with the best round trip.

        Returns:
            One string per text or state row, special tokens removed; with `score`, one `genvec.decode.Decoded`
            (`text`, `score`, and with `best_of` > 1 every `candidates` with its score) per row.

        Raises:
            InputError: both or neither of texts and states, states of the wrong shape, bad numbers, `best_of` > 1
                without sampling.

        Example:
            >>> model.decode(["where do polar bears live?"], max_new_tokens=40)
            ['Polar bears live in the Arctic, ...']
            >>> best = model.decode(["where do polar bears live?"], do_sample=True, seed=0, best_of=4, score=True)[0]
            >>> best.text, best.score   # the score is a cosine: 1 when the text gives the embedding back exactly
        """
        if (texts is None) == (states is None):
            raise InputError("decode() needs exactly one of texts (strings to compress) or states ((B, K, H) "
                             "tensor).", param="texts")
        if not isinstance(do_sample, bool):
            raise InputError(f"do_sample must be True or False, got {do_sample!r}.", param="do_sample")
        sampling = decoding.Sampling(temperature, top_p, seed) if do_sample else None
        decoding.check_decode_arguments(max_new_tokens, sampling, batch_size, best_of=best_of, score=score)
        if texts is None:
            return decode(self, states, max_new_tokens=max_new_tokens, sampling=sampling, batch_size=batch_size,
                          score=score, best_of=best_of,
                          instruction=resolve_instruction(self, instruction=instruction, side=side))
        source = prepare(self, texts, instruction=instruction, side=side, truncate=truncate)
        warn_if_cut(source)
        return decode(self, source, max_new_tokens=max_new_tokens, sampling=sampling, batch_size=batch_size,
                      score=score, best_of=best_of)

    def inspect(self: Method, text: str, *, top_k: int = 10, truncate: Truncate = "cut") -> decoding.LogitLens:
        """Logit lens of one text: for every special token, the top tokens of the LM head applied to its final
        hidden state and to its compression state, with probabilities (see `genvec.decode`).

        Example:
            >>> print(model.inspect("where do polar bears live?", top_k=5).to_table())
        """
        if not isinstance(text, str):
            raise InputError(f"inspect() takes one text (a string), got {type(text).__name__}.", param="text")
        inputs = prepare(self, [text], truncate=truncate, what="text")
        warn_if_cut(inputs)
        return inspect(self, inputs, top_k=top_k)

    def identity(self: Method) -> str:
        """Which model this is (see `genvec.inference.identity`): 32 hex digits."""
        return identity(self)
