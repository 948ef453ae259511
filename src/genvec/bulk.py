"""Bulk corpus encoding: a whole corpus (JSON Lines, JSON, CSV/TSV, Parquet, a text file, or a Hugging Face dataset)
into embedding shards, resumable, and split across processes started by `accelerate launch --multi_gpu` (GPUs) or
torchrun (CPU processes too).

Two shard formats (`shard_format`, `genvec encode --format`). Parquet (the default): for every shard of `shard_size`
rows one `shard-00000.parquet` holding the columns `id` (string), `text` (string; only with `with_text`) and
`embedding` (a fixed-size list of D float32, `pa.list_(pa.float32(), D)`; with `dimensions=d` the first d; with
`precision` int8/uint8 a list of d int8/uint8, binary/ubinary of d/8 int8/uint8 packed bytes: `genvec.quantization`),
beside `_manifest.json` (what was encoded,
how, and how many shards): the directory is a Parquet dataset that pyarrow, pandas, Spark, DuckDB and polars read
with no genvec code (the manifest's leading "_" and the temporary files' leading "." make them skip those); Daft
reads every file of a directory, so it is given `DIR/*.parquet`.
`.npy` (`shard_format="npy"`, the format of genvec before Parquet): `shard-00000.ids.json` (the rows' ids) and
`shard-00000.npy` (float32, rows x D) per shard, beside `manifest.json`. Every file is written atomically, the
Parquet file or the `.npy` last.

A killed run continues where it stopped: the manifest must match (same input, model identity, dtype, max_length,
instruction, truncation, normalisation, dimensions, precision, shard size, shard format and text column: everything
that changes a vector,
a row's place or a shard's files) and whole shards are skipped, so nothing is duplicated or lost; a manifest of
genvec before Parquet records `.npy` shards. A shard is whole when its files read back, hold the rows the manifest
gives it, with vectors of the manifest's width; one damaged from outside (a deleted ids file, a cut array or Parquet
file) is encoded again. With N processes, process i encodes shards i, i + N, ...; process 0 marks the manifest
complete once all have finished. `read_shards(dir)` gives (ids, vectors) back from either format, ready for a vector
store, and names the shard if one is damaged.

What it does not do: start processes itself (accelerate does), or write anything but whole shards.
"""

import contextlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from genvec.data.records import Record, Records, open_records
from genvec.device import DTYPE_NAMES, check_launch
from genvec.errors import InputError, check_positive_int
from genvec.files import atomic_write, exclusive_lock, lock_file_for, write_text_atomic
from genvec.formats import differences, header, read_document
from genvec.inference import (
    Side,
    Truncate,
    check_dimensions,
    check_precision,
    embed,
    prepare,
    quantize_rows,
    resolve_instruction,
    text_limit,
)
from genvec.model import GenVecModel
from genvec.quantization import DTYPES, PACKED

logger = logging.getLogger(__name__)

FORMAT_NAME = "genvec-embedding-shards"
FORMAT_VERSION = 1
ShardFormat = Literal["parquet", "npy"]
SHARD_FORMATS: tuple[ShardFormat, ...] = ("parquet", "npy")
MANIFEST = "manifest.json"  # beside .npy shards
# Beside Parquet shards: engines that read a directory as a Parquet dataset skip names starting with "_" (a
# manifest.json there makes pyarrow.parquet.read_table(dir) and pandas.read_parquet(dir) fail).
PARQUET_MANIFEST = "_manifest.json"
MANIFESTS: dict[str, str] = {"parquet": PARQUET_MANIFEST, "npy": MANIFEST}
# What a manifest of an earlier genvec (before Parquet shards, before dimensions and precision) means by the keys it
# lacks.
_BEFORE_PARQUET = {"shard_format": "npy", "with_text": False, "dimensions": None, "precision": "float32"}
_REDO = "run the same genvec encode command again to encode it anew"  # what to do about a damaged shard


@dataclass(frozen=True)
class Corpus:
    """The rows to encode: ids and texts, and what they were read from."""

    ids: list[str]
    texts: list[str]
    source: dict


