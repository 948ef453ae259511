"""Bulk corpus encoding: a whole corpus (JSON Lines, JSON, CSV/TSV, Parquet, a text file, or a Hugging Face dataset)
into embedding shards, resumable, and split across processes started by `accelerate launch --multi_gpu` (GPUs) or
torchrun (CPU processes too).

The output directory holds `manifest.json` (what was encoded, how, and how many shards) and, for every shard of
`shard_size` rows, `shard-00000.ids.json` (the rows' ids) and `shard-00000.npy` (float32, rows x D), each written
atomically, the `.npy` last: a shard whose `.npy` exists is complete. A killed run continues where it stopped: the
manifest must match (same input, model identity, instruction, truncation, normalisation, shard size) and complete
shards are skipped, so nothing is duplicated or lost. With N processes, process i encodes shards i, i + N, ...;
process 0 marks the manifest complete once all have finished. `read_shards(dir)` gives (ids, vectors) back, ready
for a vector store.

What it does not do: start processes itself (accelerate does), or write anything but whole shards.
"""

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genvec.data.records import Record, open_records
from genvec.device import check_launch
from genvec.errors import InputError, check_positive_int
from genvec.files import atomic_write, write_text_atomic
from genvec.formats import differences, header, read_document
from genvec.inference import Side, Truncate, embed, prepare, resolve_instruction
from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

FORMAT_NAME = "genvec-embedding-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Corpus:
    """The rows to encode: ids and texts, and what they were read from."""

    ids: list[str]
    texts: list[str]
    source: dict


def read_corpus(source: str | Path, *, text_field: str = "text", id_field: str = "id", split: str = "train") -> Corpus:
    """Rows of a corpus: any source `genvec.data.records` reads (JSON Lines or JSON, CSV/TSV, Parquet, a saved or hub
    Hugging Face dataset), each with its `id_field` and a non-empty `text_field`; or a text file, one text per line,
    whose ids are the line numbers (blank lines are skipped).

    Raises:
        InputError: a missing field (naming the file and the line or row), an empty or non-string text, no rows,
            repeated ids.
    """
    records = open_records(source, split=split, text_field=text_field)
    if records.format == "text":
        rows = [(str(record.number), record.fields[text_field]) for record in records.read()
                if record.fields[text_field].strip()]
    else:
        fix = "Pass text_field and id_field naming the fields that hold each row's text and id."
        rows = [(str(record.fields[id_field]), _text(records.name, record, text_field))
                for record in records.read((text_field, id_field), columns=(id_field, text_field), fix=fix)]
    if not rows:
        raise InputError(f"{records.name}: no rows to encode; pass a corpus with at least one text.")
    ids = [row_id for row_id, _ in rows]
    if len(set(ids)) != len(ids):
        seen, repeated = set(), None
        for row_id in ids:
            if row_id in seen:
                repeated = row_id
                break
            seen.add(row_id)
        raise InputError(f"{records.name}: the id {repeated!r} appears more than once; ids must be unique (pass "
                         "another id_field).")
    return Corpus(ids, [text for _, text in rows], {**records.describe(), "text_field": text_field,
                                                    "id_field": id_field, "rows": len(rows)})


def _text(source: str, record: Record, text_field: str) -> str:
    text = record.fields[text_field]
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{source}: {record.where}: {text_field!r} is {text!r:.40}; every row needs a non-empty "
                         "text.")
    return text


