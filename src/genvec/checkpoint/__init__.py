"""Checkpoints: genvec's own format (`native.py`) and official LLM2Vec-Gen releases (`official.py`).

`load_model` finds the checkpoint (a local directory, or a hub repo of which only the files of the two layouts
are downloaded), recognises its layout by the files present, and hands it to the reader of that layout.
"""

from pathlib import Path
from typing import TYPE_CHECKING

from genvec.checkpoint import native, official
from genvec.errors import CheckpointError
from genvec.files import list_files

if TYPE_CHECKING:
    from genvec.model import GenVecModel  # genvec.model imports genvec.checkpoint

# Files a hub download may fetch: those of both layouts, never anything else (no pickles, no backbone weights).
DOWNLOAD_PATTERNS = [native.CONFIG_FILE, native.WEIGHTS_FILE, *official.DOWNLOAD_PATTERNS]


def load_model(
    path_or_repo: str | Path,
    *,
    backbone: str | None = None,
    device: str = "auto",
    dtype: str | None = None,
    revision: str | None = None,
) -> "GenVecModel":
    """Open a genvec checkpoint or an official LLM2Vec-Gen release, from a local directory or the hub.

    Args:
        path_or_repo: a directory written by `save_pretrained` / training, an official release directory, or a hub
            repo id holding either (e.g. "McGill-NLP/LLM2Vec-Gen-Qwen3-0.6B").
        backbone: load the backbone from here instead of the id the checkpoint names (e.g. a local copy).
        device: "auto" | "cpu" | "cuda" | "cuda:N" | "mps".
        dtype: backbone dtype; None keeps the checkpoint's setting (an official release's `torch_dtype`).
        revision: hub revision of `path_or_repo` (not of the backbone).

    Raises:
        CheckpointError: not a checkpoint of either layout (the files expected and found are listed), files or
            keys missing or unexpected, or a backbone that does not fit.

    Example:
        >>> model = genvec.load_model("McGill-NLP/LLM2Vec-Gen-Qwen3-0.6B")
        >>> model.encode(["hello"]).shape
        (1, 1024)
    """
    directory = _local_directory(path_or_repo, revision)
    if native.is_native(directory):
        return native.load_native(directory, backbone=backbone, device=device, dtype=dtype)
    if official.is_official(directory):
        return official.load_official(directory, backbone=backbone, device=device, dtype=dtype)
    found = list_files(directory)
    raise CheckpointError(
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
) -> "GenVecModel":
    """Write an official LLM2Vec-Gen release (or any checkpoint `load_model` opens) as a native genvec checkpoint.

    The backbone is loaded to check that the release fits it; the native checkpoint names the release's base model
    (not `backbone`), keeps its dtype, and gives the same embeddings. Returns the loaded model.

    Example:
        >>> genvec.checkpoint.convert("McGill-NLP/LLM2Vec-Gen-Qwen3-0.6B", "qwen3-0.6b-genvec")
    """
    model = load_model(path_or_repo, backbone=backbone, device=device, revision=revision)
    native.save_native(model, output)
    return model


def _local_directory(path_or_repo: str | Path, revision: str | None) -> Path:
    """The local directory of a checkpoint; a hub repo id is downloaded (checkpoint files of both layouts only)."""
    path = Path(path_or_repo)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{str(path)!r} is a file; pass the checkpoint directory.")
    repo = str(path_or_repo)
    if repo.count("/") != 1 or repo.startswith((".", "/")):
        raise CheckpointError(
            f"{repo!r} is neither a local directory nor a hub repo id (org/name); expected a directory holding "
            f"{native.CONFIG_FILE} and {native.WEIGHTS_FILE}, or an LLM2Vec-Gen release."
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=revision, allow_patterns=DOWNLOAD_PATTERNS))
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError, ValueError) as err:
        raise CheckpointError(
            f"{repo!r} is not a local directory and could not be downloaded from the hub: {err}"
        ) from err


__all__ = ["convert", "load_model"]