def read_corpus(source: str | Path, *, text_field: str = "text", id_field: str = "id", split: str = "train") -> Corpus:
    """Rows of a corpus: any source `genvec.data.records` reads (JSON Lines or JSON, CSV/TSV, Parquet, a saved or hub
    Hugging Face dataset), each with its `id_field` (a string or a number, stored as text) and a non-empty
    `text_field`; or a text file, one text per line, whose ids are the line numbers (blank lines are skipped).

    Raises:
        InputError: a missing field, an id that is not a string or number, an empty or non-string text (each
            naming the file and the line or row), no rows, repeated ids (`1` and `"1"` count as one id).
    """
    records = open_records(source, split=split, text_field=text_field)
    if records.format == "text":
        rows = [(str(record.number), _text(records.name, record, text_field)) for record in records.read()
                if record.fields[text_field].strip()]
    else:
        fix = "Pass text_field and id_field naming the fields that hold each row's text and id."
        rows = [(_row_id(records.name, record, id_field), _text(records.name, record, text_field))
                for record in records.read((text_field, id_field), columns=(id_field, text_field), fix=fix)]
    if not rows:
        raise InputError(f"{records.name}: no rows to encode; pass a corpus with at least one text.")
    ids = [row_id for row_id, _ in rows]
    _check_unique(records, ids, id_field)
    return Corpus(ids, [text for _, text in rows], {**records.describe(), "text_field": text_field,
                                                    "id_field": id_field, "rows": len(rows)})


def _row_id(source: str, record: Record, id_field: str) -> str:
    """A row's id as the shards store it: a string as it is, a number as its text (JSON booleans are not numbers)."""
    value = record.fields[id_field]
    is_number = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float)
                                                                           and math.isfinite(value))
    if not isinstance(value, str) and not is_number:
        raise InputError(f"{source}: {record.where}: {id_field!r} is {value!r:.40} ({type(value).__name__}); an id "
                         "must be a string or a finite number. Fix that row, or pass another id_field.")
    return str(value)


def _text(source: str, record: Record, text_field: str) -> str:
    text = record.fields[text_field]
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{source}: {record.where}: {text_field!r} is {text!r:.40}; every row needs a non-empty "
                         "text.")
    return text


def _check_unique(records: Records, ids: list[str], id_field: str) -> None:
    """Refuse a repeated id, naming the first two rows that hold it (read again: only an error needs the places)."""
    if len(set(ids)) == len(ids):
        return
    seen: set[str] = set()
    for repeated in ids:
        if repeated in seen:
            break
        seen.add(repeated)
    places = [record.where for record in records.read(columns=(id_field,))
              if str(record.fields.get(id_field)) == repeated][:2]
    raise InputError(f"{records.name}: the id {repeated!r} appears more than once; ids must be unique (pass another "
                     f"id_field). {' and '.join(places)} both hold it (ids are stored as text, so 1 and \"1\" are "
                     "one id).")