def encode_corpus(
    model: GenVecModel,
    corpus: Corpus,
    output: str | Path,
    *,
    instruction: str | None = None,
    side: Side | None = None,
    truncate: Truncate = "cut",
    normalize: bool = False,
    shard_size: int = 10000,
    batch_size: int = 32,
    show_progress: bool = True,
) -> Path:
    """Encode `corpus` into shards under `output` (see the module docstring); returns `output`. Every process of an
    `accelerate launch` calls it with the same arguments. Texts are read through the model's front door
    (`genvec.inference.prepare`): `instruction` or `side` ("query"/"document": the model's saved instruction) and
    `truncate` ("cut", logged per shard, or "error") mean what they mean in `GenVecModel.encode`.

    Raises:
        InputError: `output` holds shards of another corpus, model or setting (the differences are listed).
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    check_positive_int(shard_size, "shard_size")
    instruction = resolve_instruction(model, instruction=instruction, side=side)
    state = PartialState(cpu=model.device.type == "cpu")  # CPU processes: gloo, not one lone process each
    check_launch(state, "encode every shard and write the same files")
    output = Path(output)
    shards = (len(corpus.ids) + shard_size - 1) // shard_size
    recorded = {"source": corpus.source, "model": model.identity(), "instruction": instruction,
                "truncate": truncate, "normalize": normalize, "shard_size": shard_size, "shards": shards,
                "embedding_dim": model.embedding_dim}
    _share_manifest(state, output, recorded)
    mine = [index for index in range(shards) if index % state.num_processes == state.process_index]
    todo = [index for index in mine if not (output / _shard_name(index, ".npy")).is_file()]
    if len(todo) < len(mine):
        logger.info("process %d: %d of its %d shards are done already", state.process_index, len(mine) - len(todo),
                    len(mine))
    for index in tqdm(todo, desc=f"encode shards (process {state.process_index})", unit="shard",
                      disable=not show_progress):
        start = index * shard_size
        rows = slice(start, start + shard_size)
        inputs = prepare(model, corpus.texts[rows], instruction=instruction, truncate=truncate)
        if inputs.cut:
            logger.warning("shard %d: %d of its %d texts were longer than the model reads and were cut", index,
                           len(inputs.cut), len(inputs))
        vectors = embed(model, inputs, normalize=normalize, batch_size=batch_size, show_progress=False)
        if not np.isfinite(vectors).all():
            raise InputError(f"shard {index}: the model produced NaN or infinite embeddings; nothing was written "
                             "for it (check the checkpoint, or run in fp32).")
        write_text_atomic(output / _shard_name(index, ".ids.json"), json.dumps(corpus.ids[rows]) + "\n")
        with atomic_write(output / _shard_name(index, ".npy"), "wb") as file:
            np.save(file, vectors.astype(np.float32))
    state.wait_for_everyone()
    if state.is_main_process:
        _mark_complete(output, shards)
    state.wait_for_everyone()
    return output


def _share_manifest(state, output: Path, recorded: dict) -> None:
    """Process 0 writes the manifest (or checks the one there); then every other process checks it too."""
    if state.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        _check_or_write_manifest(output, recorded)
    state.wait_for_everyone()
    if not state.is_main_process:
        _check_or_write_manifest(output, recorded)


def _mark_complete(output: Path, shards: int) -> None:
    """Record in the manifest that every shard is written (`read_shards` reads nothing before)."""
    missing = [i for i in range(shards) if not (output / _shard_name(i, ".npy")).is_file()]
    if missing:
        raise InputError(f"{output}: shards {missing[:5]} are missing after every process finished.")
    document = read_document(output / MANIFEST, FORMAT_NAME, FORMAT_VERSION, InputError,
                             "pass a directory genvec encode wrote")
    write_text_atomic(output / MANIFEST, json.dumps({**document, "complete": True}, indent=2) + "\n")


def read_shards(directory: str | Path) -> tuple[list[str], np.ndarray]:
    """Every id and embedding of a complete shard directory, in corpus order.

    Raises:
        InputError: not a shard directory, or one whose encoding has not finished.
    """
    directory = Path(directory)
    manifest = directory / MANIFEST
    if not manifest.is_file():
        raise InputError(f"{str(directory)!r} holds no {MANIFEST}; it is not a genvec shard directory.")
    document = read_document(manifest, FORMAT_NAME, FORMAT_VERSION, InputError, "pass a directory genvec encode wrote")
    if not document.get("complete"):
        raise InputError(f"{directory}: the encoding has not finished; run the same genvec encode command again to "
                         "complete it.")
    ids: list[str] = []
    parts = []
    for index in range(document["shards"]):
        ids += json.loads((directory / _shard_name(index, ".ids.json")).read_text(encoding="utf-8"))
        parts.append(np.load(directory / _shard_name(index, ".npy")))
    return ids, np.concatenate(parts)


# ------------------------------------------------------------------------------------------------- helpers


def _check_or_write_manifest(output: Path, recorded: dict) -> None:
    path = output / MANIFEST
    if path.is_file():
        document = read_document(path, FORMAT_NAME, FORMAT_VERSION, InputError, "pass another --output")
        found = differences({k: document.get(k) for k in recorded}, recorded)
        if found:
            raise InputError(f"{output} holds shards of another encoding ({'; '.join(found)}); pass another --output "
                             "or remove it.")
        return
    if any(output.glob("shard-*.npy")):
        raise InputError(f"{output} holds shards but no {MANIFEST}; pass another --output.")
    write_text_atomic(path, json.dumps({**header(FORMAT_NAME, FORMAT_VERSION), **recorded, "complete": False},
                                       indent=2) + "\n")


def _shard_name(index: int, suffix: str) -> str:
    return f"shard-{index:05d}{suffix}"
