"""Load the frozen causal LM and its tokenizer (hub id or local directory), and facts about them.

One `AutoModelForCausalLM` serves both sides of LLM2Vec-Gen: its base model gives the final hidden states, its LM
head scores the reconstruction (design decision 1, docs/design.md). Loading freezes it: every parameter has
`requires_grad=False` and the module is in eval mode. This file does not add tokens to the tokenizer or resize the
vocabulary.
"""

import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from genvec.config import ModelConfig
from genvec.device import resolve_device, resolve_dtype
from genvec.errors import InputError

logger = logging.getLogger(__name__)

# Every `from_pretrained` genvec calls gets this: code shipped inside a model directory or repository (`auto_map` in
# config.json or tokenizer_config.json) is never imported, and transformers never asks on stdin whether to. A model
# whose architecture transformers does not have natively cannot be loaded; genvec offers no switch to allow it.
NO_REMOTE_CODE = {"trust_remote_code": False}
REMOTE_CODE_HINT = (
    "genvec never runs code shipped with a model (trust_remote_code is always False); use a model whose "
    "architecture transformers supports natively."
)


@dataclass(frozen=True)
class LoadedBackbone:
    """A frozen causal LM already in memory, its tokenizer, and the `ModelConfig` it was loaded from.

    The config's revision is the pinned commit (for hub ids), so whoever records which weights produced a file (the
    response generation) names them the same way whether it loaded them itself or was handed them.
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    config: ModelConfig


def load_backbone(
    name_or_path: str,
    *,
    revision: str | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device = torch.device("cpu"),  # noqa: B008  torch.device is immutable: one shared default is safe
    attn_implementation: str = "auto",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer with `from_pretrained`, frozen, on `device` in `dtype`.

    Raises:
        InputError: the id or directory cannot be loaded (not found, offline, not a causal LM).
    """
    if not name_or_path:
        raise InputError("no backbone given; pass a hub id such as 'Qwen/Qwen3-0.6B' or a local model directory.")
    kwargs: dict[str, object] = {"revision": revision, "dtype": dtype, **NO_REMOTE_CODE}
    if attn_implementation != "auto":
        kwargs["attn_implementation"] = attn_implementation
    if device.type == "cuda":
        kwargs["device_map"] = str(device)  # load straight onto the GPU, no full copy in host memory
    if not Path(name_or_path).exists() and not _could_be_hub_id(name_or_path):
        raise InputError(
            f"the backbone directory {name_or_path!r} does not exist (relative paths start at {Path.cwd()}); pass an "
            "existing model directory or a hub id (org/name)."
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision, **NO_REMOTE_CODE)
        backbone = AutoModelForCausalLM.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, KeyError, SafetensorError, pickle.UnpicklingError) as err:
        if "trust_remote_code" in str(err):
            raise InputError(remote_code_message(name_or_path, "backbone")) from err
        local = "" if Path(name_or_path).exists() else f" (there is no local directory {name_or_path!r} either)"
        raise InputError(
            f"could not load the backbone {name_or_path!r}{local} (revision {revision or 'default'}): "
            f"{type(err).__name__}: {err}\n"
            "Pass a hub id of a causal LM or a complete local directory saved with save_pretrained (a damaged or "
            "truncated weights file cannot be read); without internet access only local directories (or a filled "
            "Hugging Face cache with HF_HUB_OFFLINE=1) work. " + REMOTE_CODE_HINT
        ) from err
    if device.type != "cuda":
        backbone.to(device)
    freeze(backbone)
    logger.debug("loaded backbone %s (%s, %s)", name_or_path, type(backbone).__name__, dtype)
    return backbone, tokenizer


def fingerprint(backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, str]:
    """Short hashes that tell one backbone from another without reading its weights: its architecture and shape
    (class, text config without names and versions) and its tokenizer (vocabulary and special tokens)."""
    config = backbone.config.get_text_config().to_dict()
    for key in ("_name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash", "name_or_path"):
        config.pop(key, None)
    shape = json.dumps({"class": type(backbone).__name__, "config": config}, sort_keys=True, default=str)
    vocabulary = json.dumps(
        {"vocab": sorted(tokenizer.get_vocab().items()), "special": sorted(map(str, tokenizer.all_special_tokens))},
        sort_keys=True,
    )
    return {name: hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
            for name, text in (("architecture", shape), ("tokenizer", vocabulary))}


