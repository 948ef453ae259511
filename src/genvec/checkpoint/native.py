"""genvec's native checkpoint: `genvec_config.json` + `trainable.safetensors` (design decision 8, docs/design.md).

- `genvec_config.json`: format and version, the backbone (id or absolute path, revision, architecture, hidden size,
  and a fingerprint of its architecture and tokenizer), the
  resolved `GenVecConfig`, the name, size and SHA-256 of the weights file, and, for a truncatable checkpoint
  (`genvec.truncation`), the `truncation` record (its basis, sample and retained variance); a checkpoint without it
  is not truncatable; and for a calibrated one (`genvec.calibration`), the `quantization` record (its int8 ranges).
- `trainable.safetensors`: only the trainable tensors (special vectors, R, A) in fp32. The backbone is
  referenced, never copied, and no pickle is ever read.

Writes are atomic per file and the weights file is written first, then the config that names its hash: a crash
leaves either the old checkpoint or a config whose hash does not match, which `read_native` refuses. This file reads
and writes files only: building a model from them, finding the directory (local or on the hub) and telling layouts
apart is `genvec.loading`'s job.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from genvec.config import GenVecConfig
from genvec.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from genvec.files import commit_file, sha256_file, temporary_path, write_text_atomic
from genvec.formats import header, read_document

logger = logging.getLogger(__name__)

CONFIG_FILE = "genvec_config.json"
WEIGHTS_FILE = "trainable.safetensors"
FORMAT_NAME = "genvec"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class NativeCheckpoint:
    """What a native checkpoint holds, read and checked, before any backbone is loaded."""

    directory: Path
    config: GenVecConfig
    """The saved config with the caller's overrides (device, dtype, backbone) applied."""
    weights: dict[str, torch.Tensor]
    """The trainable tensors by name, as saved (fp32)."""
    backbone: dict
    """What the checkpoint recorded of its backbone: name_or_path, revision, architecture, hidden_size."""
    truncation: dict | None = None
    """The record `genvec.truncation.make_truncatable` wrote; None: the embedding's coordinates are not ordered."""
    quantization: dict | None = None
    """The record `genvec.calibration` wrote (int8 ranges); None: int8/uint8 embeddings are refused."""


def save_native(path: str | Path, config: GenVecConfig, tensors: dict[str, torch.Tensor], backbone: dict,
                truncation: dict | None = None, quantization: dict | None = None) -> None:
    """Write a checkpoint of `tensors` (the trainable tensors by name) and `config` to directory `path`.

    Args:
        path: the directory, created if needed.
        config: the model's resolved config (backbone id and pinned revision, N, K, D, instructions, ...).
        tensors: `GenVecModel.trainable_state_dict()`, or the same gathered from FSDP shards by the trainer.
        backbone: `GenVecModel.backbone_record`: id or path, revision, class, hidden size, fingerprint.
        truncation: `GenVecModel.truncation`, the record of a truncatable model (None: not truncatable).
        quantization: `GenVecModel.quantization`, the int8 ranges of a calibrated model (None: not calibrated).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save a checkpoint to {str(path)!r}: it exists and is not a directory.")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CheckpointError(f"cannot save a checkpoint to {str(path)!r}: {err.strerror or err}.") from err
    for stale in [*path.glob(f".{WEIGHTS_FILE}.*.tmp"), *path.glob(f".{CONFIG_FILE}.*.tmp")]:
        stale.unlink(missing_ok=True)  # left by a save that was killed: never part of the checkpoint
    tensors = {name: tensor.detach().float().contiguous().cpu() for name, tensor in tensors.items()}
    temporary = temporary_path(path / WEIGHTS_FILE)
    try:
        tokens = config.tokens  # in the weights file, which the config's hash covers: an edit of N or K is noticed
        metadata = {"format": "pt", "genvec_format_version": str(FORMAT_VERSION),
                    "num_special_tokens": str(tokens.num_special_tokens),
                    "num_compression_tokens": str(tokens.num_compression_tokens)}
        save_file(tensors, str(temporary), metadata=metadata)
        digest = sha256_file(temporary)
        commit_file(temporary, path / WEIGHTS_FILE)
    finally:
        temporary.unlink(missing_ok=True)
    document = {
        **header(FORMAT_NAME, FORMAT_VERSION),
        "backbone": backbone,
        "config": config.to_dict(),
        "weights": {"file": WEIGHTS_FILE, "sha256": digest, "tensors": {k: list(v.shape) for k, v in tensors.items()}},
        **({"truncation": truncation} if truncation is not None else {}),
        **({"quantization": quantization} if quantization is not None else {}),
    }
    write_text_atomic(path / CONFIG_FILE, json.dumps(document, indent=2) + "\n")
    logger.debug("saved genvec checkpoint to %s", path)


def is_native(path: Path) -> bool:
    """Whether a local directory holds a native checkpoint (its config file)."""
    return (path / CONFIG_FILE).is_file()


def read_native(directory: str | Path, overrides: dict[str, object] | None = None) -> NativeCheckpoint:
    """Read and check a native checkpoint directory; `overrides` are dotted config fields (e.g. `model.device`).

    Raises:
        CheckpointNotFoundError: the config or weights file is missing.
        CheckpointError: the files are damaged or do not fit together, or an override is invalid.
    """
    directory = Path(directory)
    document = _read_document(directory)
    weights = _read_weights(directory, document)
    try:
        config = GenVecConfig.from_dict(document["config"], source=str(directory / CONFIG_FILE))
        config = config.with_overrides(overrides) if overrides else config
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    return NativeCheckpoint(directory, config, weights, document["backbone"], document.get("truncation"),
                            document.get("quantization"))


def read_native_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The trainable tensors of a native checkpoint directory, after checking its config and their hash."""
    directory = Path(directory)
    return _read_weights(directory, _read_document(directory))


