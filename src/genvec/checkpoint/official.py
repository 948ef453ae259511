"""Read an official LLM2Vec-Gen release (McGill-NLP/LLM2Vec-Gen-*) in genvec terms (paper section 9).

A release stores no backbone weights. Its files, and what genvec takes from each (the table `FILES`):

- `run_config.yml`: base model id, dtype, max input length, special-token strings. Written with Python `str()`
  values (duplicate keys, "None", object reprs), so it is not read as YAML: only the needed `key: value` lines
  are taken, the last occurrence winning, and nothing in it is ever evaluated (lists go through `ast.literal_eval`).
- `encoder_decoder_config.json`: `encoding_mode` "last_K_tokens" gives K (it overrides the yml's).
- `encoder/adapter_config.json` + `encoder/adapter_model.safetensors`: a peft trainable-tokens adapter. Its key
  ending in `embed_tokens.trainable_tokens_delta` holds the N special-token rows (full values, not differences),
  row i belonging to token id `token_indices[i]`. It may also hold a tied copy of the rows and the whole resized
  embedding matrix; neither is needed, since the backbone is frozen and genvec keeps its vocabulary untouched.
- `reconstruction_mlp`, `alignment_mlp`: `torch.save` dicts `{"state_dict": {projection.weight, projection.bias},
  "config": {input_dim, output_dim, dtype, ...}}`, read with `torch.load(weights_only=True, map_location="cpu")`.
- the tokenizer files: the base tokenizer plus the N tokens `<question1>..<questionN>`; it gives the ids that
  place each adapter row, which must equal `token_indices`.

In genvec terms the release is: backbone = the base model, special_tokens.weight = the adapter rows in the order
the tokens are appended, R and A = the two heads. The text is tokenised by the base tokenizer, which gives the same
ids as the release's tokenizer for any text without `<questionN>` strings; the embedding is the same math (text,
then the special tokens, left padding, final states of the last K, R then A, mean), returned in float32.
`training_args.bin` (a pickle of arbitrary objects) is never downloaded or read.

All problems (missing files, missing or unexpected keys, shapes that disagree) are reported in one error. This file
reads files and checks a loaded backbone against them; `genvec.loading` builds the model.
"""

import ast
import fnmatch
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from genvec import backbone as backbones
from genvec.config import GenVecConfig, ModelConfig, TokensConfig
from genvec.device import DTYPE_SPELLINGS, dtype_name
from genvec.errors import CheckpointError
from genvec.files import list_files

logger = logging.getLogger(__name__)

# The official releases on the hub. Their ids drop the dot of the model size: Qwen3-0.6B's is "...-Qwen3-06B".
RELEASES = (
    "McGill-NLP/LLM2Vec-Gen-Qwen3-06B",
    "McGill-NLP/LLM2Vec-Gen-Qwen3-17B",
    "McGill-NLP/LLM2Vec-Gen-Qwen3-4B",
    "McGill-NLP/LLM2Vec-Gen-Qwen3-8B",
    "McGill-NLP/LLM2Vec-Gen-Qwen25-05B",
)
RELEASE_PREFIX = "McGill-NLP/LLM2Vec-Gen-"

RUN_CONFIG = "run_config.yml"
ENCODER_DECODER_CONFIG = "encoder_decoder_config.json"
ADAPTER_CONFIG = "encoder/adapter_config.json"
ADAPTER_WEIGHTS = "encoder/adapter_model.safetensors"
RECONSTRUCTION_HEAD = "reconstruction_mlp"
ALIGNMENT_HEAD = "alignment_mlp"
TOKENIZER_CONFIG = "tokenizer_config.json"

