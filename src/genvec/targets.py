"""The target store: every response's teacher embedding, computed once and read by training (design decision 5 in
docs/design.md).

A store is a directory:
- `store.json`: format and version, the teacher (name, dim, pooling), the storage dtype, the key scheme;
- one or more parts, `part-<name>.keys` + `part-<name>.vectors`: 16-byte keys and raw little-endian rows of `dim`
  values (float32, or float16 if asked), in the same order. The vectors file maps into memory as an (n, dim) array.

A key is the first 16 bytes of SHA-256(teacher name, NUL, response text): identical responses are embedded once, and
a second run over the same responses embeds nothing. Each batch appends its vectors, then its keys, each flushed
to disk; a row counts only once both are complete, so an interrupted run resumes where it stopped. Shard i of n
embeds the unique responses at positions i, i+n, ... of the whole list into its own part (`part-shard-0000i-of-
0000n`), so processes never write the same file; the store reads every part as one.

What it does not do: load a teacher during training (`TargetStore` only reads vectors), or normalise vectors.
"""

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from genvec import formats
from genvec.config import TeacherConfig
from genvec.data.collate import check_texts
from genvec.data.dataset import ResponseRecord, read_responses
from genvec.device import torch_dtype_name
from genvec.errors import InputError, check_positive_int
from genvec.files import append_synced, exclusive_lock, write_text_atomic
from genvec.teacher import PinnedTeacher, Teacher, load_teacher, pin_teacher

logger = logging.getLogger(__name__)

FORMAT_NAME = "genvec-targets"
FORMAT_VERSION = 1
STORE_FILE = "store.json"
KEY_BYTES = 16
# The storage dtypes, named as everywhere (`device.DTYPES`), little-endian; numpy has no bf16.
STORAGE_DTYPES = {name: np.dtype(torch_dtype_name(name)).newbyteorder("<") for name in ("fp32", "fp16")}


@dataclass(frozen=True)
class TargetSummary:
    """What one `compute_targets` call did."""

    store: Path
    teacher: str
    responses: int
    unique: int
    shard_unique: int
    already_stored: int
    embedded: int
    seconds: float

    @property
    def responses_per_s(self) -> float:
        return self.embedded / self.seconds if self.seconds > 0 else 0.0


def target_key(teacher: str, text: str) -> bytes:
    """The 16-byte cache key of `text` embedded by the teacher named `teacher`."""
    return hashlib.sha256(teacher.encode("utf-8") + b"\x00" + text.encode("utf-8")).digest()[:KEY_BYTES]


