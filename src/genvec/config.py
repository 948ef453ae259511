"""`GenVecConfig`: the one typed configuration behind the Python API, the CLI and YAML/JSON files.

A config is built in one place: defaults <- file <- overrides (`{"train.learning_rate": 5e-4}` or CLI words
`["--train.learning_rate", "5e-4"]`). Every field has a type, a default and an attribute docstring; that docstring
is the CLI's help text (`field_docs`). Building a config validates all of it at once: a `ConfigError` lists every
problem, one per line (`train.learning_rate: must be > 0, got -0.001`).

Sections: `model` (which backbone, how it runs, instructions), `tokens` (the appended special tokens), `loss`
(objective weights), `data` (query source, response generation, data paths), `teacher` (the embedder of the
responses), `train` (the loop). Later sections (eval, serve) follow the same pattern.
"""

import ast
import dataclasses
import inspect
import json
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from genvec.errors import ConfigError

DEFAULT_INSTRUCTIONS = {
    "query": "Generate a passage that best answers this question:",
    "document": "Summarize the following passage:",
}


@dataclass(frozen=True)
class ModelConfig:
    """Which frozen LLM to use and how it runs."""

    backbone: str = ""
    """Hub id or local directory of the frozen causal LM, e.g. `Qwen/Qwen3-0.6B`."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of the backbone; None means the default branch."""
    embedding_dim: int | None = None
    """Size of the output embedding; None means the backbone's hidden size. Set it to the teacher's size to train."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Dtype of the frozen backbone: auto is bf16 on GPUs that support it, else fp32 (see tokens.trainable_dtype)."""
    device: str = "auto"
    """Device to load the model on: auto, cpu, cuda, cuda:N or mps."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flex_attention"] = "auto"
    """Attention kernel of the backbone; auto lets transformers choose (SDPA where it can)."""
    max_length: int = 512
    """Longest input in tokens, special tokens included; longer texts are cut, never the special tokens."""
    instructions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_INSTRUCTIONS))
    """Instructions by role, used by `encode_query` / `encode_document` (keys `query`, `document`)."""


@dataclass(frozen=True)
class TokensConfig:
    """The trainable special tokens appended to every input."""

    num_special_tokens: int = 10
    """N: special tokens appended to every input (thought tokens first, then compression tokens)."""
    num_compression_tokens: int = 10
    """K: the last K special tokens, whose states become the embedding and the decoder prompt."""
    init_seed: int = 0
    """Seed for the initial special vectors and projections, so a new model is reproducible."""
    trainable_dtype: Literal["fp32", "bf16"] = "fp32"
    """Dtype of the special vectors, both projections and their outputs; losses and checkpoints stay fp32."""


@dataclass(frozen=True)
class LossConfig:
    """The training objective: reconstruction cross-entropy plus alignment MSE."""

    reconstruction_weight: float = 1.0
    """Weight of the reconstruction cross-entropy (the frozen LLM rebuilds the response from the compression states)."""
    alignment_weight: float = 1.0
    """Weight of the alignment MSE between the embedding and the teacher embedding of the response."""
    logits_chunk_size: int = 256
    """Response tokens per chunk when the LM head scores them; one chunk's (chunk x vocabulary) logits is the most
    that exists at once."""


@dataclass(frozen=True)
class DataConfig:
    """Self-supervised training data: where the queries come from, how the backbone answers them, where files go."""

    queries: str = ""
    """Query source: a .jsonl/.json, .csv, .tsv, .txt (one per line) or .parquet file, or a Hugging Face dataset."""
    query_field: str | None = None
    """Field or column holding the query; None finds `query`, `question` or `prompt` (text files have none)."""
    split: str = "train"
    """Split of a Hugging Face dataset source (ignored for files)."""
    max_queries: int | None = None
    """Use at most this many queries (after skipping empty and duplicate ones); None uses all."""
    responses: str = ""
    """Responses JSONL file written by generate-responses; shards are written beside it (NAME.shard-*-of-*.jsonl)."""
    targets: str = ""
    """Directory of the teacher-embedding store written by compute-targets and read by training."""
    prompt_max_length: int = 1024
    """Longest prompt in tokens (chat template included); longer queries are cut, the template is kept."""
    max_new_tokens: int = 500
    """Most tokens the backbone generates per response; a response cut here has finish_reason `length`."""
    decoding: Literal["model", "greedy", "sample"] = "model"
    """model: the backbone's generation config (sampling for Qwen3, as in the paper); greedy; or sample with it."""
    seed: int | None = 0
    """Seed for sampling, applied per batch so resumed and uninterrupted runs agree; None leaves the RNG unseeded."""
    generation_batch_size: int = 8
    """Queries generated together (one padded batch with the KV cache; the vLLM engine schedules them itself)."""
    engine: Literal["transformers", "vllm"] = "transformers"
    """Generation engine: transformers `generate`, or vLLM on GPUs (`pip install genvec[vllm]`)."""


