"""The durable response file of one shard: its metadata sidecar, resumption at a batch boundary, merged metadata.

`NAME.jsonl` holds one `ResponseRecord` per line, appended batch by batch and synced; `NAME.meta.json` (written
atomically) records the format, the backbone that answered (id and pinned revision), the requested and resolved
generation settings, the source and the counts. A resumed run must match the recorded backbone and settings; a torn
last line and a partial last batch are cut so that it batches exactly like an uninterrupted run.
"""

import dataclasses
import functools
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from genvec.backbone import local_path
from genvec.config import DataConfig
from genvec.data.dataset import ResponseRecord, metadata_path, read_response_file
from genvec.data.sources import QuerySet
from genvec.errors import InputError
from genvec.files import atomic_write, write_text_atomic
from genvec.formats import differences, header, read_document

logger = logging.getLogger(__name__)

FORMAT_NAME = "genvec-responses"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GenerationSummary:
    """What one `generate_responses` call did, for one shard."""

    output: Path
    shard_id: int
    num_shards: int
    queries: int
    resumed: int
    generated: int
    eos: int
    length: int
    response_tokens: int
    seconds: float
    skipped_empty: int
    skipped_duplicates: int

    @property
    def queries_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.response_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class ResponseShard:
    """One shard's share of a generation, fixed before its file is opened: where, which queries, by whom, how."""

    path: Path  # this shard's JSONL file
    query_set: QuerySet
    identity: dict[str, object]  # the backbone that answers: id or directory, pinned revision
    requested: dict[str, object]  # the settings a resumed run must share with the run it continues
    config: DataConfig
    shard_id: int = 0
    num_shards: int = 1

    @functools.cached_property
    def positions(self) -> list[int]:
        """The positions in `query_set` this shard answers: shard_id, shard_id + num_shards, ..."""
        return list(range(self.shard_id, len(self.query_set), self.num_shards))


class ResponseRun:
    """Counts and metadata of one shard's output file, from the records an earlier run left (`done`) on."""

    def __init__(self, shard: ResponseShard, previous: dict | None, done: list[ResponseRecord]) -> None:
        self.shard = shard
        self.settings: dict[str, object] = {}
        self.resumed = len(done)
        self.written = len(done)
        self.eos = sum(record.finish_reason == "eos" for record in done)
        self.new_tokens = 0
        self.total_tokens = sum(record.response_tokens for record in done)
        self.previous = previous or {}
        # Prompts cut earlier in this file (informational: a dropped partial batch may be counted twice).
        self.prompts_cut_before = self.previous.get("counts", {}).get("prompts_cut", 0) if done else 0
        self.prompts_cut = 0

    def add(self, records: list[ResponseRecord]) -> None:
        self.written += len(records)
        self.eos += sum(record.finish_reason == "eos" for record in records)
        tokens = sum(record.response_tokens for record in records)
        self.new_tokens += tokens
        self.total_tokens += tokens

    def write_metadata(self, complete: bool) -> None:
        shard = self.shard
        document = {
            **header(FORMAT_NAME, FORMAT_VERSION),
            "complete": complete,
            "backbone": shard.identity,
            "requested": shard.requested,
            "generation": self.settings or self.previous.get("generation", {}),
            "source": {**dataclasses.asdict(shard.query_set.summary), "field": shard.config.query_field,
                       "split": shard.config.split},
            "shard": {"id": shard.shard_id, "count": shard.num_shards},
            "counts": {
                "queries": len(shard.positions),
                "written": self.written,
                "eos": self.eos,
                "length": self.written - self.eos,
                "response_tokens": self.total_tokens,
                "prompts_cut": self.prompts_cut_before + self.prompts_cut,
            },
        }
        write_text_atomic(metadata_path(shard.path), json.dumps(document, indent=2) + "\n")

    def summary(self, seconds: float) -> GenerationSummary:
        shard, source = self.shard, self.shard.query_set.summary
        return GenerationSummary(
            output=shard.path, shard_id=shard.shard_id, num_shards=shard.num_shards, queries=len(shard.positions),
            resumed=self.resumed, generated=self.written - self.resumed, eos=self.eos, length=self.written - self.eos,
            response_tokens=self.new_tokens, seconds=seconds,
            skipped_empty=source.empty, skipped_duplicates=source.duplicates,
        )