# Every file genvec reads from a release: (path, what it gives). All are required.
FILES = (
    (RUN_CONFIG, "base model id, dtype, max input length, special-token strings"),
    (ENCODER_DECODER_CONFIG, "encoding_mode last_K_tokens: K"),
    (ADAPTER_CONFIG, "token_indices: the ids of the N special tokens, the row order of the adapter"),
    (ADAPTER_WEIGHTS, "the N special-token rows"),
    (RECONSTRUCTION_HEAD, "R, the reconstruction projection H -> H"),
    (ALIGNMENT_HEAD, "A, the alignment projection H -> D"),
    (TOKENIZER_CONFIG, "the release's tokenizer (with tokenizer.json or vocab files): special-token ids"),
)

# Files a hub download fetches (the tokenizer may need any of these, depending on its kind).
DOWNLOAD_PATTERNS = [path for path, _ in FILES] + [
    "tokenizer.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
]

# Every tensor genvec reads: (file, key pattern, genvec tensor it becomes or None when only checked, required).
# Adapter keys carry a prefix that depends on how the backbone was wrapped (`base_model.model.` for an AutoModel,
# `base_model.model.model.` for a causal LM), hence the patterns.
KEYS = (
    (ADAPTER_WEIGHTS, "*embed_tokens.trainable_tokens_delta", "special_tokens.weight", True),
    (ADAPTER_WEIGHTS, "*lm_head.trainable_tokens_delta", None, False),  # tied copy of the rows; must be equal
    (ADAPTER_WEIGHTS, "*embed_tokens.base_layer.weight", None, False),  # the whole resized matrix; frozen, unused
    (RECONSTRUCTION_HEAD, "state_dict.projection.weight", "reconstruction.weight", True),
    (RECONSTRUCTION_HEAD, "state_dict.projection.bias", "reconstruction.bias", True),
    (ALIGNMENT_HEAD, "state_dict.projection.weight", "alignment.weight", True),
    (ALIGNMENT_HEAD, "state_dict.projection.bias", "alignment.bias", True),
)

# The head files' `config` entries genvec checks against the tensors; other config entries are plain values
# (size, pooling_mode) it tolerates.
HEAD_CONFIG_KEYS = ("input_dim", "output_dim")

RUN_CONFIG_KEYS = ("model_name_or_path", "torch_dtype", "max_input_length", "special_tokens", "encoding_mode")
ENCODING_MODE = re.compile(r"^last_(\d+)_tokens$")
# Probe texts that must tokenise the same with the backbone's tokenizer and the release's.
TOKENIZER_PROBES = ("Where do polar bears live? They live on the Arctic sea ice.", "a b  c\n123 héllo, wörld!")


@dataclass(frozen=True)
class OfficialRelease:
    """What genvec takes from an official release, before any backbone is loaded."""

    directory: Path
    base_model: str
    """`model_name_or_path` of run_config.yml: the backbone the release was trained on."""
    dtype: str
    """genvec dtype name of the release's `torch_dtype`."""
    max_length: int
    num_compression_tokens: int
    special_token_strings: tuple[str, ...]
    """The N special tokens in the order they are appended to the text."""
    tensors: dict[str, torch.Tensor]
    """genvec trainable tensors by name, fp32: special_tokens.weight (N, H), reconstruction.*, alignment.*."""
    tokenizer: PreTrainedTokenizerBase
    """The release's tokenizer (the base tokenizer plus the N special tokens)."""

    @property
    def hidden_size(self) -> int:
        return self.tensors["special_tokens.weight"].shape[1]

    @property
    def embedding_dim(self) -> int:
        return self.tensors["alignment.weight"].shape[0]

    def config(self) -> GenVecConfig:
        """The `GenVecConfig` of the release: backbone = the base model, N, K, D and dtype of the release."""
        return GenVecConfig(
            model=ModelConfig(
                backbone=self.base_model, embedding_dim=self.embedding_dim, dtype=self.dtype, max_length=self.max_length
            ),
            tokens=TokensConfig(
                num_special_tokens=len(self.special_token_strings), num_compression_tokens=self.num_compression_tokens
            ),
        )


