"""The durable response file of one shard: its metadata sidecar, resumption at a batch boundary, merged metadata.

`NAME.jsonl` holds one `ResponseRecord` per line, appended batch by batch and synced; `NAME.meta.json` (written
atomically) records the format, the backbone that answered (id and pinned revision), the requested and resolved
generation settings, the source and the counts. A resumed run must match the recorded backbone and settings; a torn
last line and a partial last batch are cut so that it batches exactly like an uninterrupted run.
"""

import dataclasses
import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from genvec.backbone import local_path
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


class ResponseRun:
    """Counts and metadata of one shard's output file."""

    def __init__(self, path, previous, query_set, positions, done, identity, requested, config, shard_id, num_shards):
        self.path, self.query_set, self.positions = path, query_set, positions
        self.identity, self.requested, self.config = identity, requested, config
        self.shard_id, self.num_shards = shard_id, num_shards
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
        summary = self.query_set.summary
        document = {
            **header(FORMAT_NAME, FORMAT_VERSION),
            "complete": complete,
            "backbone": self.identity,
            "requested": self.requested,
            "generation": self.settings or self.previous.get("generation", {}),
            "source": {**dataclasses.asdict(summary), "field": self.config.query_field, "split": self.config.split},
            "shard": {"id": self.shard_id, "count": self.num_shards},
            "counts": {
                "queries": len(self.positions),
                "written": self.written,
                "eos": self.eos,
                "length": self.written - self.eos,
                "response_tokens": self.total_tokens,
                "prompts_cut": self.prompts_cut_before + self.prompts_cut,
            },
        }
        write_text_atomic(metadata_path(self.path), json.dumps(document, indent=2) + "\n")

    def summary(self, seconds: float) -> GenerationSummary:
        return GenerationSummary(
            output=self.path, shard_id=self.shard_id, num_shards=self.num_shards, queries=len(self.positions),
            resumed=self.resumed, generated=self.written - self.resumed, eos=self.eos, length=self.written - self.eos,
            response_tokens=self.new_tokens, seconds=seconds,
            skipped_empty=self.query_set.summary.empty, skipped_duplicates=self.query_set.summary.duplicates,
        )


def resume_file(path: Path, previous: dict | None, query_set: QuerySet, positions: list[int], identity: dict,
            requested: dict, batch_size: int) -> list[ResponseRecord]:
    """The complete batches already in `path` (after checking they answer these queries with these settings).

    A torn last line and a partly written last batch are removed from the file, so the run goes on at a batch
    boundary and batches exactly like an uninterrupted run.
    """
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
    _check_compatible(path, previous, identity, requested)
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