def encode_corpus(
    model: GenVecModel,
    corpus: Corpus,
    output: str | Path,
    *,
    instruction: str | None = None,
    side: Side | None = None,
    truncate: Truncate = "cut",
    max_length: int | None = None,
    normalize: bool = False,
    shard_size: int = 10000,
    batch_size: int = 32,
    shard_format: ShardFormat = "parquet",
    with_text: bool = False,
    show_progress: bool = True,
    share: tuple[int, int] | None = None,
    dimensions: int | None = None,
    precision: str = "float32",
) -> Path:
    """Encode `corpus` into shards under `output` (see the module docstring); returns `output`. Every process of an
    `accelerate launch` calls it with the same arguments. `share=(count, index)` encodes shards index, index + count,
    ... only, as one task of a launcher that is not Accelerate (Ray: `genvec.integrations.ray`), whose driver holds
    the directory with `hold_output`, which marks the manifest complete. Texts are read through the model's front door
    (`genvec.inference.prepare`): `instruction` or `side` ("query"/"document": the model's saved instruction),
    `truncate` ("cut", logged per shard, or "error"), `max_length` (None: the model's), `dimensions` and `precision`
    mean what they mean in `GenVecModel.encode`. `shard_format` is "parquet" (id, embedding and, with `with_text`,
    text columns) or "npy".

    Example:
        >>> encode_corpus(model, read_corpus("corpus.jsonl", id_field="_id"), "shards", side="document")
        >>> pandas.read_parquet("shards")  # columns id, embedding (one array of D float32 a row)

    Raises:
        InputError: `output` holds shards of another corpus, model, setting or shard format (the differences are
            listed); a bad text (naming its row and id), setting, shard format or `max_length`; Parquet asked for
            where pyarrow is missing.
        BusyError: another `encode_corpus` is writing to `output` (its process is named).
    """
    from accelerate import PartialState

    check_positive_int(shard_size, "shard_size")
    _check_shard_format(shard_format, with_text)
    instruction = resolve_instruction(model, instruction=instruction, side=side)
    max_length = model.config.model.max_length if max_length is None else max_length
    text_limit(model, max_length)  # refuses a max_length too small for the special tokens
    dimensions = check_dimensions(model, dimensions)
    check_precision(model, precision, dimensions, normalize)
    if share is None:
        state = PartialState(cpu=model.device.type == "cpu")  # CPU processes: gloo, not one lone process each
        check_launch(state, "encode every shard and write the same files")
    else:
        state = _Share.of(share)
    output = Path(output)
    shards = (len(corpus.ids) + shard_size - 1) // shard_size
    # Everything that changes a vector, a row's place or a shard's files; the dtype and max_length are in the model's
    # identity too, but named here so that a refused resume says which one differs.
    dtype = DTYPE_NAMES.get(model.dtype, str(model.dtype))
    recorded = {"source": corpus.source, "rows": len(corpus.ids), "dtype": dtype, "max_length": max_length,
                "instruction": instruction, "truncate": truncate, "normalize": normalize, "shard_size": shard_size,
                "shards": shards, "model": model.identity(), "embedding_dim": model.embedding_dim,
                "shard_format": shard_format, "with_text": with_text, "dimensions": dimensions, "precision": precision}
    with contextlib.ExitStack() as held:
        if state.is_main_process:  # one job at a time: another would pass the manifest check and overwrite shards
            output.parent.mkdir(parents=True, exist_ok=True)
            held.enter_context(exclusive_lock(lock_file_for(output), f"the shard directory {output}"))
        return _encode_shards(model, corpus, output, state, recorded, instruction=instruction, truncate=truncate,
                              max_length=max_length, normalize=normalize, batch_size=batch_size,
                              show_progress=show_progress)


@dataclass(frozen=True)
class _Share:
    """One share of the shards, started by a launcher that is not Accelerate (a Ray task): it stands in for
    Accelerate's `PartialState`. The driver holds the directory (`hold_output`), so a share never locks it, only
    checks (or writes, identically to any other share) the manifest, and never waits for the others."""

    num_processes: int
    process_index: int
    is_main_process: bool = False

    @classmethod
    def of(cls, share: tuple[int, int]) -> "_Share":
        count, index = share
        check_positive_int(count, "share count")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < count:
            raise InputError(f"share index must be in 0..{count - 1} for {count} shares, got {index!r}.")
        return cls(count, index)

    def wait_for_everyone(self) -> None:
        """Nothing to wait for: the driver marks the manifest complete once every share has finished."""