@dataclass(frozen=True)
class TeacherConfig:
    """The unsupervised embedder whose embeddings of the responses the model learns to match."""

    name: str = ""
    """Hub id or local directory of the teacher (for llm2vec, the base model or an LLM2Vec PEFT adapter)."""
    kind: Literal["sentence-transformers", "hf-encoder", "llm2vec"] = "sentence-transformers"
    """sentence-transformers model; hf-encoder (any AutoModel with mean/CLS pooling); llm2vec (bidirectional LLM)."""
    pooling: Literal["auto", "mean", "cls"] = "auto"
    """auto for sentence-transformers (the model's own) and llm2vec (mean); hf-encoder needs mean or cls."""
    adapters: list[str] = field(default_factory=list)
    """llm2vec only: PEFT adapters merged on top of `name`, in order (e.g. the unsup-SimCSE one)."""
    revision: str | None = None
    """Hub revision of the teacher; None means the default branch."""
    batch_size: int = 64
    """Responses embedded per teacher forward pass."""
    max_length: int | None = None
    """Longest teacher input in tokens; None is the model's own limit (sentence-transformers) or 512 (the paper)."""
    storage_dtype: Literal["fp32", "fp16"] = "fp32"
    """Dtype of the stored teacher embeddings; lookups always return float32."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Dtype the teacher runs in: auto is bf16 on GPUs that support it, else fp32."""
    device: str = "auto"
    """Device of the teacher: auto, cpu, cuda, cuda:N or mps."""


@dataclass(frozen=True)
class TrainConfig:
    """The training loop; defaults are the published recipe (LLM2Vec-Gen v2)."""

    run_dir: str = "runs/genvec"
    """Directory of the run: resolved config, metrics.jsonl, checkpoints/ and the final model in final/."""
    seed: int = 42
    """Seed of the data order (and of every other random choice of the loop)."""
    max_steps: int = 5000
    """Optimizer steps to train for."""
    batch_size: int = 32
    """Examples per optimizer step over all devices (the effective batch)."""
    micro_batch_size: int | None = None
    """Examples per device per forward pass; None means batch_size / devices. Smaller values accumulate gradients."""
    learning_rate: float = 3e-4
    """Peak learning rate of AdamW (the paper: 3e-4 for Qwen3, 5e-4 for Qwen2.5 and Llama)."""
    alignment_learning_rate: float | None = None
    """Peak learning rate of the alignment projection A alone; None uses learning_rate. A unit-norm teacher (e.g.
    all-MiniLM-L6-v2) makes the MSE tiny, and A, which only that loss trains, then learns faster with a larger one."""
    warmup_steps: int = 100
    """Steps of linear warm-up from 0 to the peak learning rate."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Learning-rate decay after warm-up (constant keeps the peak)."""
    schedule_steps: int | None = None
    """Steps over which the schedule decays to 0; None means max_steps. The official code decays over 20000 and
    stops at 5000 (set 20000 to reproduce it exactly)."""
    weight_decay: float = 0.0
    """AdamW weight decay of the trainable tensors."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW beta1 and beta2."""
    adam_epsilon: float = 1e-8
    """AdamW epsilon."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm; 0 turns clipping off."""
    activation_checkpointing: bool = False
    """Recompute the backbone's layers in the backward pass of reconstruction: less memory, more time."""
    compile: bool = False
    """Compile the backbone's decoder layers with torch.compile (same losses; the first steps wait for compilation)."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding); the data order stays seeded."""
    log_every: int = 10
    """Steps between lines of metrics.jsonl (and tracker logs)."""
    save_every: int = 500
    """Steps between checkpoints (trainable tensors, optimizer, scheduler, RNG states, data position)."""
    keep_last: int = 3
    """Checkpoints kept in run_dir/checkpoints; older ones are deleted."""
    resume: str | None = None
    """None starts a new run (refused if run_dir has checkpoints); "latest" continues from the newest checkpoint in
    run_dir; a path continues from that checkpoint."""
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    """Also log metrics to TensorBoard or Weights & Biases (the package must be installed)."""


