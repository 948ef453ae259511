"""Open a checkpoint as a `GenVecModel`: `load_model` (genvec or official LLM2Vec-Gen layout) and `convert`.

`load_model` finds the checkpoint (a local directory, or a hub repo of which only the files of the two layouts are
downloaded), recognises its layout by the files present, lets that layout's reader (`checkpoint/native.py`,
`checkpoint/official.py`) read and check the files, then loads the backbone and builds the model. The readers never
import the model; this module sits above both.
"""

import dataclasses
import logging
from pathlib import Path

from genvec import backbone as backbones
from genvec.checkpoint import native, official
from genvec.errors import CheckpointError, CheckpointNotFoundError, ConfigError
from genvec.files import list_files
from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

# Files a hub download may fetch: those of both layouts, never anything else (no pickles, no backbone weights).
DOWNLOAD_PATTERNS = [native.CONFIG_FILE, native.WEIGHTS_FILE, *official.DOWNLOAD_PATTERNS]


def load_model(
    path_or_repo: str | Path,
    *,
    backbone: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
    revision: str | None = None,
) -> GenVecModel:
    """Open a genvec checkpoint or an official LLM2Vec-Gen release, from a local directory or the hub.

    Args:
        path_or_repo: a directory written by `save_pretrained` / training, an official release directory, or a hub
            repo id holding either (e.g. "McGill-NLP/LLM2Vec-Gen-Qwen3-06B"; `official.RELEASES` lists
            the official ones).
        backbone: load the backbone from here instead of the id the checkpoint names (e.g. a local copy).
        device: "auto" | "cpu" | "cuda" | "cuda:N" | "mps".
        dtype: backbone dtype; None keeps the checkpoint's setting (an official release's `torch_dtype`).
        revision: hub revision of `path_or_repo` (not of the backbone).

    Raises:
        CheckpointError: not a checkpoint of either layout (the files expected and found are listed), files or
            keys missing or unexpected, or a backbone that does not fit.

    Example:
        >>> model = genvec.load_model("McGill-NLP/LLM2Vec-Gen-Qwen3-06B")
        >>> model.encode(["hello"]).shape
        (1, 1024)
    """
    directory = _local_directory(path_or_repo, revision)
    if native.is_native(directory):
        return _open_native(directory, backbone, device, dtype)
    if official.is_official(directory):
        return _open_official(directory, backbone, device, dtype)
    found = list_files(directory)
    raise CheckpointNotFoundError(
        f"{str(path_or_repo)!r} is not a genvec checkpoint or an LLM2Vec-Gen release: expected files "
        f"{native.CONFIG_FILE}, {native.WEIGHTS_FILE} (genvec) or {', '.join(p for p, _ in official.FILES)} "
        f"(LLM2Vec-Gen); found {found or 'nothing'}."
    )


def convert(
    path_or_repo: str | Path,
    output: str | Path,
    *,
    backbone: str | None = None,
    device: str = "auto",
    revision: str | None = None,
) -> GenVecModel:
    """Write an official LLM2Vec-Gen release (or any checkpoint `load_model` opens) as a native genvec checkpoint.

    The backbone is loaded to check that the release fits it; the native checkpoint names the release's base model
    (not `backbone`), keeps its dtype, and gives the same embeddings. Returns the loaded model.

    Example:
        >>> genvec.loading.convert("McGill-NLP/LLM2Vec-Gen-Qwen3-06B", "qwen3-0.6b-genvec")
    """
    model = load_model(path_or_repo, backbone=backbone, device=device, revision=revision)
    model.save_pretrained(output)
    return model


def _overrides(device: str, dtype: str | None, backbone: str | None = None) -> dict[str, object]:
    """The config fields a caller of `load_model` replaces: always the device, the dtype and backbone when given."""
    overrides: dict[str, object] = {"model.device": device}
    if dtype is not None:
        overrides["model.dtype"] = dtype
    if backbone is not None:
        overrides["model.backbone"] = backbone
    return overrides


