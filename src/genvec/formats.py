"""What every file genvec writes says about itself: its format, version and writer, and "is this the same run?".

Each artefact (checkpoint config, trainer state, responses sidecar, target store header, world-LM record, GGUF
conversion record, evaluation scores, embedding-shard manifest) starts with `header(NAME, VERSION)`; a reader calls
`read_document`, which refuses another format or a newer version with a message that names the file and what to
do. Resuming compares what a file recorded with what the caller would write now through `differences`, so every
"made with other settings" message reads the same way. Shard file names come from `shard_name`, and every long loop
decides whether to show a progress bar with `shows_progress`.

What this file does not do: write files (`files.py`) or decide what identifies a run (each artefact's own module).
"""

import json
from collections.abc import Mapping
from pathlib import Path

from genvec.errors import GenVecError
from genvec.version import __version__


def header(name: str, version: int) -> dict[str, object]:
    """The first keys of every JSON document genvec writes: format name, format version, genvec version."""
    return {"format": name, "format_version": version, "genvec_version": __version__}


def read_document(path: Path, name: str, version: int, error: type[GenVecError], fix: str) -> dict:
    """Read a JSON document written with `header(name, version)`, refusing anything else.

    Args:
        path: the file.
        name, version: the format this reader understands (and every older version of it).
        error: the error class to raise (`InputError`, `CheckpointError`, ...).
        fix: what the user should do about a damaged or foreign file, e.g. "delete it to start over".

    Raises:
        `error`: the file is not valid JSON, is of another format, or is of a newer version than this genvec reads.
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise error(f"{str(path)!r} is not valid JSON ({err}); it is damaged: {fix}.") from err
    return check_header(document, path, name, version, error, fix)


def check_header(document: object, path: Path, name: str, version: int, error: type[GenVecError], fix: str) -> dict:
    """`document` (already parsed from `path`) if its header says `name`, version at most `version`; see
    `read_document`, which reads and checks in one call."""
    if not isinstance(document, dict) or document.get("format") != name:
        raise error(f"{str(path)!r} is not a {name} file (its format is not {name!r}): {fix}.")
    found = document.get("format_version", 0)
    if isinstance(found, bool) or not isinstance(found, int):
        raise error(f"{str(path)!r} has format_version {found!r}, not an integer; it is damaged: {fix}.")
    if found > version:
        raise error(
            f"{str(path)!r} has format version {found!r}; this genvec ({__version__}) reads {name} files up to version "
            f"{version}. Upgrade genvec."
        )
    return document


def differences(recorded: Mapping[str, object], current: Mapping[str, object]) -> list[str]:
    """`key: recorded X, now Y` for every key of `current` whose recorded value differs (missing counts as None)."""
    return [
        f"{key}: recorded {recorded.get(key)!r}, now {value!r}"
        for key, value in current.items()
        if recorded.get(key) != value
    ]


# `show_progress=None` shows a progress bar for work of at least this many batches (encode, generation, targets).
PROGRESS_MIN_BATCHES = 4


def shows_progress(requested: bool | None, items: int, batch_size: int) -> bool:
    """Whether a loop over `items` in batches of `batch_size` shows a progress bar: as requested, else from
    PROGRESS_MIN_BATCHES batches on."""
    return items >= PROGRESS_MIN_BATCHES * batch_size if requested is None else bool(requested)


def shard_name(shard_id: int, num_shards: int) -> str:
    """`shard-0000i-of-0000n`: how a shard's files are named, in response files and target stores alike."""
    return f"shard-{shard_id:05d}-of-{num_shards:05d}"