@dataclass(frozen=True)
class GenVecConfig:
    """Everything that defines a genvec model and how it is trained; saved with every run and checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    """The frozen backbone and how it runs."""
    tokens: TokensConfig = field(default_factory=TokensConfig)
    """The appended special tokens."""
    loss: LossConfig = field(default_factory=LossConfig)
    """The training objective."""
    data: DataConfig = field(default_factory=DataConfig)
    """Query source, response generation and data file paths."""
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    """The teacher that embeds the responses."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """The training loop."""

    def __post_init__(self) -> None:
        problems = _section_problems(self)
        if problems:
            raise ConfigError("invalid configuration:\n" + "\n".join(problems))

    @classmethod
    def from_dict(cls, data: Mapping[str, object], *, source: str = "config") -> "GenVecConfig":
        """Build a config from nested mappings (as read from YAML/JSON); unknown keys and bad types are errors."""
        problems: list[str] = []
        values = _read_fields(cls, data, "", problems)
        if not problems:
            try:
                return cls(**values)
            except ConfigError as err:
                problems = str(err).splitlines()[1:]
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(problems))

    @classmethod
    def from_file(cls, path: str | Path) -> "GenVecConfig":
        """Read a YAML (`.yaml`/`.yml`) or JSON (`.json`) config file."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist; pass the path of a .yaml or .json file.")
        if path.suffix not in (".yaml", ".yml", ".json"):
            raise ConfigError(f"config file {str(path)!r}: unknown extension; use .yaml, .yml or .json.")
        import yaml

        text = path.read_text(encoding="utf-8")
        try:
            data = json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})
        except (ValueError, yaml.YAMLError) as err:
            raise ConfigError(f"config file {str(path)!r} could not be parsed: {err}") from err
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections, got {type(data).__name__}.")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict[str, object]:
        """Nested plain dicts, ready for JSON or YAML."""
        return dataclasses.asdict(self)

    def to_file(self, path: str | Path) -> None:
        """Write the config as YAML or JSON (by extension), atomically."""
        from genvec.files import write_text_atomic

        path = Path(path)
        if path.suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2) + "\n"
        else:
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        write_text_atomic(path, text)

    def with_overrides(self, overrides: Mapping[str, object] | Sequence[str]) -> "GenVecConfig":
        """Return a copy with dotted fields replaced, e.g. `{"model.max_length": 256}` or `["--model.max_length", "256"]`.

        String values are converted to the field's type; every problem is reported in one `ConfigError`.
        """
        if not isinstance(overrides, Mapping):
            overrides = parse_override_words(overrides)
        data = self.to_dict()
        problems = []
        for dotted, value in overrides.items():
            section, _, name = dotted.partition(".")
            if section not in data or not name or name not in data[section]:
                problems.append(f"{dotted}: no such field; valid fields: {', '.join(field_names(GenVecConfig))}")
                continue
            data[section][name] = value
        if problems:
            raise ConfigError("invalid overrides:\n" + "\n".join(problems))
        return GenVecConfig.from_dict(data, source="overrides")