def resume_file(shard: ResponseShard, previous: dict | None) -> list[ResponseRecord]:
    """The complete batches already in the shard's file (after checking they answer its queries with its settings).

    A torn last line and a partly written last batch are removed from the file, so the run goes on at a batch
    boundary and batches exactly like an uninterrupted run. `previous` is the file's metadata, if any.
    """
    path, query_set, positions = shard.path, shard.query_set, shard.positions
    if not path.exists():
        return []
    if previous is None:
        if path.stat().st_size == 0:
            return []
        raise InputError(
            f"{path} holds responses but has no {metadata_path(path).name} beside it, so which backbone and settings "
            "wrote them cannot be checked, and resuming could mix two runs in one file. Restore the .meta.json "
            "file, or delete the responses file (or choose another output) to start over."
        )
    _check_compatible(path, previous, shard.identity, shard.requested)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn line is expected here, and is repaired below
        records, complete_bytes = read_response_file(path)
    if len(records) > len(positions):
        raise InputError(f"{path} holds {len(records)} responses but this shard has {len(positions)} queries; it "
                         "was written for another query source. Delete it or choose another output.")
    for record, position in zip(records, positions):
        if record.id != query_set.ids[position] or record.query != query_set.queries[position]:
            raise InputError(
                f"{path} was written for other queries (record id {record.id} holds {record.query!r:.60}, expected id "
                f"{query_set.ids[position]}: {query_set.queries[position]!r:.60}). Delete it or choose another output."
            )
    batch_size = shard.config.generation_batch_size
    keep = len(records) if len(records) == len(positions) else len(records) - len(records) % batch_size
    if keep < len(records) or complete_bytes < path.stat().st_size:
        with atomic_write(path) as file:
            file.write("".join(record.to_json() + "\n" for record in records[:keep]))
        logger.info("resuming %s: kept %d complete responses, dropped %d", path, keep, len(records) - keep)
    return records[:keep]


def _check_compatible(path: Path, previous: dict, identity: dict, requested: dict) -> None:
    recorded = dict(previous.get("backbone", {}))
    if isinstance(recorded.get("name_or_path"), str):  # files of earlier versions may name a directory relatively
        recorded["name_or_path"] = local_path(recorded["name_or_path"])
    changed = [f"backbone {line}" for line in differences(recorded, identity)]
    changed += differences(previous.get("requested", {}), requested)
    if changed:
        raise InputError(
            f"{path} was generated with other settings ({'; '.join(changed)}); resuming would mix them. "
            "Delete it (and its .meta.json) or choose another output."
        )


def read_metadata(path: Path) -> dict | None:
    """The metadata sidecar of response file `path`, or None when there is none."""
    meta = metadata_path(path)
    if not meta.is_file():
        return None
    return read_document(meta, FORMAT_NAME, FORMAT_VERSION, InputError,
                         "delete it (and the responses file, or choose another output) to start over")


def merged_metadata(files: list[Path], records: list[ResponseRecord]) -> dict[str, object]:
    parts = [read_metadata(file) for file in files]
    known = [part for part in parts if part is not None]
    document = dict(known[0]) if known else header(FORMAT_NAME, FORMAT_VERSION)
    eos = sum(record.finish_reason == "eos" for record in records)
    document.update(
        complete=bool(known) and len(known) == len(parts) and all(part.get("complete") for part in known),
        shard={"id": 0, "count": 1, "merged_from": [file.name for file in files]},
        counts={
            "queries": sum(part.get("counts", {}).get("queries", 0) for part in known) or len(records),
            "written": len(records),
            "eos": eos,
            "length": len(records) - eos,
            "response_tokens": sum(record.response_tokens for record in records),
            "prompts_cut": sum(part.get("counts", {}).get("prompts_cut", 0) for part in known),
        },
    )
    return document