class TargetStore:
    """Read access to a target store: teacher embeddings by response text.

    Attributes:
        path: the store directory.
        teacher_name, dim, pooling: the teacher that computed the vectors.
        dtype: "fp32" or "fp16", how the vectors are stored (lookups return float32).

    Example:
        >>> store = TargetStore.open("targets")
        >>> store.lookup(["Polar bears live on Arctic sea ice."]).shape
        (1, 384)
    """

    def __init__(self, path: Path, header: dict, parts: list[tuple[np.ndarray, np.ndarray]]) -> None:
        self.path = path
        self.teacher_name = str(header["teacher"]["name"])
        self.dim = int(header["teacher"]["dim"])
        self.pooling = str(header["teacher"]["pooling"])
        self.dtype = str(header["dtype"])
        self._parts = [vectors for _, vectors in parts]
        keys = [part_keys for part_keys, _ in parts]
        self._keys = np.concatenate(keys) if keys else np.zeros((0, KEY_BYTES), np.uint8)  # (M, 16)
        # Part p holds entries _starts[p] .. _starts[p + 1] - 1 of the concatenation.
        self._starts = np.cumsum([0, *(len(k) for k in keys)])
        # Sorted first 8 key bytes for binary search; a hit is confirmed on all 16 bytes.
        heads = self._keys[:, :8].copy().view("<u8").ravel()
        self._order = np.argsort(heads, kind="stable")
        self._sorted_heads = heads[self._order]

    @classmethod
    def open(cls, path: str | Path) -> "TargetStore":
        """Open the store at `path` for reading (vectors are memory-mapped).

        Raises:
            InputError: no store there, or its header is not a genvec target store.
        """
        path = Path(path)
        header = _read_header(path)
        if header is None:
            raise InputError(f"no target store at {str(path)!r} (no {STORE_FILE}); run `genvec compute-targets` first.")
        row_bytes = int(header["teacher"]["dim"]) * STORAGE_DTYPES[header["dtype"]].itemsize
        parts = []
        for keys_file in sorted(path.glob("part-*.keys")):
            _check_part_layout(keys_file, header)
            count = _complete_rows(keys_file, keys_file.with_suffix(".vectors"), row_bytes)
            if count:
                parts.append(_map_part(keys_file, count, header))
        store = cls(path, header, parts)
        logger.debug("opened target store %s: %d vectors of teacher %s", path, len(store), store.teacher_name)
        return store

    def __len__(self) -> int:
        return len(self._keys)

    def contains(self, texts: Sequence[str]) -> list[bool]:
        """Whether each text has a stored teacher embedding."""
        return (self._find(texts) >= 0).tolist()

    def lookup(self, texts: Sequence[str]) -> np.ndarray:
        """The teacher embeddings of `texts`, (N, D) float32, in order.

        Raises:
            InputError: some texts have no stored embedding (the message counts them and shows one).
        """
        texts = check_texts(texts, "texts")
        found = self._find(texts)
        missing = np.flatnonzero(found < 0)
        if len(missing):
            raise InputError(
                f"{len(missing)} of {len(texts)} texts have no teacher embedding in the target store "
                f"{str(self.path)!r} (teacher {self.teacher_name!r}), e.g. {texts[missing[0]]!r:.80}. Run "
                "`genvec compute-targets` over these responses with the same teacher."
            )
        vectors = np.empty((len(texts), self.dim), dtype=np.float32)
        parts = np.searchsorted(self._starts, found, side="right") - 1
        rows = found - self._starts[parts]
        for index, part in enumerate(self._parts):
            selected = parts == index
            if selected.any():
                vectors[selected] = part[rows[selected]]
        return vectors

    def _find(self, texts: Sequence[str]) -> np.ndarray:
        """Index into the concatenated parts of each text's entry, or -1."""
        if isinstance(texts, str):
            raise InputError("pass a list of texts, not a single string.")
        if not len(texts) or not len(self._keys):
            return np.full(len(texts), -1, dtype=np.int64)
        wanted = np.frombuffer(b"".join(target_key(self.teacher_name, text) for text in texts), np.uint8)
        wanted = wanted.reshape(-1, KEY_BYTES)  # (N, 16)
        heads = wanted[:, :8].copy().view("<u8").ravel()
        slots = np.searchsorted(self._sorted_heads, heads).clip(max=len(self._sorted_heads) - 1)
        candidates = self._order[slots]
        hit = (self._keys[candidates] == wanted).all(1)
        found = np.where(hit, candidates, -1)
        for index in np.flatnonzero(~hit & (self._sorted_heads[slots] == heads)):  # rare: equal 8-byte heads
            slot = slots[index]
            while slot < len(self._sorted_heads) and self._sorted_heads[slot] == heads[index]:
                if (self._keys[self._order[slot]] == wanted[index]).all():
                    found[index] = self._order[slot]
                    break
                slot += 1
        return found