@contextlib.contextmanager
def hold_output(output: str | Path) -> Iterator[Path]:
    """Hold the shard directory `output` while shares encoded elsewhere (`encode_corpus(share=...)`, Ray tasks)
    write it: its lock, and what a killed run left half-written removed; when the block ends without an error, the
    manifest is marked complete (every shard checked whole first), as process 0 does under Accelerate.

    Raises:
        BusyError: another job is writing to `output`.
        InputError: at the end, no manifest, or a shard missing or damaged.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_file_for(output), f"the shard directory {output}"):
        output.mkdir(exist_ok=True)
        for stale in output.glob(".shard-*.tmp"):  # half-written by a killed run (under the lock: no one writes them)
            stale.unlink(missing_ok=True)
        yield output
        manifest = _find_manifest(output)
        if manifest is None:
            raise InputError(f"{output}: no shard task wrote a manifest; nothing was encoded.")
        document = read_document(manifest, FORMAT_NAME, FORMAT_VERSION, InputError, "pass another --output")
        _mark_complete(output, {**_BEFORE_PARQUET, **document})


def _check_shard_format(shard_format: str, with_text: bool) -> None:
    """Refuse a shard format genvec does not write, a text column it cannot hold, or Parquet without pyarrow."""
    if shard_format not in SHARD_FORMATS:
        raise InputError(f"shard_format {shard_format!r} is not a shard format genvec writes; pass one of "
                         f"{', '.join(map(repr, SHARD_FORMATS))} (genvec encode --format).")
    if with_text and shard_format != "parquet":
        raise InputError("with_text (--with-text) stores each row's text in its Parquet shard, but .npy shards hold "
                         "vectors only; drop it, or write Parquet shards (--format parquet).")
    if shard_format == "parquet":
        _parquet()  # before any work is done


def _encode_shards(model: GenVecModel, corpus: Corpus, output: Path, state, recorded: dict, *,
                   instruction: str | None, truncate: Truncate, max_length: int, normalize: bool, batch_size: int,
                   show_progress: bool) -> Path:
    """The shards this process owns that are not whole yet, encoded and written; the manifest marked complete."""
    from tqdm.auto import tqdm

    shards, shard_size, shard_format = recorded["shards"], recorded["shard_size"], recorded["shard_format"]
    _share_manifest(state, output, recorded)
    mine = [index for index in range(shards) if index % state.num_processes == state.process_index]
    todo = [index for index in mine if not _is_whole(output, index, corpus.ids[_rows(index, shard_size)],
                                                     _width(recorded), shard_format, recorded["precision"])]
    if len(todo) < len(mine):
        logger.info("process %d: %d of its %d shards are done already", state.process_index, len(mine) - len(todo),
                    len(mine))
    for index in tqdm(todo, desc=f"encode shards (process {state.process_index})", unit="shard",
                      disable=not show_progress):
        rows = _rows(index, shard_size)
        vectors = _encode_shard(model, corpus, index, rows, instruction=instruction, truncate=truncate,
                                max_length=max_length, normalize=normalize, batch_size=batch_size,
                                dimensions=recorded["dimensions"])
        vectors = quantize_rows(model, vectors, recorded["precision"], recorded["dimensions"], normalize)
        texts = corpus.texts[rows] if recorded["with_text"] else None
        _write_shard(output, index, corpus.ids[rows], vectors, texts, shard_format)
    state.wait_for_everyone()
    if state.is_main_process:
        _mark_complete(output, recorded)
    state.wait_for_everyone()
    return output


def _encode_shard(model: GenVecModel, corpus: Corpus, index: int, rows: slice, *, instruction: str | None,
                  truncate: Truncate, max_length: int, normalize: bool, batch_size: int,
                  dimensions: int | None) -> np.ndarray:
    """The (rows, d) float32 vectors of one shard; a text refused by `prepare` is named by its row and id in the
    corpus."""
    try:
        inputs = prepare(model, corpus.texts[rows], instruction=instruction, truncate=truncate, max_length=max_length)
    except InputError as err:
        if err.index is None:
            raise
        row = rows.start + err.index
        raise type(err)(f"{err} (in shard {index}: row {row} of the corpus, id {corpus.ids[row]!r})",
                        param=err.param, index=row) from err
    if inputs.cut:
        logger.warning("shard %d: %d of its %d texts were longer than the model reads and were cut", index,
                       len(inputs.cut), len(inputs))
    vectors = embed(model, inputs, normalize=normalize, batch_size=batch_size, show_progress=False,
                    dimensions=dimensions)
    if not np.isfinite(vectors).all():
        raise InputError(f"shard {index}: the model produced NaN or infinite embeddings; nothing was written for it "
                         "(check the checkpoint, or run in fp32).")
    return vectors


def _write_shard(output: Path, index: int, ids: list[str], vectors: np.ndarray, texts: list[str] | None,
                 shard_format: str) -> None:
    """Shard `index`'s files, each atomically: one Parquet file, or the ids then the (rows, D) float32 array (the
    file `_is_whole` looks for last, so a run killed in between leaves a shard that is simply not there yet)."""
    if shard_format == "npy":
        write_text_atomic(output / _shard_name(index, ".ids.json"), json.dumps(ids) + "\n")
        with atomic_write(output / _shard_name(index, ".npy"), "wb") as file:
            np.save(file, vectors)
        return
    pa, pq = _parquet()
    columns = {"id": pa.array(ids, pa.string())}
    if texts is not None:
        columns["text"] = pa.array(texts, pa.string())
    # (rows * D,) float32 values cut into rows of D: the fixed-size list every engine reads as a vector column.
    columns["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    with atomic_write(output / _shard_name(index, ".parquet"), "wb") as file:
        # No dictionary pages: ids are unique and vectors never repeat, so they would only cost time.
        pq.write_table(pa.table(columns), file, use_dictionary=False)


def _share_manifest(state, output: Path, recorded: dict) -> None:
    """Process 0 writes the manifest (or checks the one there) and removes what a killed run was writing; then every
    other process checks the manifest too."""
    if state.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        _check_or_write_manifest(output, recorded)
        for stale in output.glob(".shard-*.tmp"):  # half-written by a killed run (under the lock: no one writes them)
            stale.unlink(missing_ok=True)
    state.wait_for_everyone()
    if not state.is_main_process:
        _check_or_write_manifest(output, recorded)


def _is_whole(output: Path, index: int, ids: list[str], dim: int, shard_format: str, precision: str) -> bool:
    """Whether shard `index` is written and whole, holding `ids`; a damaged one is logged (it will be redone)."""
    if not (output / _shard_file(index, shard_format)).is_file():
        return False  # not written yet (a killed run writes the Parquet file or the array last)
    try:
        stored, _ = _read_shard(output, index, shard_format, rows=len(ids), dim=dim, fix="encoding it again",
                                vectors=False, precision=precision)
    except InputError as err:
        logger.warning("%s", err)
        return False
    if stored != ids:
        logger.warning("%s: shard %d holds other ids than the corpus's rows; encoding it again", output, index)
        return False
    return True


def _mark_complete(output: Path, recorded: dict) -> None:
    """Record in the manifest that every shard is written and whole (`read_shards` reads nothing before)."""
    shard_format = recorded["shard_format"]
    missing = [i for i in range(recorded["shards"]) if not (output / _shard_file(i, shard_format)).is_file()]
    if missing:
        raise InputError(f"{output}: shards {missing[:5]} are missing after every process finished.")
    for index in range(recorded["shards"]):
        _read_shard(output, index, shard_format, rows=_shard_rows(recorded, index), dim=_width(recorded),
                    fix=_REDO, vectors=False, precision=recorded["precision"])
    path = output / MANIFESTS[shard_format]
    document = read_document(path, FORMAT_NAME, FORMAT_VERSION, InputError, "pass a directory genvec encode wrote")
    write_text_atomic(path, json.dumps({**document, "complete": True}, indent=2) + "\n")


def read_shards(directory: str | Path) -> tuple[list[str], np.ndarray]:
    """Every id and embedding of a complete shard directory (Parquet or `.npy` shards), in corpus order.

    Raises:
        InputError: not a shard directory, one whose encoding has not finished, or a damaged shard (a missing or
            cut file, ids and vectors of different lengths), named with what is wrong.
    """
    directory = Path(directory)
    manifest = _find_manifest(directory)
    if manifest is None:
        raise InputError(f"{str(directory)!r} holds no {PARQUET_MANIFEST} or {MANIFEST}; it is not a genvec shard "
                         "directory.")
    document = read_document(manifest, FORMAT_NAME, FORMAT_VERSION, InputError, "pass a directory genvec encode wrote")
    if not document.get("complete"):
        raise InputError(f"{directory}: the encoding has not finished; run the same genvec encode command again to "
                         "complete it.")
    document = {**_BEFORE_PARQUET, **document}
    shard_format = document["shard_format"]
    ids: list[str] = []
    parts = []
    for index in range(document["shards"]):
        shard_ids, vectors = _read_shard(directory, index, shard_format, rows=_shard_rows(document, index),
                                         dim=_width(document), fix=_REDO, precision=document["precision"])
        ids += shard_ids
        parts.append(np.asarray(vectors))
    return ids, np.concatenate(parts)  # read into memory, a plain array


# ------------------------------------------------------------------------------------------------- helpers


def _parquet():
    """pyarrow and pyarrow.parquet (a genvec dependency, imported only where Parquet is written or read)."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as err:
        raise InputError(f"Parquet shards need pyarrow, which is not installed here ({err}); run `pip install "
                         "pyarrow` (genvec depends on it), or write .npy shards (--format npy).") from err
    return pyarrow, pyarrow.parquet


