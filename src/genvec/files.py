"""Atomic file writes, exclusive locks, content hashes and file listings, shared by every artefact genvec writes.

A file is written beside its final name, flushed to disk, then renamed over it: readers see the old file or the
new one, never half of one. `sha256_file` lets a reader tell a complete artefact from a mixed or corrupted one.
`exclusive_lock` keeps a second writer away from an artefact another process is writing (an OS lock, released when
the holder exits or dies; local file systems, where `flock` is reliable).
"""

import contextlib
import hashlib
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from genvec.errors import BusyError


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
    # At most the name's first 48 characters (<= 192 bytes): a valid name of up to 255 bytes stays writable.
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name[:48]}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # named after the temporary file, which the caller never heard of
        raise OSError(err.errno, err.strerror, str(path)) from err
    os.close(handle)
    os.chmod(temporary, default_mode())  # mkstemp makes 0600; the file should look like any other one
    return Path(temporary)


def commit_file(temporary: Path, path: str | Path) -> None:
    """Flush a file written by name to disk and rename it over `path`, with the permissions any file gets here.

    The mode is set again because a library that writes by name may replace the file (safetensors writes its own
    temporary file with mode 0600, which would make a shared checkpoint unreadable to others).
    """
    with open(temporary, "rb+") as file:
        os.fsync(file.fileno())
    os.chmod(temporary, default_mode())
    try:
        os.replace(temporary, path)
    except OSError as err:  # named after the temporary file, which the caller never heard of
        raise OSError(err.errno, err.strerror, str(path)) from err


def append_synced(file: IO, data: str | bytes) -> None:
    """Append `data` to an open file and force it to disk, so an interruption loses at most what is being written."""
    file.write(data)
    file.flush()
    os.fsync(file.fileno())


def default_mode(directory: bool = False) -> int:
    """The permissions a plain `open(path, "w")` (or `mkdir`) would give: 0o666 (0o777) less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def files_digest(root: str | Path, names: list[str]) -> str:
    """16 hex digits of the names and bytes of the files `names` under `root` (a local task's data, a baseline's
    directory), so what was computed from them is keyed by their content, not by where they lie."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(f"{name}\0{sha256_file(Path(root) / name)}\n".encode())
    return digest.hexdigest()[:16]


def list_files(directory: str | Path) -> list[str]:
    """Every file under `directory`, as sorted paths relative to it (for errors that show what a directory holds)."""
    directory = Path(directory)
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


@contextlib.contextmanager
def exclusive_lock(lock_file: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created if needed) while the block runs.

    The file records who holds it (process id, host, start time, command), so a second writer's error names the
    holder. The lock is the operating system's: it is released when the block ends or the holder dies, and a lock
    file left behind by a killed run does not block the next one.

    Raises:
        BusyError: another process holds the lock; `what` names the artefact in the message.
    """
    import fcntl

    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise BusyError(
                f"{what} is being written by {holder} (lock file {lock_file}); two writers would corrupt it. Wait "
                "for that process to finish (or stop it), or write somewhere else."
            ) from err
        handle.seek(0)
        handle.truncate()
        command = " ".join(sys.argv)[:200]
        started = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"process {os.getpid()} on {socket.gethostname()} since {started} ({command})\n")
        handle.flush()
        yield  # closing the file at the end of the with-block releases the lock


def lock_file_for(path: str | Path) -> Path:
    """The lock file of an artefact: a hidden `.NAME.lock` beside it (it survives the artefact being replaced)."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def locked_scratch(target: Path, label: str, what: str) -> Iterator[Path]:
    """A fresh scratch directory beside `target`, under `target`'s lock, for building it before a rename.

    Scratch directories a killed run left (named `.TARGET.LABEL-*`) are removed first: only the lock holder writes
    there. `what` names the target in the error of a busy lock.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.{label}-"
    with exclusive_lock(lock_file_for(target), what):
        for stale in target.parent.glob(prefix + "*"):
            if stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=prefix) as scratch:
            yield Path(scratch)