def compute_targets(
    responses: str | Path | Sequence[ResponseRecord] | Sequence[str],
    teacher: Teacher | TeacherConfig,
    store_path: str | Path,
    *,
    batch_size: int = 64,
    storage_dtype: Literal["fp32", "fp16"] = "fp32",
    num_shards: int = 1,
    shard_id: int = 0,
    show_progress: bool | None = None,
) -> TargetSummary:
    """Embed every distinct response not yet in the store with the teacher, and append the vectors to the store.

    Args:
        responses: a responses path (anything `read_responses` takes), response records, or response texts.
        teacher: a loaded `Teacher`, or a `TeacherConfig` (loaded only if something is left to embed).
        store_path: the store directory (created if needed).
        batch_size: responses per teacher call and per append (the resume granularity).
        storage_dtype: "fp32" or "fp16" for a new store; an existing store keeps its own and must match.
        num_shards, shard_id: this process embeds the unique responses at positions shard_id, shard_id +
            num_shards, ... into its own part of the store.
        show_progress: progress bar; None shows one from `formats.PROGRESS_MIN_BATCHES` batches on.

    Returns:
        A `TargetSummary`.

    Raises:
        InputError: no responses, a bad shard, or a store made by another teacher (name, dim or pooling) or with
            another dtype.

    Example:
        >>> compute_targets("responses.jsonl", TeacherConfig(name="sentence-transformers/all-MiniLM-L6-v2"), "targets")
    """
    check_positive_int(batch_size, "batch_size")
    if storage_dtype not in STORAGE_DTYPES:
        raise InputError(f"storage_dtype must be one of {', '.join(map(repr, STORAGE_DTYPES))}, got {storage_dtype!r}.")
    check_positive_int(num_shards, "num_shards")
    if isinstance(shard_id, bool) or not isinstance(shard_id, int) or not 0 <= shard_id < num_shards:
        raise InputError(f"shard_id must be in 0..{num_shards - 1} for num_shards={num_shards}, got {shard_id!r}.")
    texts = _response_texts(responses)
    unique = list(dict.fromkeys(texts))
    if isinstance(teacher, str):
        raise InputError(f"teacher must be a TeacherConfig (or a Teacher), got the string {teacher!r}; pass "
                         f"TeacherConfig(name={teacher!r}).")
    if isinstance(teacher, TeacherConfig):
        teacher = pin_teacher(teacher)  # resolved once: the teacher loaded below is the one named here
    name = teacher.name
    store_path = Path(store_path)
    part = "main" if num_shards == 1 else formats.shard_name(shard_id, num_shards)
    mine = unique[shard_id::num_shards]
    start = time.perf_counter()
    # Shards write parts of their own; two runs of the same part would interleave rows and keys.
    with exclusive_lock(store_path / f".part-{part}.lock", f"the target store {store_path} (part {part})"):
        header = _read_header(store_path)
        if header is not None:
            _check_header(store_path, header, name, None, storage_dtype)
        present = TargetStore.open(store_path).contains(mine) if header is not None else [False] * len(mine)
        # Longest first: batches of similar lengths pad less, and content keys make the store's row order irrelevant.
        todo = sorted((text for text, done in zip(mine, present) if not done), key=len, reverse=True)
        if todo:
            if isinstance(teacher, PinnedTeacher):
                teacher = load_teacher(teacher)
            header = _write_header(store_path, header, teacher, storage_dtype)
            show = formats.shows_progress(show_progress, len(todo), batch_size)
            _append_vectors(store_path / f"part-{part}", teacher, todo, header, batch_size, show)
    summary = TargetSummary(
        store=store_path, teacher=name, responses=len(texts), unique=len(unique), shard_unique=len(mine),
        already_stored=len(mine) - len(todo), embedded=len(todo), seconds=time.perf_counter() - start,
    )
    logger.info("target store %s: embedded %d responses (%d already stored) in %.1f s", store_path, summary.embedded,
                summary.already_stored, summary.seconds)
    return summary


# ---------------------------------------------------------------------------------------------- writing


def _append_vectors(stem: Path, teacher: Teacher, texts: list[str], header: dict, batch_size: int, show: bool) -> None:
    """Embed `texts` batch by batch; append vectors then keys, each forced to disk (keys mark complete rows)."""
    dtype = STORAGE_DTYPES[header["dtype"]]
    keys_file, vectors_file = stem.with_suffix(".keys"), stem.with_suffix(".vectors")
    if not keys_file.exists():  # a new part records the layout its rows are written in
        write_text_atomic(stem.with_suffix(".json"), json.dumps(_part_layout(header)) + "\n")
    _check_part_layout(keys_file, header)
    _repair(keys_file, vectors_file, teacher.dim * dtype.itemsize)
    with open(vectors_file, "ab") as vectors_out, open(keys_file, "ab") as keys_out, tqdm(
        total=len(texts), desc="targets", unit="response", disable=not show, dynamic_ncols=True
    ) as bar:
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            vectors = _check_vectors(teacher.embed(batch), len(batch), teacher)  # (b, D)
            append_synced(vectors_out, vectors.astype(dtype).tobytes())
            append_synced(keys_out, b"".join(target_key(teacher.name, text) for text in batch))
            bar.update(len(batch))


def _part_layout(header: dict) -> dict[str, object]:
    return {"dim": int(header["teacher"]["dim"]), "dtype": header["dtype"]}