def _find_manifest(directory: Path) -> Path | None:
    """The manifest in `directory` (Parquet or .npy shards), or None; both is a directory of two encodings."""
    found = [directory / name for name in MANIFESTS.values() if (directory / name).is_file()]
    if len(found) > 1:
        raise InputError(f"{directory} holds both {PARQUET_MANIFEST} and {MANIFEST}: shards of two encodings are "
                         "mixed there; pass another --output.")
    return found[0] if found else None


def _check_or_write_manifest(output: Path, recorded: dict) -> None:
    path = _find_manifest(output)
    if path is not None:
        document = {**_BEFORE_PARQUET, **read_document(path, FORMAT_NAME, FORMAT_VERSION, InputError,
                                                       "pass another --output")}
        found = differences({k: document.get(k) for k in recorded}, recorded)
        if found:
            held = document["shard_format"]
            fix = (f"it holds {held} shards: pass --format {held} (shard_format={held!r}) to continue it, another "
                   "--output, or remove it" if held != recorded["shard_format"] else "pass another --output or "
                   "remove it")
            raise InputError(f"{output} holds shards of another encoding ({'; '.join(found)}); {fix}.")
        return
    if any(output.glob("shard-*.npy")) or any(output.glob("shard-*.parquet")):
        raise InputError(f"{output} holds shards but no {MANIFESTS[recorded['shard_format']]}; pass another --output.")
    write_text_atomic(output / MANIFESTS[recorded["shard_format"]],
                      json.dumps({**header(FORMAT_NAME, FORMAT_VERSION), **recorded, "complete": False}, indent=2)
                      + "\n")