def parse_override_words(words: Sequence[str]) -> dict[str, str]:
    """Turn `["--train.lr", "1e-4", "--model.dtype=bf16"]` into `{"train.lr": "1e-4", "model.dtype": "bf16"}`."""
    overrides: dict[str, str] = {}
    words = list(words)
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--") or "." not in word:
            raise ConfigError(f"override {word!r}: expected '--section.field VALUE' or '--section.field=VALUE'.")
        key, has_value, value = word[2:].partition("=")
        if not has_value:
            if index + 1 >= len(words):
                raise ConfigError(f"override {word!r} has no value; write '{word} VALUE'.")
            index += 1
            value = words[index]
        overrides[key] = value
        index += 1
    return overrides


def field_names(cls: type) -> list[str]:
    """Dotted names of every leaf field of a config class, e.g. `model.backbone`."""
    names = []
    for item in dataclasses.fields(cls):
        hint = typing.get_type_hints(cls)[item.name]
        if dataclasses.is_dataclass(hint):
            names += [f"{item.name}.{sub}" for sub in field_names(hint)]
        else:
            names.append(item.name)
    return names


def field_docs(cls: type) -> dict[str, str]:
    """The attribute docstrings of a dataclass, by field name (the CLI's help text)."""
    source = textwrap.dedent(inspect.getsource(cls))
    body = ast.parse(source).body[0].body
    docs = {}
    for node, following in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docs[node.target.id] = " ".join(str(following.value.value).split())
    return docs