def is_official(directory: Path) -> bool:
    """Whether a local directory looks like an official release (any of its marker files)."""
    return any((directory / path).is_file() for path in (RUN_CONFIG, ENCODER_DECODER_CONFIG, ADAPTER_CONFIG))


def releases_hint(repo_id: str, *, not_found: bool) -> str:
    """A sentence listing the official releases, for a hub id that looks like one (`McGill-NLP/LLM2Vec-Gen-*`, any
    case) that the hub does not know (`not_found`) or, where the hub cannot say (offline), that is none of them (the
    dotted "-Qwen3-0.6B" is the usual slip); "" otherwise."""
    looks_official = repo_id.lower().startswith(RELEASE_PREFIX.lower())
    is_release = repo_id.lower() in {release.lower() for release in RELEASES}
    if not looks_official or (is_release and not not_found):
        return ""
    return (f"The official LLM2Vec-Gen releases are {', '.join(RELEASES)} (the ids drop the dot of the size: "
            "Qwen3-0.6B is -Qwen3-06B); pass one of them, or a local copy of one.")


def read_official(directory: str | Path) -> OfficialRelease:
    """Read and check every file of a release (no backbone needed); all problems are raised in one error."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{str(directory)!r} is not a directory; pass the directory of an LLM2Vec-Gen release.")
    # Every reader skips a missing file (listed here once), so that all problems are reported together.
    problems = [f"missing file {path} ({role})" for path, role in FILES if not (directory / path).is_file()]
    run_config = _read_run_config(directory / RUN_CONFIG, problems)
    num_compression_tokens = _read_num_compression_tokens(directory, run_config, problems)
    token_indices = _read_token_indices(directory / ADAPTER_CONFIG, problems)
    tensors = _read_tensors(directory, problems)
    tokenizer, strings = _read_special_tokens(directory, run_config, token_indices, problems)
    if not problems:
        _check_shapes(tensors, token_indices, num_compression_tokens, problems)
    if problems:
        _raise(directory, problems)
    # Row i of the adapter belongs to token id token_indices[i]; genvec's rows follow the order of the text.
    ids = tokenizer.convert_tokens_to_ids(list(strings))
    tensors["special_tokens.weight"] = tensors["special_tokens.weight"][[token_indices.index(i) for i in ids]]
    return OfficialRelease(
        directory=directory,
        base_model=run_config["model_name_or_path"],
        dtype=run_config["dtype"],
        max_length=run_config["max_length"],
        num_compression_tokens=num_compression_tokens,
        special_token_strings=strings,
        tensors=tensors,
        tokenizer=tokenizer,
    )


# ------------------------------------------------------------------------------------------------ config files


def parse_run_config(text: str) -> dict[str, str | None]:
    """The raw values of the needed top-level `key: value` lines of a run_config.yml; the last occurrence wins.

    Values are strings with surrounding quotes removed; "None", "null", "~" and empty values become None. No line
    is interpreted as YAML, so Python object reprs and duplicate keys do no harm.
    """
    values: dict[str, str | None] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if not separator or key != key.strip() or key not in RUN_CONFIG_KEYS:
            continue  # indented lines belong to nested values; other keys are not needed
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = None if value in ("", "None", "null", "~") else value
    return values


def _read_run_config(path: Path, problems: list[str]) -> dict[str, object]:
    """Base model id, genvec dtype name, max length and (if given as a list) special-token strings."""
    if not path.is_file():
        return {}
    raw = parse_run_config(path.read_text(encoding="utf-8", errors="replace"))
    config: dict[str, object] = {"model_name_or_path": raw.get("model_name_or_path"), "special_tokens": None}
    if not config["model_name_or_path"]:
        problems.append(f"{RUN_CONFIG}: no model_name_or_path (the base model id)")
    dtype = raw.get("torch_dtype") or "auto"
    config["dtype"] = "auto" if dtype == "auto" else dtype_name(dtype)
    if config["dtype"] is None:
        problems.append(f"{RUN_CONFIG}: torch_dtype {raw['torch_dtype']!r} is not one of "
                        f"{['auto', *sorted(DTYPE_SPELLINGS)]}")
    try:
        config["max_length"] = int(raw.get("max_input_length") or 512)
    except ValueError:
        problems.append(f"{RUN_CONFIG}: max_input_length {raw['max_input_length']!r} is not an integer")
    config["encoding_mode"] = raw.get("encoding_mode")
    text = raw.get("special_tokens")
    if text and text.startswith("["):
        try:
            strings = ast.literal_eval(text)  # literals only: never executes anything
        except (ValueError, SyntaxError):
            strings = None
        if isinstance(strings, list) and all(isinstance(item, str) for item in strings):
            config["special_tokens"] = strings
    return config


def _read_num_compression_tokens(directory: Path, run_config: dict[str, object], problems: list[str]) -> int:
    """K from `encoding_mode` ("last_K_tokens"): encoder_decoder_config.json first, else run_config.yml."""
    document = _read_json(directory / ENCODER_DECODER_CONFIG, problems)
    mode = document.get("encoding_mode") or run_config.get("encoding_mode")
    if mode is None and not (directory / ENCODER_DECODER_CONFIG).is_file():
        return 0  # already reported as a missing file
    match = ENCODING_MODE.match(str(mode))
    if match is None or int(match.group(1)) < 1:
        problems.append(
            f"{ENCODER_DECODER_CONFIG}: encoding_mode {mode!r} is not supported; genvec reads 'last_K_tokens' (K >= 1)"
        )
        return 0
    return int(match.group(1))


def _read_token_indices(path: Path, problems: list[str]) -> list[int]:
    """`token_indices` of a peft trainable-tokens adapter config."""
    document = _read_json(path, problems)
    if not document:
        return []
    if document.get("peft_type") != "TRAINABLE_TOKENS":
        problems.append(
            f"{ADAPTER_CONFIG}: peft_type {document.get('peft_type')!r}; genvec reads only TRAINABLE_TOKENS adapters "
            "(releases that also adapt the backbone, e.g. with LoRA, are not supported)"
        )
    indices = document.get("token_indices")
    if not isinstance(indices, list) or not indices or not all(isinstance(i, int) for i in indices):
        problems.append(f"{ADAPTER_CONFIG}: token_indices must be a non-empty list of token ids, got {indices!r}")
        return []
    return indices


def _read_json(path: Path, problems: list[str]) -> dict:
    """A JSON object; {} for a missing file (reported elsewhere) or a damaged one (reported here)."""
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as err:
        problems.append(f"{path.name}: not readable JSON ({err})")
        return {}
    if not isinstance(document, dict):
        problems.append(f"{path.name}: expected a JSON object, got {type(document).__name__}")
        return {}
    return document


# ------------------------------------------------------------------------------------------------ tensors


def _read_tensors(directory: Path, problems: list[str]) -> dict[str, torch.Tensor]:
    """Every tensor of `KEYS`, by genvec name, in fp32; missing and unexpected keys become problems.

    Each file is first listed as readers by key, so a tensor is loaded only when `KEYS` maps it somewhere.
    """
    readers = {ADAPTER_WEIGHTS: _read_adapter, RECONSTRUCTION_HEAD: _read_head, ALIGNMENT_HEAD: _read_head}
    contents = {
        file: read(directory / file, problems) if (directory / file).is_file() else None
        for file, read in readers.items()
    }
    tensors: dict[str, torch.Tensor] = {}
    checked: dict[str, Callable[[], torch.Tensor]] = {}
    for file, entries in contents.items():
        if entries is None:
            continue  # missing or unreadable: already a problem
        claimed = set()
        for key_file, pattern, target, required in KEYS:
            if key_file != file:
                continue
            matches = [key for key in entries if fnmatch.fnmatchcase(key, pattern)]
            claimed.update(matches)
            if len(matches) > 1:
                problems.append(f"{file}: several keys match {pattern}: {matches}")
            elif not matches and required:
                problems.append(f"{file}: missing key {pattern}")
            elif matches and target is not None:
                tensors[target] = entries[matches[0]]()
            elif matches:
                checked[pattern] = entries[matches[0]]
        problems += [f"{file}: unexpected key {key}" for key in entries if key not in claimed]
    tied_copy = checked.get("*lm_head.trainable_tokens_delta")
    if (tied_copy is not None and "special_tokens.weight" in tensors
            and not torch.equal(tied_copy(), tensors["special_tokens.weight"])):
        problems.append(f"{ADAPTER_WEIGHTS}: the lm_head copy of the special-token rows differs from the rows")
    return {name: tensor.float().contiguous() for name, tensor in tensors.items()}


def _read_adapter(path: Path, problems: list[str]) -> dict[str, Callable[[], torch.Tensor]] | None:
    """Lazy readers of the adapter's tensors by key (the whole embedding matrix, if present, is never loaded)."""
    try:
        with safe_open(str(path), framework="pt") as file:
            keys = list(file.keys())
    except (SafetensorError, OSError) as err:
        problems.append(f"{ADAPTER_WEIGHTS}: not readable as safetensors ({err})")
        return None

    def reader(key: str) -> Callable[[], torch.Tensor]:
        def read() -> torch.Tensor:
            with safe_open(str(path), framework="pt") as file:
                return file.get_tensor(key)

        return read

    return {key: reader(key) for key in keys}