def _open_native(directory: Path, backbone: str | None, device: str, dtype: str | None) -> GenVecModel:
    checkpoint = native.read_native(directory, _overrides(device, dtype, backbone))
    model = GenVecModel.from_config(checkpoint.config)
    stored = checkpoint.backbone["hidden_size"]
    if model.hidden_size != stored:
        raise CheckpointError(
            f"the backbone {checkpoint.config.model.backbone!r} has hidden size {model.hidden_size}, but the "
            f"checkpoint {str(directory)!r} was trained on a backbone of hidden size {stored} "
            f"({checkpoint.backbone['name_or_path']!r}); load it with the backbone it was trained on."
        )
    _check_same_backbone(model, checkpoint, directory)
    model.load_trainable_state_dict(checkpoint.weights, source=str(directory / native.WEIGHTS_FILE))
    model.truncation = checkpoint.truncation
    model.quantization = checkpoint.quantization
    return model


def _check_same_backbone(model: GenVecModel, checkpoint: native.NativeCheckpoint, directory: Path) -> None:
    """Refuse a backbone whose architecture or tokenizer differs from the one the checkpoint recorded (checkpoints
    written before fingerprints existed are not checked)."""
    recorded = checkpoint.backbone.get("fingerprint") or {}
    now = model.backbone_record["fingerprint"]
    differing = [part for part in ("architecture", "tokenizer") if part in recorded and recorded[part] != now[part]]
    if differing:
        raise CheckpointError(
            f"the backbone {model.config.model.backbone!r} is not the one {str(directory)!r} was trained on "
            f"({checkpoint.backbone.get('name_or_path')!r}): its {' and its '.join(differing)} differ. Load the "
            "checkpoint with that backbone (--backbone pointing to a copy of it)."
        )


def _open_official(directory: Path, backbone: str | None, device: str, dtype: str | None) -> GenVecModel:
    """An official release on its base model (or on `backbone`, a local copy; the config still names the base)."""
    release = official.read_official(directory)
    try:
        config = release.config().with_overrides(_overrides(device, dtype))
    except ConfigError as err:
        raise CheckpointError(str(err)) from err
    # The hub base model is pinned to the commit it points to now, and the config records it (a converted release
    # then reloads the same weights); a local copy passed as `backbone` has no commit to record.
    revision = None if backbone else backbones.resolve_revision(release.base_model)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, revision=revision))
    backbone_lm, tokenizer = backbones.load_configured(config.model, backbone)
    official.check_backbone_fits(release, backbone_lm, tokenizer, backbone or release.base_model)
    model = GenVecModel(backbone_lm, tokenizer, config)
    model.load_trainable_state_dict(release.tensors, source=str(release.directory))
    logger.info("opened official release %s on %s", release.directory, backbone or release.base_model)
    return model


def _local_directory(path_or_repo: str | Path, revision: str | None) -> Path:
    """The local directory of a checkpoint; a hub repo id is downloaded (checkpoint files of both layouts only)."""
    if not isinstance(path_or_repo, (str, Path)) or not str(path_or_repo):
        raise CheckpointNotFoundError(
            f"load_model() takes a checkpoint directory or a hub repo id (a string or a Path), got {path_or_repo!r}."
        )
    path = Path(path_or_repo)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{str(path)!r} is a file; pass the checkpoint directory.")
    repo = str(path_or_repo)
    if repo.count("/") != 1 or repo.startswith((".", "/")):
        raise CheckpointNotFoundError(
            f"{repo!r} is neither a local directory nor a hub repo id (org/name); expected a directory holding "
            f"{native.CONFIG_FILE} and {native.WEIGHTS_FILE}, or an LLM2Vec-Gen release."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=DOWNLOAD_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        hint = official.releases_hint(repo, not_found=isinstance(err, RepositoryNotFoundError))
        raise CheckpointNotFoundError(
            f"{repo!r} is not a local directory and could not be downloaded from the hub: {err}"
            + (f"\n{hint}" if hint else "")
        ) from err
