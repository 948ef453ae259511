"""Response records and their files: what generation writes and training reads.

One JSON object per line: `{"id", "query", "response", "response_tokens", "finish_reason"}`, where `id` is the
query's row in its source, `response_tokens` counts the generated tokens without the end-of-sequence token, and
`finish_reason` is `eos` (the backbone ended its answer) or `length` (cut at `max_new_tokens`).

File layout for an output named `responses.jsonl`:
- `responses.jsonl` (one process), or shards `responses.shard-00001-of-00004.jsonl` (one per process);
- beside each, a metadata sidecar `responses.meta.json` / `responses.shard-00001-of-00004.meta.json` (written by
  `genvec.data.responses`: backbone, decoding settings, counts).

A line without its final newline is a torn write of an interrupted run: readers drop it with a warning, and
resuming generation cuts it off. `read_responses` takes a file, its shards, a directory or a glob as one dataset.
"""

import dataclasses
import glob
import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from genvec.errors import InputError
from genvec.formats import shard_name

logger = logging.getLogger(__name__)

FinishReason = Literal["eos", "length"]
FINISH_REASONS = ("eos", "length")
RECORD_FIELDS = ("id", "query", "response", "response_tokens", "finish_reason")
_SHARD_PATTERN = re.compile(r"^(?P<stem>.+)\.shard-(?P<shard>\d{5})-of-(?P<count>\d{5})$")


@dataclass(frozen=True)
class ResponseRecord:
    """One query and the backbone's response to it."""

    id: int
    query: str
    response: str
    response_tokens: int
    finish_reason: FinishReason

    def to_json(self) -> str:
        """The record as one line of JSON (no trailing newline)."""
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)


def read_responses(path: str | Path) -> list[ResponseRecord]:
    """Read response records from one JSONL file, its shards, a directory of JSONL files, or a glob.

    Several files are read as one dataset ordered by `id` (the query's row in its source), so the shards of a
    generation run read back in the order of an unsharded run. A torn last line (interrupted run) is dropped with
    a warning.

    Args:
        path: `responses.jsonl`; the same name when only its shards `responses.shard-*-of-*.jsonl` exist;
            a directory (every `*.jsonl` in it); or a glob pattern such as `"out/*.jsonl"`.

    Raises:
        InputError: nothing found, a shard of the set is missing, a line is not a valid record, or two files
            hold the same id.
    """
    files = response_files(path)
    records: list[ResponseRecord] = []
    owner: dict[int, Path] = {}
    for file in files:
        _warn_if_incomplete(file)
        for record in read_response_file(file)[0]:
            if record.id in owner and owner[record.id] == file:
                raise InputError(
                    f"response id {record.id} appears twice in {file}: the file holds a duplicated record (two runs "
                    "appended to it?). Generate it again into a new file."
                )
            if record.id in owner:
                raise InputError(
                    f"response id {record.id} appears in {owner[record.id]} and {file}; the files are not shards "
                    "of one run (or a shard was generated twice). Read them separately."
                )
            owner[record.id] = file
            records.append(record)
    if len(files) > 1:
        records.sort(key=lambda record: record.id)
    logger.debug("read %d responses from %d file(s) at %s", len(records), len(files), path)
    return records


def response_files(path: str | Path) -> list[Path]:
    """The JSONL files `read_responses` reads for `path`, in a stable order."""
    text = str(path)
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if not files:
            raise InputError(f"directory {text!r} holds no .jsonl response files.")
        return files
    if any(char in text for char in "*?["):
        files = sorted(Path(name) for name in glob.glob(text) if Path(name).is_file())
        if not files:
            raise InputError(f"no response files match {text!r}.")
        return files
    shards = find_shards(path)
    if not shards:
        raise InputError(
            f"no responses at {text!r}: neither the file nor its shards ({path.stem}.shard-*-of-*{path.suffix}) "
            "exist. Run `genvec generate-responses` first, or pass a directory or a glob."
        )
    return shards


