"""Bulk corpus encoding: a whole corpus (JSONL, Parquet, a text file, or a Hugging Face dataset) into embedding
shards, resumable, and split across processes started by `accelerate launch --multi_gpu` (GPUs) or torchrun (CPU
processes too).

The output directory holds `manifest.json` (what was encoded, how, and how many shards) and, for every shard of
`shard_size` rows, `shard-00000.ids.json` (the rows' ids) and `shard-00000.npy` (float32, rows x D), each written
atomically, the `.npy` last: a shard whose `.npy` exists is complete. A killed run continues where it stopped: the
manifest must match (same input, model, instruction, normalisation, shard size) and complete shards are skipped, so
nothing is duplicated or lost. With N processes, process i encodes shards i, i + N, ...; process 0 marks the manifest
complete once all have finished. `read_shards(dir)` gives (ids, vectors) back, ready for a vector store.

What it does not do: start processes itself (accelerate does), or write anything but whole shards.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genvec.device import check_launch
from genvec.errors import InputError
from genvec.files import atomic_write, sha256_file, write_text_atomic
from genvec.formats import differences, header, read_document

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
    """Rows of a JSONL file, a Parquet file, a text file (one text per line; ids are line numbers), a saved
    Hugging Face dataset directory, or a hub dataset name.

    Raises:
        InputError: a missing field (naming the file and the line), an empty or non-string text, repeated ids.
    """
    path = Path(source)
    if path.is_file():
        described = {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}
        if path.suffix == ".jsonl":
            rows = _jsonl_rows(path, text_field, id_field)
        elif path.suffix == ".parquet":
            rows = _table_rows(_parquet(path), str(path), text_field, id_field)
        elif path.suffix == ".txt":
            lines = path.read_text(encoding="utf-8").splitlines()
            rows = [(str(number), line) for number, line in enumerate(lines, 1) if line.strip()]
        else:
            raise InputError(f"--input {str(path)!r}: use a .jsonl, .parquet or .txt file, a saved dataset "
                             "directory or a hub dataset name.")
    else:
        rows, described = _dataset_rows(str(source), text_field, id_field, split)
    if not rows:
        raise InputError(f"{source}: no rows to encode.")
    ids = [row_id for row_id, _ in rows]
    if len(set(ids)) != len(ids):
        seen, repeated = set(), None
        for row_id in ids:
            if row_id in seen:
                repeated = row_id
                break
            seen.add(row_id)
        raise InputError(f"{source}: the id {repeated!r} appears more than once; ids must be unique (pass another "
                         "--id-field).")
    return Corpus(ids, [text for _, text in rows], {**described, "text_field": text_field, "id_field": id_field,
                                                    "rows": len(rows)})


def encode_corpus(
    model,
    corpus: Corpus,
    output: str | Path,
    *,
    instruction: str | None = None,
    normalize: bool = False,
    shard_size: int = 10000,
    batch_size: int = 32,
    show_progress: bool = True,
) -> Path:
    """Encode `corpus` into shards under `output` (see the module docstring); returns `output`. Every process of an
    `accelerate launch` calls it with the same arguments.

    Raises:
        InputError: `output` holds shards of another corpus, model or setting (the differences are listed).
    """
    from accelerate import PartialState
    from tqdm.auto import tqdm

    if not isinstance(shard_size, int) or shard_size < 1:
        raise InputError(f"shard_size must be a positive integer, got {shard_size!r}.")
    state = PartialState(cpu=model.device.type == "cpu")  # CPU processes: gloo, not one lone process each
    check_launch(state, "encode every shard and write the same files")
    output = Path(output)
    shards = (len(corpus.ids) + shard_size - 1) // shard_size
    recorded = {"source": corpus.source, "model": model.backbone_record["fingerprint"] | {
        "trainable_sha256": model.trainable_digest()[:16]}, "instruction": instruction, "normalize": normalize,
        "shard_size": shard_size, "shards": shards, "embedding_dim": model.embedding_dim}
    if state.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        _check_or_write_manifest(output, recorded)
    state.wait_for_everyone()
    if not state.is_main_process:
        _check_or_write_manifest(output, recorded)
    mine = [index for index in range(shards) if index % state.num_processes == state.process_index]
    todo = [index for index in mine if not (output / _shard_name(index, ".npy")).is_file()]
    if len(todo) < len(mine):
        logger.info("process %d: %d of its %d shards are done already", state.process_index, len(mine) - len(todo),
                    len(mine))
    for index in tqdm(todo, desc=f"encode shards (process {state.process_index})", unit="shard",
                      disable=not show_progress):
        start = index * shard_size
        rows = slice(start, start + shard_size)
        vectors = model.encode(corpus.texts[rows], instruction=instruction, normalize=normalize,
                               batch_size=batch_size, show_progress=False)
        if not np.isfinite(vectors).all():
            raise InputError(f"shard {index}: the model produced NaN or infinite embeddings; nothing was written "
                             "for it (check the checkpoint, or run in fp32).")
        write_text_atomic(output / _shard_name(index, ".ids.json"), json.dumps(corpus.ids[rows]) + "\n")
        with atomic_write(output / _shard_name(index, ".npy"), "wb") as file:
            np.save(file, vectors.astype(np.float32))
    state.wait_for_everyone()
    if state.is_main_process:
        missing = [i for i in range(shards) if not (output / _shard_name(i, ".npy")).is_file()]
        if missing:
            raise InputError(f"{output}: shards {missing[:5]} are missing after every process finished.")
        document = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
        document["complete"] = True
        write_text_atomic(output / MANIFEST, json.dumps(document, indent=2) + "\n")
    state.wait_for_everyone()
    return output


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


def _jsonl_rows(path: Path, text_field: str, id_field: str) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as err:
            raise InputError(f"{path}: line {number} is not valid JSON ({err}).") from err
        rows.append(_row(record, f"{path}: line {number}", text_field, id_field))
    return rows


def _table_rows(records: Sequence[dict], where: str, text_field: str, id_field: str) -> list[tuple[str, str]]:
    return [_row(record, f"{where}: row {number}", text_field, id_field) for number, record in enumerate(records, 1)]


def _row(record: object, where: str, text_field: str, id_field: str) -> tuple[str, str]:
    if not isinstance(record, dict) or text_field not in record or id_field not in record:
        raise InputError(f"{where} lacks {text_field!r} or {id_field!r}; pass --text-field / --id-field naming the "
                         "columns.")
    text = record[text_field]
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{where}: {text_field!r} is {text!r:.40}; every row needs a non-empty text.")
    return str(record[id_field]), text


def _parquet(path: Path) -> list[dict]:
    try:
        import pyarrow.parquet as pq
    except ImportError as err:
        raise InputError("Parquet input needs pyarrow: pip install 'genvec[data]'.") from err
    return pq.read_table(path).to_pylist()


def _dataset_rows(source: str, text_field: str, id_field: str, split: str) -> tuple[list[tuple[str, str]], dict]:
    try:
        import datasets
    except ImportError as err:
        raise InputError(f"{source!r} is not a file; reading a dataset needs: pip install 'genvec[data]'.") from err
    path = Path(source)
    if path.is_dir():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise InputError(f"{source}: no split {split!r} (it has {', '.join(loaded)}); pass --split.")
            loaded = loaded[split]
        described = {"dataset": str(path.resolve()), "fingerprint": loaded._fingerprint}
    else:
        try:
            loaded = datasets.load_dataset(source, split=split)
        except Exception as err:  # datasets raises many types for "not found" and "offline"
            raise InputError(f"{source!r} is neither a file, a saved dataset directory nor a loadable dataset: "
                             f"{err}") from err
        described = {"dataset": source, "split": split, "fingerprint": loaded._fingerprint}
    for name in (text_field, id_field):
        if name not in loaded.column_names:
            raise InputError(f"{source}: no column {name!r} (it has {', '.join(loaded.column_names)}); pass "
                             "--text-field / --id-field.")
    return _table_rows(loaded.select_columns([id_field, text_field]).to_list(), source, text_field, id_field), described