def _read_shard(directory: Path, index: int, shard_format: str, *, rows: int | None, dim: int | None, fix: str,
                vectors: bool = True, precision: str = "float32") -> tuple[list[str], np.ndarray | None]:
    """Shard `index`'s ids and (rows, dim) vectors of `precision`'s dtype (float32, int8 or uint8), checked: its
    files there and whole, ids and vectors of one length, and of `rows` rows and `dim` columns where those are known
    (None: a manifest that did not record them). `vectors=False` reads a Parquet shard's ids and footer only (its
    vectors come back as None).

    Raises:
        InputError: naming the shard, the file and the damage, then `fix`.
    """
    dtype = np.dtype(DTYPES[precision])
    if shard_format == "parquet":
        return _read_parquet_shard(directory, index, rows=rows, dim=dim, fix=fix, vectors=vectors, dtype=dtype)
    return _read_npy_shard(directory, index, rows=rows, dim=dim, fix=fix, dtype=dtype)


def _width(document: dict) -> int | None:
    """The columns of a shard's vectors by its manifest: the coordinates kept (`dimensions`, or all), or for
    binary precisions the bytes they are packed into; None where an older manifest does not say."""
    size = document.get("dimensions") or document.get("embedding_dim")
    if size is None or document["precision"] not in PACKED:
        return size
    return size // 8