def _read_head(path: Path, problems: list[str]) -> dict[str, Callable[[], object]] | None:
    """A head file as flat keys (`state_dict.projection.weight`, `config`), read without executing any code.

    `weights_only=True` unpickles only tensors and plain containers and values; a file holding anything else
    (an object of some class, a function) is refused.
    """
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  torch raises many types for foreign or damaged files: all reported
        problems.append(
            f"{path.name}: refused or unreadable: genvec reads head files only with torch.load(weights_only=True), "
            f"which accepts tensors and plain values, no other pickled objects ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''})"
        )
        return None
    if not isinstance(content, dict) or not isinstance(content.get("state_dict"), dict):
        problems.append(f"{path.name}: expected a dict with 'state_dict' and 'config', got {type(content).__name__}")
        return None
    entries: dict[str, Callable[[], object]] = {}
    for key, value in content.items():
        if key == "state_dict":
            for name, tensor in value.items():
                if not isinstance(tensor, torch.Tensor):
                    problems.append(f"{path.name}: state_dict.{name} is a {type(tensor).__name__}, not a tensor")
                    continue
                entries[f"state_dict.{name}"] = lambda tensor=tensor: tensor
        elif key != "config":
            entries[key] = lambda value=value: value  # matches no pattern of KEYS: reported as unexpected
    _check_head_config(path.name, content.get("config"), content["state_dict"], problems)
    return entries