def _check_part_layout(keys_file: Path, header: dict) -> None:
    """A part's rows are read with the layout they were written in: store.json must agree with the part's record
    (parts written before these records existed are not checked)."""
    record_file = keys_file.with_suffix(".json")
    if not record_file.is_file():
        return
    try:
        recorded = json.loads(record_file.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputError(f"{record_file}: not valid JSON ({err}); the store is damaged.") from err
    if recorded != _part_layout(header):
        raise InputError(
            f"the target store {str(keys_file.parent)!r} is damaged: {STORE_FILE} says dim {header['teacher']['dim']} "
            f"and dtype {header['dtype']!r}, but {keys_file.stem} was written with {recorded}; restore {STORE_FILE} or "
            "compute the store again."
        )


def _repair(keys_file: Path, vectors_file: Path, row_bytes: int) -> None:
    """Cut both files of a part to the rows complete in both (an interrupted append leaves a tail)."""
    count = _complete_rows(keys_file, vectors_file, row_bytes)
    for file, size in ((keys_file, count * KEY_BYTES), (vectors_file, count * row_bytes)):
        if file.exists() and file.stat().st_size != size:
            logger.info("cutting %s to %d complete rows", file, count)
            os.truncate(file, size)


def _complete_rows(keys_file: Path, vectors_file: Path, row_bytes: int) -> int:
    if not keys_file.exists() or not vectors_file.exists():
        return 0
    return min(keys_file.stat().st_size // KEY_BYTES, vectors_file.stat().st_size // row_bytes)


def _check_vectors(vectors: np.ndarray, count: int, teacher: Teacher) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.shape != (count, teacher.dim):
        raise InputError(f"teacher {teacher.name!r} returned shape {vectors.shape} for {count} texts; expected "
                         f"({count}, {teacher.dim}).")
    if not np.isfinite(vectors).all():
        raise InputError(f"teacher {teacher.name!r} returned non-finite values (NaN or inf); check its dtype.")
    return vectors


# ---------------------------------------------------------------------------------------------- header


def _read_header(path: Path) -> dict | None:
    file = path / STORE_FILE
    if not file.is_file():
        return None
    header = formats.read_document(file, FORMAT_NAME, FORMAT_VERSION, InputError,
                                   "the store is damaged or foreign; choose another directory")
    teacher = header.get("teacher")
    if (header.get("dtype") not in STORAGE_DTYPES or not isinstance(teacher, dict)
            or not isinstance(teacher.get("dim"), int) or isinstance(teacher.get("dim"), bool) or teacher["dim"] < 1
            or not isinstance(teacher.get("name"), str)):
        raise InputError(f"{file} is not a complete genvec target store header; choose another directory.")
    return header


def _write_header(path: Path, header: dict | None, teacher: Teacher, storage_dtype: str) -> dict:
    if header is not None:
        _check_header(path, header, teacher.name, teacher, storage_dtype)
        return header
    header = {
        **formats.header(FORMAT_NAME, FORMAT_VERSION),
        "teacher": {"name": teacher.name, "dim": int(teacher.dim), "pooling": teacher.pooling},
        "dtype": storage_dtype,
        "key": "sha256(teacher name + NUL + response text)[:16]",
    }
    # Shards may race to create the header; they write identical content, and the rename is atomic.
    write_text_atomic(path / STORE_FILE, json.dumps(header, indent=2) + "\n")
    return header


def _check_header(path: Path, header: dict, name: str, teacher: Teacher | None, storage_dtype: str) -> None:
    stored = header["teacher"]
    differences = []
    if stored["name"] != name:
        differences.append(f"teacher {stored['name']!r}, not {name!r}")
    if teacher is not None and (stored["dim"], stored["pooling"]) != (teacher.dim, teacher.pooling):
        differences.append(f"dim {stored['dim']} and pooling {stored['pooling']!r}, not {teacher.dim} and "
                           f"{teacher.pooling!r}")
    if header["dtype"] != storage_dtype:
        differences.append(f"dtype {header['dtype']!r}, not {storage_dtype!r}")
    if differences:
        raise InputError(f"the target store {str(path)!r} holds {'; '.join(differences)}; use another directory for "
                         "another teacher or dtype.")


def _map_part(keys_file: Path, count: int, header: dict) -> tuple[np.ndarray, np.ndarray]:
    keys = np.fromfile(keys_file, dtype=np.uint8, count=count * KEY_BYTES).reshape(count, KEY_BYTES)
    dtype = STORAGE_DTYPES[header["dtype"]]
    vectors = np.memmap(keys_file.with_suffix(".vectors"), dtype=dtype, mode="r",
                        shape=(count, int(header["teacher"]["dim"])))
    return keys, vectors


def _response_texts(responses) -> list[str]:
    if isinstance(responses, (str, Path)):
        responses = read_responses(responses)
    if isinstance(responses, str) or not isinstance(responses, Sequence):
        raise InputError(f"responses must be a path, response records or texts, got {type(responses).__name__}.")
    texts = [item.response if isinstance(item, ResponseRecord) else item for item in responses]
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"responses[{index}] is {type(text).__name__}; expected a ResponseRecord or a string.")
    if not texts:
        raise InputError("no responses to embed; generate them first with `genvec generate-responses`.")
    return texts