def _read_npy_shard(directory: Path, index: int, *, rows: int | None, dim: int | None,
                    fix: str, dtype: np.dtype) -> tuple[list[str], np.ndarray]:
    """A .npy shard's ids and vectors (memory-mapped); see `_read_shard`."""
    ids_path, array_path = directory / _shard_name(index, ".ids.json"), directory / _shard_name(index, ".npy")
    try:
        ids = json.loads(ids_path.read_text(encoding="utf-8"))
        # Memory-mapped: only the header is read, and a cut array fails here (shorter than its header says).
        vectors = np.load(array_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # missing, unreadable, cut, or not JSON / not .npy
        raise InputError(f"{directory}: shard {index} is damaged ({type(err).__name__}: {err}); {fix}.") from err
    if not isinstance(ids, list) or not all(isinstance(row_id, str) for row_id in ids):
        raise InputError(f"{directory}: shard {index} is damaged ({ids_path.name} is not a list of ids); {fix}.")
    fits = vectors.dtype == dtype and vectors.ndim == 2 and vectors.shape[0] == len(ids)
    if not fits or rows not in (None, len(ids)) or dim not in (None, vectors.shape[1]):
        given = "" if rows is None or dim is None else f"; the manifest gives it {rows} rows of {dim} {dtype}"
        raise InputError(f"{directory}: shard {index} is damaged ({len(ids)} ids and a {vectors.dtype} array of shape "
                         f"{vectors.shape}{given}); {fix}.")
    return ids, vectors


def _read_parquet_shard(directory: Path, index: int, *, rows: int | None, dim: int | None, fix: str,
                        vectors: bool, dtype: np.dtype) -> tuple[list[str], np.ndarray | None]:
    """A Parquet shard's ids and vectors; see `_read_shard`. A cut file fails at its footer, which is written last."""
    pa, pq = _parquet()
    path = directory / _shard_name(index, ".parquet")
    try:
        with pq.ParquetFile(path) as file:
            schema, stored_rows = file.schema_arrow, file.metadata.num_rows
            has_columns = {"id", "embedding"} <= set(schema.names)
            table = file.read(columns=["id", "embedding"] if vectors else ["id"]) if has_columns else None
    except (OSError, pa.ArrowException) as err:  # missing, unreadable, cut, not Parquet
        raise InputError(f"{directory}: shard {index} is damaged ({type(err).__name__}: {err}); {fix}.") from err
    kind = schema.field("embedding").type if table is not None else None
    value_type = pa.from_numpy_dtype(dtype)
    fits = (table is not None and schema.field("id").type == pa.string() and table.column("id").null_count == 0
            and isinstance(kind, pa.FixedSizeListType) and kind.value_type == value_type
            and dim in (None, kind.list_size) and rows in (None, table.num_rows))
    if not fits:
        found = ", ".join(f"{field.name}: {field.type}" for field in schema)
        raise InputError(f"{directory}: shard {index} is damaged ({path.name} holds {stored_rows} rows of "
                         f"{found}; the manifest gives it {rows} rows of id: string, embedding: "
                         f"{pa.list_(value_type, dim or 0)}); {fix}.")
    ids = table.column("id").to_pylist()
    if not vectors:
        return ids, None
    embedding = table.column("embedding").combine_chunks()  # (rows,) fixed-size lists of D float32
    if embedding.null_count or embedding.flatten().null_count:
        raise InputError(f"{directory}: shard {index} is damaged ({path.name} holds missing vectors); {fix}.")
    return ids, embedding.flatten().to_numpy().reshape(len(ids), kind.list_size)  # (rows, D)


def _rows(index: int, shard_size: int) -> slice:
    return slice(index * shard_size, (index + 1) * shard_size)


def _shard_rows(document: dict, index: int) -> int | None:
    """How many rows shard `index` holds according to a manifest; None where it does not say (an older one)."""
    rows, shard_size = document.get("rows", document.get("source", {}).get("rows")), document.get("shard_size")
    if not isinstance(rows, int) or not isinstance(shard_size, int):
        return None
    return min(shard_size, rows - index * shard_size)


def _shard_file(index: int, shard_format: str) -> str:
    """The file of shard `index` written last: the one whose presence means the shard was written."""
    return _shard_name(index, ".parquet" if shard_format == "parquet" else ".npy")


def _shard_name(index: int, suffix: str) -> str:
    return f"shard-{index:05d}{suffix}"