def _check_head_config(name: str, config: object, state_dict: dict, problems: list[str]) -> None:
    """The head's `config` must be a dict whose input/output sizes match its weight."""
    if not isinstance(config, dict):
        problems.append(f"{name}: missing key config (a dict of input_dim, output_dim, dtype)")
        return
    missing = [key for key in HEAD_CONFIG_KEYS if key not in config]
    if missing:
        problems.append(f"{name}: config lacks {missing}")
        return
    weight = state_dict.get("projection.weight")
    if isinstance(weight, torch.Tensor) and tuple(weight.shape) != (config["output_dim"], config["input_dim"]):
        problems.append(
            f"{name}: projection.weight has shape {tuple(weight.shape)}, but config says "
            f"output_dim {config['output_dim']} x input_dim {config['input_dim']}"
        )


def _check_shapes(
    tensors: dict[str, torch.Tensor], token_indices: list[int], num_compression_tokens: int, problems: list[str]
) -> None:
    """The adapter rows, R and A must agree on N and H; K must not exceed N."""
    rows = tensors["special_tokens.weight"]
    hidden = rows.shape[1]
    expected = {
        "special_tokens.weight": (len(token_indices), hidden),
        "reconstruction.weight": (hidden, hidden),
        "reconstruction.bias": (hidden,),
        "alignment.weight": (tensors["alignment.weight"].shape[0], hidden),
        "alignment.bias": (tensors["alignment.weight"].shape[0],),
    }
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            problems.append(
                f"{name}: shape {tuple(tensors[name].shape)}, expected {shape} (N={len(token_indices)}, H={hidden})"
            )
    if num_compression_tokens > len(token_indices):
        problems.append(
            f"encoding_mode keeps the last {num_compression_tokens} tokens, but there are only {len(token_indices)}"
        )


