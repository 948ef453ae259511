"""genvec's native checkpoint: `genvec_config.json` + `trainable.safetensors` (DESIGN decision 8).

- `genvec_config.json`: format and version, the backbone (id or path, revision, architecture, hidden size), the
  resolved `GenVecConfig`, and the name, size and SHA-256 of the weights file.
- `trainable.safetensors`: only the trainable tensors (special vectors, R, A) in fp32. The backbone is
  referenced, never copied, and no pickle is ever read.

Writes are atomic per file and the weights file is written first, then the config that names its hash: a crash
leaves either the old checkpoint or a config whose hash does not match, which `load_native` refuses. Finding the
directory (local or on the hub) and telling layouts apart is `genvec.checkpoint.load_model`'s job.
"""

import json
import logging
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from genvec import __version__
from genvec.config import GenVecConfig
from genvec.errors import CheckpointError, ConfigError
from genvec.files import commit_file, sha256_file, temporary_path, write_text_atomic

logger = logging.getLogger(__name__)

CONFIG_FILE = "genvec_config.json"
WEIGHTS_FILE = "trainable.safetensors"
FORMAT_NAME = "genvec"
FORMAT_VERSION = 1


def save_native(
    model: "GenVecModel", path: str | Path, *, tensors: dict[str, torch.Tensor] | None = None  # noqa: F821
) -> None:
    """Write `model`'s trainable tensors and config to directory `path` (created if needed).

    `tensors` replaces the model's own trainable tensors: the trainer passes them gathered from FSDP shards.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"cannot save a checkpoint to {str(path)!r}: it exists and is not a directory.")
    path.mkdir(parents=True, exist_ok=True)
    tensors = model.trainable_state_dict() if tensors is None else tensors
    tensors = {name: tensor.detach().float().contiguous().cpu() for name, tensor in tensors.items()}
    temporary = temporary_path(path / WEIGHTS_FILE)
    try:
        save_file(tensors, str(temporary), metadata={"format": "pt", "genvec_format_version": str(FORMAT_VERSION)})
        digest = sha256_file(temporary)
        commit_file(temporary, path / WEIGHTS_FILE)
    finally:
        temporary.unlink(missing_ok=True)
    backbone = model.backbone
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "genvec_version": __version__,
        "backbone": {
            "name_or_path": model.config.model.backbone,
            "revision": model.config.model.revision,
            "architecture": type(backbone).__name__,
            "hidden_size": model.hidden_size,
        },
        "config": model.config.to_dict(),
        "weights": {"file": WEIGHTS_FILE, "sha256": digest, "tensors": {k: list(v.shape) for k, v in tensors.items()}},
    }
    write_text_atomic(path / CONFIG_FILE, json.dumps(document, indent=2) + "\n")
    logger.debug("saved genvec checkpoint to %s", path)


def is_native(path: Path) -> bool:
    """Whether a local directory holds a native checkpoint (its config file)."""
    return (path / CONFIG_FILE).is_file()


def load_native(
    directory: str | Path, *, backbone: str | None = None, device: str = "auto", dtype: str | None = None
) -> "GenVecModel":  # noqa: F821
    """Open a native checkpoint directory and its backbone (`genvec.load_model` is the public door).

    Args:
        directory: a directory written by `save_pretrained` / training.
        backbone: load the backbone from here instead of the id stored in the checkpoint (e.g. a local copy).
        device: "auto" | "cpu" | "cuda" | "cuda:N" | "mps".
        dtype: backbone dtype; None keeps the checkpoint's setting.

    Raises:
        CheckpointError: files are missing or do not fit together, or the backbone's hidden size differs.
    """
    from genvec.model import GenVecModel

    directory = Path(directory)
    document = _read_document(directory)
    weights = _read_weights(directory, document)
    overrides: dict[str, object] = {"model.device": device}
    if dtype is not None:
        overrides["model.dtype"] = dtype
    if backbone is not None:
        overrides["model.backbone"] = backbone
    try:
        config = GenVecConfig.from_dict(document["config"], source=str(directory / CONFIG_FILE))
        config = config.with_overrides(overrides)
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    model = GenVecModel.from_config(config)
    stored = document["backbone"]["hidden_size"]
    if model.hidden_size != stored:
        raise CheckpointError(
            f"the backbone {config.model.backbone!r} has hidden size {model.hidden_size}, but the checkpoint "
            f"{str(directory)!r} was trained on a backbone of hidden size {stored} "
            f"({document['backbone']['name_or_path']!r}); load it with the backbone it was trained on."
        )
    load_trainable(model, weights, source=str(directory / WEIGHTS_FILE))
    return model


def read_native_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """The trainable tensors of a native checkpoint directory, after checking its config and their hash."""
    directory = Path(directory)
    return _read_weights(directory, _read_document(directory))


def load_trainable(model: "GenVecModel", weights: dict[str, torch.Tensor], *, source: str) -> None:  # noqa: F821
    """Copy trainable tensors into `model`, after checking names and shapes; all mismatches are listed at once."""
    check_trainable(model, weights, source=source)
    with torch.no_grad():
        for name, target in model.trainable_state_dict().items():
            target.copy_(weights[name].to(target.device, target.dtype))


def check_trainable(model: "GenVecModel", weights: dict[str, torch.Tensor], *, source: str) -> None:  # noqa: F821
    """Refuse `weights` unless they are exactly the model's trainable tensors by name and shape, listing every
    mismatch at once."""
    expected = {name: tuple(tensor.shape) for name, tensor in model.trainable_state_dict().items()}
    problems = [f"missing tensor {name} {shape}" for name, shape in expected.items() if name not in weights]
    problems += [f"unexpected tensor {name}" for name in weights if name not in expected]
    problems += [
        f"tensor {name} has shape {tuple(weights[name].shape)}, the model expects {shape}"
        for name, shape in expected.items()
        if name in weights and tuple(weights[name].shape) != shape
    ]
    if problems:
        raise CheckpointError(f"{source} does not fit the model:\n" + "\n".join(problems))


def _read_document(directory: Path) -> dict:
    """Read and check `genvec_config.json`; a missing file lists what the directory holds."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        raise CheckpointError(
            f"{str(directory)!r} is not a genvec checkpoint: expected files {CONFIG_FILE}, {WEIGHTS_FILE}; "
            f"found {found or 'nothing'}."
        )
    try:
        document = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{str(config_path)!r} is not valid JSON ({err}); the checkpoint is damaged.") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{str(config_path)!r} is not a genvec checkpoint config (no format: {FORMAT_NAME!r}).")
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{str(config_path)!r} has format version {document['format_version']}; this genvec ({__version__}) "
            f"reads up to {FORMAT_VERSION}. Upgrade genvec."
        )
    missing = [key for key in ("backbone", "config", "weights") if key not in document]
    if missing:
        raise CheckpointError(f"{str(config_path)!r} lacks the keys {missing}; the checkpoint is damaged.")
    return document


def _read_weights(directory: Path, document: dict) -> dict[str, torch.Tensor]:
    """Read the weights file after checking that it is the one the config was written with."""
    weights_path = directory / document["weights"]["file"]
    if not weights_path.is_file():
        found = sorted(p.name for p in directory.iterdir())
        raise CheckpointError(
            f"{str(directory)!r} lacks its weights file: expected files {CONFIG_FILE}, "
            f"{document['weights']['file']}; found {found}."
        )
    if sha256_file(weights_path) != document["weights"]["sha256"]:
        raise CheckpointError(
            f"{str(weights_path)!r} does not match the SHA-256 recorded in {CONFIG_FILE}: the checkpoint was "
            "interrupted while being written or was modified. Save it again or use an earlier checkpoint."
        )
    try:
        return load_file(str(weights_path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{str(weights_path)!r} could not be read as safetensors: {err}") from err
