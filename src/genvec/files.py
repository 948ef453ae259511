"""Atomic file writes, content hashes and file listings, shared by checkpoints, data files and run directories.

A file is written beside its final name, flushed to disk, then renamed over it: readers see the old file or the
new one, never half of one. `sha256_file` lets a reader tell a complete artefact from a mixed or corrupted one.
"""

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file next to `path`; on success it replaces `path`, on error it is removed."""
    temporary = temporary_path(path)
    try:
        with open(temporary, mode, encoding=None if "b" in mode else "utf-8") as file:
            yield file
        commit_file(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically."""
    with atomic_write(path, "w") as file:
        file.write(text)


def temporary_path(path: str | Path) -> Path:
    """A fresh name beside `path` for a library that insists on writing by file name (e.g. safetensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    os.chmod(temporary, _default_mode())  # mkstemp makes 0600; the file should look like any other one
    return Path(temporary)


def commit_file(temporary: Path, path: str | Path) -> None:
    """Flush a file written by name to disk and rename it over `path`."""
    with open(temporary, "rb+") as file:
        os.fsync(file.fileno())
    os.replace(temporary, path)


def append_synced(file: IO, data: str | bytes) -> None:
    """Append `data` to an open file and force it to disk, so an interruption loses at most what is being written."""
    file.write(data)
    file.flush()
    os.fsync(file.fileno())


def _default_mode() -> int:
    """The permissions a plain `open(path, "w")` would give: 0o666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(directory: str | Path) -> list[str]:
    """Every file under `directory`, as sorted paths relative to it (for errors that show what a directory holds)."""
    directory = Path(directory)
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())