def _read_document(directory: Path) -> dict:
    """Read and check `genvec_config.json`; a missing file lists what the directory holds."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise CheckpointNotFoundError(
            f"{str(directory)!r} is not a genvec checkpoint: expected files {CONFIG_FILE}, {WEIGHTS_FILE}; "
            f"found {found or 'nothing'}."
        )
    document = read_document(config_path, FORMAT_NAME, FORMAT_VERSION, CheckpointError,
                             "save the checkpoint again or use an earlier one")
    missing = [key for key in ("backbone", "config", "weights") if not isinstance(document.get(key), dict)]
    weights = document.get("weights") or {}
    if not missing and not (isinstance(weights.get("file"), str) and isinstance(weights.get("sha256"), str)):
        missing.append("weights.file / weights.sha256")
    if not missing and not isinstance(document["backbone"].get("hidden_size"), int):
        missing.append("backbone.hidden_size")
    missing += [key for key in ("truncation", "quantization") if not isinstance(document.get(key, {}), dict)]
    if missing:
        raise CheckpointError(
            f"{str(config_path)!r} lacks (or has malformed) {', '.join(missing)}; the checkpoint is damaged. Save it "
            "again or use an earlier checkpoint."
        )
    return document


def _read_weights(directory: Path, document: dict) -> dict[str, torch.Tensor]:
    """Read the weights file after checking that it is the one the config was written with."""
    weights_path = directory / document["weights"]["file"]
    if not weights_path.is_file():
        found = sorted(p.name for p in directory.iterdir())
        raise CheckpointNotFoundError(
            f"{str(directory)!r} lacks its weights file: expected files {CONFIG_FILE}, "
            f"{document['weights']['file']}; found {found}."
        )
    if sha256_file(weights_path) != document["weights"]["sha256"]:
        raise CheckpointError(
            f"{str(weights_path)!r} does not match the SHA-256 recorded in {CONFIG_FILE}: the checkpoint was "
            "interrupted while being written or was modified. Save it again or use an earlier checkpoint."
        )
    try:
        with safe_open(str(weights_path), "pt") as file:
            metadata = file.metadata() or {}
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{str(weights_path)!r} could not be read as safetensors: {err}") from err
    tokens = document["config"].get("tokens", {}) if isinstance(document["config"], dict) else {}
    edited = [
        f"tokens.{name} is {tokens.get(name)!r} in {CONFIG_FILE} but {metadata[name]} in the weights"
        for name in ("num_special_tokens", "num_compression_tokens")
        if name in metadata and str(tokens.get(name)) != metadata[name]
    ]
    if edited:
        raise CheckpointError(f"{str(directory)!r}: {'; '.join(edited)}; the config was edited after training. Restore "
                              "it: these sizes are part of what the weights were trained for.")
    return tensors