# ------------------------------------------------------------------------------------------------ tokenizer


def _read_special_tokens(
    directory: Path, run_config: dict[str, object], token_indices: list[int], problems: list[str]
) -> tuple[PreTrainedTokenizerBase | None, tuple[str, ...]]:
    """The release's tokenizer and the N special-token strings, in the order they are appended to the text.

    The candidates are the tokenizer's additional special tokens, then run_config.yml's `special_tokens`; the
    first whose ids are exactly the adapter's `token_indices` (in any order) is taken.
    """
    if not (directory / TOKENIZER_CONFIG).is_file():
        return None, ()  # already reported as a missing file
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), **backbones.NO_REMOTE_CODE)
    except (OSError, ValueError, KeyError) as err:
        problems.append(f"tokenizer: the release's tokenizer could not be loaded ({err})")
        return None, ()
    declared = getattr(tokenizer, "extra_special_tokens", None) or getattr(tokenizer, "additional_special_tokens", None)
    if isinstance(declared, dict):
        declared = list(declared.values())
    candidates = [("the tokenizer's additional special tokens", list(declared or []))]
    if run_config.get("special_tokens"):
        candidates.append((f"{RUN_CONFIG} special_tokens", run_config["special_tokens"]))
    for _, strings in candidates:
        ids = tokenizer.convert_tokens_to_ids(strings)
        if strings and len(set(ids)) == len(ids) and sorted(ids) == sorted(token_indices):
            return tokenizer, tuple(strings)
    if token_indices:
        seen = "; ".join(
            f"{what} {strings} have ids {tokenizer.convert_tokens_to_ids(strings) if strings else []}"
            for what, strings in candidates
        )
        problems.append(f"special tokens: {seen}; none equals the adapter's token_indices {token_indices}")
    return tokenizer, ()


def check_backbone_fits(
    release: OfficialRelease, backbone: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, source: str
) -> None:
    """Raise a `CheckpointError` unless the loaded backbone has the release's hidden size and tokenises text as the
    release's tokenizer does."""
    problems = []
    if backbones.hidden_size(backbone) != release.hidden_size:
        problems.append(
            f"the backbone {source!r} has hidden size {backbones.hidden_size(backbone)}, the release's special tokens "
            f"have {release.hidden_size}"
        )
    for probe in TOKENIZER_PROBES:
        if tokenizer(probe)["input_ids"] != release.tokenizer(probe)["input_ids"]:
            problems.append(f"the backbone's tokenizer splits {probe!r} differently from the release's tokenizer")
            break
    if problems:
        raise CheckpointError(
            f"{str(release.directory)!r} was trained on {release.base_model!r}, and the backbone does not fit:\n"
            + "\n".join(problems)
            + "\nLoad it with its base model (backbone=None, or a local copy of that model)."
        )


def _raise(directory: Path, problems: list[str]) -> None:
    found = list_files(directory)
    expected = ", ".join(path for path, _ in FILES)
    raise CheckpointError(
        f"{str(directory)!r} is not a readable LLM2Vec-Gen release:\n"
        + "\n".join(problems)
        + f"\nexpected files: {expected}; found: {found or 'nothing'}"
    )