def _read_fields(cls: type, data: object, prefix: str, problems: list[str]) -> dict[str, object]:
    """Convert a mapping into constructor arguments of dataclass `cls`, collecting problems instead of raising."""
    if not isinstance(data, Mapping):
        problems.append(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {type(data).__name__}")
        return {}
    hints = typing.get_type_hints(cls)
    known = [item.name for item in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            problems.append(f"{prefix}{key}: unknown field; valid fields: {', '.join(known)}")
    values = {}
    for name in known:
        if name not in data:
            continue
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            values[name] = hint(**_read_fields(hint, data[name], f"{prefix}{name}.", problems))
            continue
        try:
            values[name] = _convert(data[name], hint)
        except (TypeError, ValueError) as err:
            problems.append(f"{prefix}{name}: {err}")
    return values


def _convert(value: object, hint: object) -> object:
    """Convert `value` to the annotated type; CLI strings are parsed. Raises ValueError with a readable reason."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        if value in args:
            return value
        raise ValueError(f"must be one of {', '.join(map(repr, args))}, got {value!r}")
    if origin in (dict, list, tuple):
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as err:
                raise ValueError(f"expected JSON for a {origin.__name__}, got {value!r}") from err
        if origin is dict:
            if not isinstance(value, Mapping):
                raise ValueError(f"expected a mapping, got {value!r}")
            return {_convert(k, args[0]): _convert(v, args[1]) for k, v in value.items()}
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        items = [_convert(item, args[0]) for item in value]
        return items if origin is list else tuple(items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError as err:
            raise ValueError(f"expected an integer, got {value!r}") from err
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            return float(value)
        except ValueError as err:
            raise ValueError(f"expected a number, got {value!r}") from err
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported field type {hint!r}")


def _section_problems(config: GenVecConfig) -> list[str]:
    """Every problem of every section, one line each, including checks that span sections."""
    problems = []
    model, tokens, loss = config.model, config.tokens, config.loss
    if model.embedding_dim is not None and model.embedding_dim <= 0:
        problems.append(f"model.embedding_dim: must be > 0 or None, got {model.embedding_dim}")
    if tokens.num_special_tokens < 1:
        problems.append(f"tokens.num_special_tokens: must be >= 1, got {tokens.num_special_tokens}")
    if not 1 <= tokens.num_compression_tokens <= max(tokens.num_special_tokens, 1):
        problems.append(
            f"tokens.num_compression_tokens: must be between 1 and tokens.num_special_tokens "
            f"({tokens.num_special_tokens}), got {tokens.num_compression_tokens}"
        )
    if model.max_length < tokens.num_special_tokens + 1:
        problems.append(
            f"model.max_length: must hold one text token plus the {tokens.num_special_tokens} special tokens "
            f"(>= {tokens.num_special_tokens + 1}), got {model.max_length}"
        )
    for name in ("reconstruction_weight", "alignment_weight"):
        if getattr(loss, name) < 0:
            problems.append(f"loss.{name}: must be >= 0, got {getattr(loss, name)}")
    if loss.reconstruction_weight == 0 and loss.alignment_weight == 0:
        problems.append("loss: reconstruction_weight and alignment_weight are both 0; nothing would be trained")
    if loss.logits_chunk_size < 1:
        problems.append(f"loss.logits_chunk_size: must be >= 1, got {loss.logits_chunk_size}")
    problems += _data_problems(config.data) + _teacher_problems(config.teacher) + _train_problems(config.train)
    return problems


def _train_problems(train: TrainConfig) -> list[str]:
    problems = []
    for name in ("max_steps", "batch_size", "log_every", "save_every", "keep_last"):
        if getattr(train, name) < 1:
            problems.append(f"train.{name}: must be >= 1, got {getattr(train, name)}")
    if train.micro_batch_size is not None and not 1 <= train.micro_batch_size <= train.batch_size:
        problems.append(
            f"train.micro_batch_size: must be between 1 and train.batch_size ({train.batch_size}) or None, "
            f"got {train.micro_batch_size}"
        )
    if train.learning_rate <= 0:
        problems.append(f"train.learning_rate: must be > 0, got {train.learning_rate}")
    if train.alignment_learning_rate is not None and train.alignment_learning_rate <= 0:
        problems.append(f"train.alignment_learning_rate: must be > 0 or None, got {train.alignment_learning_rate}")
    if train.warmup_steps < 0:
        problems.append(f"train.warmup_steps: must be >= 0, got {train.warmup_steps}")
    if train.schedule_steps is not None and train.schedule_steps < train.max_steps:
        problems.append(
            f"train.schedule_steps: must be >= train.max_steps ({train.max_steps}) or None, got {train.schedule_steps}"
        )
    if train.weight_decay < 0 or train.adam_epsilon <= 0 or train.max_grad_norm < 0:
        problems.append(
            "train: weight_decay and max_grad_norm must be >= 0 and adam_epsilon > 0, got "
            f"{train.weight_decay}, {train.max_grad_norm}, {train.adam_epsilon}"
        )
    if not all(0 <= beta < 1 for beta in train.adam_betas):
        problems.append(f"train.adam_betas: each must be in [0, 1), got {train.adam_betas}")
    return problems


def _data_problems(data: DataConfig) -> list[str]:
    problems = []
    for name in ("prompt_max_length", "max_new_tokens", "generation_batch_size"):
        if getattr(data, name) < 1:
            problems.append(f"data.{name}: must be >= 1, got {getattr(data, name)}")
    if data.max_queries is not None and data.max_queries < 1:
        problems.append(f"data.max_queries: must be >= 1 or None, got {data.max_queries}")
    return problems


def _teacher_problems(teacher: TeacherConfig) -> list[str]:
    problems = []
    if teacher.batch_size < 1:
        problems.append(f"teacher.batch_size: must be >= 1, got {teacher.batch_size}")
    if teacher.max_length is not None and teacher.max_length < 1:
        problems.append(f"teacher.max_length: must be >= 1 or None, got {teacher.max_length}")
    if teacher.kind == "sentence-transformers" and teacher.pooling != "auto":
        problems.append(
            f"teacher.pooling: sentence-transformers teachers use the model's own pooling; use 'auto', got "
            f"{teacher.pooling!r}"
        )
    if teacher.kind == "hf-encoder" and teacher.pooling == "auto":
        problems.append("teacher.pooling: hf-encoder teachers need 'mean' or 'cls' (BGE models use 'cls'), got 'auto'")
    if teacher.kind == "llm2vec" and teacher.pooling == "cls":
        problems.append("teacher.pooling: llm2vec teachers mean-pool, as in the paper; use 'auto' or 'mean', got 'cls'")
    if teacher.adapters and teacher.kind != "llm2vec":
        problems.append(f"teacher.adapters: only llm2vec teachers take adapters, got kind {teacher.kind!r}")
    return problems