def local_path(name_or_path: str) -> str:
    """An existing local directory as an absolute path (so a checkpoint finds it from any working directory); a hub
    id as it is."""
    path = Path(name_or_path).expanduser()
    return str(path.resolve()) if name_or_path and path.exists() else name_or_path


def _could_be_hub_id(name: str) -> bool:
    """`name` has the form of a hub repository id (`org/name` or `name`), not of a path."""
    return not name.startswith((".", "/", "~")) and name.count("/") <= 1 and "\\" not in name


def remote_code_message(name_or_path: str, role: str) -> str:
    """Why a model that needs its own code is refused, naming the files that ask for it (local directories)."""
    asking = [name for name in ("config.json", "tokenizer_config.json")
              if '"auto_map"' in _read_text(Path(name_or_path) / name)]
    where = f" ({', '.join(str(Path(name_or_path) / name) for name in asking)} name it in auto_map)" if asking else ""
    return (
        f"could not load the {role} {name_or_path!r}: it needs Python code shipped with the model{where}, and "
        + REMOTE_CODE_HINT
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def load_configured(
    model: ModelConfig, name_or_path: str | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_backbone` as `model` describes it (revision, attention; "auto" device and dtype resolved), from
    `name_or_path` instead of `model.backbone` when given (e.g. a local copy of the named backbone)."""
    device = resolve_device(model.device)
    return load_backbone(
        name_or_path or model.backbone,
        revision=model.revision,
        dtype=resolve_dtype(model.dtype, device),
        device=device,
        attn_implementation=model.attn_implementation,
    )


def freeze(backbone: torch.nn.Module) -> None:
    """Turn off gradients for every parameter and put the module in eval mode."""
    backbone.requires_grad_(False)
    backbone.eval()


def hidden_size(backbone: PreTrainedModel) -> int:
    """The hidden size H of a causal LM (text part of a multimodal config)."""
    return backbone.config.get_text_config().hidden_size


def resolve_revision(name_or_path: str, revision: str | None = None) -> str | None:
    """The commit hash that `revision` (None: the default branch) of a hub model points to now, else `revision`.

    Loading with the returned commit pins every file of the load, and recording it makes a run reproducible after
    the repository moves on. Asks the hub, or the local cache when offline (`HF_HUB_OFFLINE=1`). A local directory,
    and a name that cannot be resolved (unknown repository, no network and nothing cached), keep `revision`: the
    load that follows reports the real problem with its own message.
    """
    if not name_or_path or Path(name_or_path).exists():
        return revision
    try:
        offline = huggingface_hub.is_offline_mode()  # the cache's refs, without a warning per load
        return huggingface_hub.resolve_revision(name_or_path, revision=revision, local_files_only=offline).resolved
    except Exception as err:  # noqa: BLE001  best effort by design, see the docstring; the load reports what is wrong
        logger.debug("could not resolve revision %s of %s: %s", revision, name_or_path, err)
        return revision


def eos_token_id(tokenizer: PreTrainedTokenizerBase, backbone: PreTrainedModel) -> int:
    """The end-of-sequence id that ends a response: the tokenizer's, else the generation config's first one.

    Raises:
        InputError: neither declares one.
    """
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id
    declared = end_of_sequence_ids(tokenizer, backbone)
    if not declared:
        raise InputError(
            f"the backbone {backbone.name_or_path!r} declares no end-of-sequence token (tokenizer or generation "
            "config); set tokenizer.eos_token before building the model."
        )
    return declared[0]


def end_of_sequence_ids(tokenizer: PreTrainedTokenizerBase, backbone: PreTrainedModel) -> list[int]:
    """Every end-of-sequence id the backbone declares (generation config and tokenizer), in a stable order."""
    ids: list[int] = []
    generation_config = getattr(backbone, "generation_config", None)
    declared = getattr(generation_config, "eos_token_id", None)
    for candidate in [*(declared if isinstance(declared, list) else [declared]), tokenizer.eos_token_id]:
        if candidate is not None and candidate not in ids:
            ids.append(int(candidate))
    return ids


def pad_token_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """An id to fill padded positions with (they are masked, so any valid id works): pad, else eos, else 0."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0