def find_shards(path: str | Path) -> list[Path]:
    """The complete, consistent shard set of output `path`, in shard order; [] when there is none.

    Raises:
        InputError: shards of different counts, or missing shards.
    """
    path = Path(path)
    found: dict[int, set[int]] = {}
    for candidate in path.parent.glob(f"{glob.escape(path.stem)}.shard-*-of-*{path.suffix}"):
        match = _SHARD_PATTERN.match(candidate.name[: len(candidate.name) - len(path.suffix)])
        if match and match["stem"] == path.stem:
            found.setdefault(int(match["count"]), set()).add(int(match["shard"]))
    if not found:
        return []
    if len(found) > 1:
        raise InputError(
            f"shards of {str(path)!r} from runs with different shard counts ({', '.join(map(str, sorted(found)))}) "
            "lie side by side; remove the stale ones."
        )
    count, present = next(iter(found.items()))
    missing = sorted(set(range(count)) - present)
    if missing:
        names = ", ".join(shard_path(path, shard, count).name for shard in missing[:4])
        raise InputError(
            f"{len(missing)} of {count} shards of {str(path)!r} are missing ({names}"
            f"{', ...' if len(missing) > 4 else ''}); run those shards (--shard-id) first."
        )
    return [shard_path(path, shard, count) for shard in range(count)]


def shard_path(path: str | Path, shard_id: int, num_shards: int) -> Path:
    """`dir/NAME.shard-00001-of-00004.jsonl` for output `dir/NAME.jsonl`; the path itself for one shard."""
    path = Path(path)
    if num_shards == 1:
        return path
    return path.with_name(f"{path.stem}.{shard_name(shard_id, num_shards)}{path.suffix}")


def metadata_path(path: str | Path) -> Path:
    """The metadata sidecar of a responses file: `NAME.meta.json` beside `NAME.jsonl`."""
    path = Path(path)
    return path.with_name(f"{path.stem}.meta.json")


def read_response_file(path: Path) -> tuple[list[ResponseRecord], int]:
    """The complete records of one file and the byte length they fill (a torn last line is left out).

    Raises:
        InputError: a complete line is not a valid record.
    """
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror}).") from err
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        warnings.warn(
            f"{path}: the last line has no newline (an interrupted write); it is ignored. Resuming generation "
            "removes it.",
            stacklevel=3,
        )
    records = []
    for number, line in enumerate(data[:complete].split(b"\n")[:-1], 1):
        if line.strip():
            records.append(parse_record(line, f"{path}: line {number}"))
    return records, complete


def parse_record(line: bytes | str, where: str) -> ResponseRecord:
    """Parse and check one JSON line; `where` names the file and line in errors."""
    try:
        value = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise InputError(f"{where} is not valid JSON ({err}); expected one response record per line.") from err
    if not isinstance(value, dict):
        fields = ", ".join(RECORD_FIELDS)
        raise InputError(f"{where} is a JSON {type(value).__name__}; expected an object with {fields}.")
    missing = [name for name in RECORD_FIELDS if name not in value]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)}; a response record has {', '.join(RECORD_FIELDS)}.")
    problems = []
    if not isinstance(value["id"], int) or isinstance(value["id"], bool):
        problems.append(f"id must be an integer, got {value['id']!r}")
    for name in ("query", "response"):
        if not isinstance(value[name], str):
            problems.append(f"{name} must be a string, got {type(value[name]).__name__}")
    if not isinstance(value["response_tokens"], int) or value["response_tokens"] < 0:
        problems.append(f"response_tokens must be an integer >= 0, got {value['response_tokens']!r}")
    if value["finish_reason"] not in FINISH_REASONS:
        problems.append(f"finish_reason must be 'eos' or 'length', got {value['finish_reason']!r}")
    if problems:
        raise InputError(f"{where}: " + "; ".join(problems) + ".")
    return ResponseRecord(**{name: value[name] for name in RECORD_FIELDS})


def incomplete_files(path: str | Path) -> list[str]:
    """`FILE is incomplete (W of Q queries answered)` for each response file at `path` whose sidecar says so."""
    found = []
    for file in response_files(path):
        meta = metadata_path(file)
        try:
            document = json.loads(meta.read_text(encoding="utf-8")) if meta.is_file() else None
        except (OSError, ValueError):
            continue
        if isinstance(document, dict) and document.get("complete") is False:
            counts = document.get("counts", {})
            found.append(
                f"{file} is incomplete ({counts.get('written', '?')} of {counts.get('queries', '?')} queries answered)"
            )
    return found


def _warn_if_incomplete(path: Path) -> None:
    for description in incomplete_files(path):
        warnings.warn(f"{description}; rerun the same generate-responses command to finish it.", stacklevel=3)
