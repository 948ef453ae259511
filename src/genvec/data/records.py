"""Records: the one reader of the files and datasets genvec takes in (queries, corpora, benchmarks, texts).

`open_records(source)` opens JSON Lines or JSON (`.jsonl`, `.ndjson`, `.json`: one object per line, or one JSON
document holding an array of objects or a single object), CSV or TSV (`.csv`, `.tsv`, one header line), plain text
(`.txt`, one record per line, its text under `text_field`), Parquet (`.parquet`), or a Hugging Face dataset (a
directory written by `save_to_disk` or holding data files, or a hub id); `read_records(source, required=...)` reads
one, checking that every record holds the required fields. Each record is a dict with its place in the source:
`line N` (text, JSON Lines, CSV/TSV; 1-based), `item N` (a JSON document; 0-based) or `row N` (Parquet, datasets;
0-based). Every problem is an `InputError` naming the file (or dataset), that place, what was expected and the fix.

Files are UTF-8; a byte-order mark before the first line is dropped. In a text file a carriage return alone also
ends a line (old Mac files), and blank lines are records too (their text is empty), so a line's number is its record
id. In a JSON file a bare string is read like a text line: a record whose `text_field` holds it; a lone surrogate
(an escape such as `\\ud800` without its pair, which is no character) and nesting too deep to parse are errors
naming the line, so no reader passes them on to a tokenizer, pyarrow or a JSON writer. TSV has no quoting (a quote
is part of the text); CSV keeps its quoting rules; a CSV or TSV field over csv's limit (131,072 characters) is an
error naming the line.

What it does not do: say what the fields mean, skip or clean records (its callers do: `data/sources.py` skips empty
and duplicate queries, `bulk.py` refuses repeated ids), or download anything by itself (datasets go through
`datasets.load_dataset`, behind the `data` extra).
"""

import csv
import importlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from genvec.errors import InputError
from genvec.files import sha256_file

FORMATS = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".txt": "text",
           ".parquet": "parquet"}
SUPPORTED = ".jsonl, .ndjson, .json, .csv, .tsv, .txt, .parquet, or a Hugging Face dataset (hub id or directory)"
BATCH_ROWS = 4096  # rows per batch read from Parquet files and datasets
# A UTF-16 surrogate code point: json.loads joins an escaped pair into one character, so any left is a lone half.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Record:
    """One record: its fields, and where it is in its source."""

    unit: str  # "line" (text, JSON Lines, CSV/TSV), "item" (a JSON document) or "row" (Parquet, datasets)
    number: int  # 1-based for lines, 0-based for items and rows
    fields: dict[str, object]

    @property
    def where(self) -> str:
        """The record's place for messages: `line 3`, `item 0`, `row 7`."""
        return f"{self.unit} {self.number}"


class Records:
    """An opened source of records; `read` iterates them, from the start on every call.

    Attributes:
        name: what every message starts with: the file's path, or `dataset '<source>'`.
        format: "text", "json", "csv", "tsv", "parquet" or "dataset".
        columns: the fields the source declares before its first record (a header, a schema, a dataset's
            features, a text file's one field), or None where each record has its own (JSON, an empty table).
        columns_where: where those columns are declared, for messages: "the header (line 1)", "the schema", ...
    """

    format = ""
    columns: tuple[str, ...] | None = None
    columns_where = ""

    def __init__(self, name: str) -> None:
        self.name = name

    def read(
        self, required: Sequence[str] = (), *, columns: Sequence[str] | None = None, fix: str | None = None
    ) -> Iterator[Record]:
        """The records in source order, each holding every `required` field.

        Args:
            required: fields every record must hold. Declared columns are checked here, before any row is read;
                JSON records are checked one by one as they are read.
            columns: keep only these fields in each record (a Parquet file or a dataset then reads only these
                columns); None keeps every field.
            fix: how to name other fields, in the caller's words (its parameter names); appended to a missing
                field's message. The default asks for the required fields.

        Raises:
            InputError: a required field is missing, or the source is damaged (naming the line, item or row).
        """
        fix = fix or f"Each record needs {_names(required)}."
        if self.columns is None:
            records = self._checked(self._rows(None), required, fix)
        else:
            missing = [name for name in required if name not in self.columns]
            if missing:
                raise InputError(f"{self.name}: no column {missing[0]!r}; {self.columns_where} has "
                                 f"{_names(self.columns) or 'none'}. {fix}")
            records = self._rows(columns)
        return records if columns is None else _kept(records, columns)

    def first(self) -> Record | None:
        """The first record (None for an empty source), read without checks."""
        rows = self._rows(None)
        try:
            return next(rows, None)
        finally:
            rows.close()

    def describe(self) -> dict:
        """What was read, for manifests: a file's path, size and SHA-256, or a dataset's name and fingerprint."""
        raise NotImplementedError

    def _rows(self, columns: Sequence[str] | None) -> Iterator[Record]:
        """Every record; a source that can read fewer fields may read only `columns` (None: all)."""
        raise NotImplementedError

    def _checked(self, records: Iterator[Record], required: Sequence[str], fix: str) -> Iterator[Record]:
        for record in records:
            for name in required:
                if name not in record.fields:
                    raise InputError(f"{self.name}: {record.where} has no field {name!r}; its fields are "
                                     f"{_names(record.fields) or 'none'}. {fix}")
            yield record


def open_records(
    source: str | Path, *, split: str = "train", text_field: str = "text", format: str | None = None
) -> Records:
    """Open a file or dataset of records; nothing but a table's header (or a dataset) is read yet.

    Args:
        source: a `.jsonl`/`.ndjson`/`.json`, `.csv`, `.tsv`, `.txt` or `.parquet` file, or a Hugging Face dataset
            (hub id, or a local directory saved with `save_to_disk` or holding data files).
        split: the split of a Hugging Face dataset.
        text_field: the field a text file's line (or a bare JSON string) is read into.
        format: read the file as this format ("text", "json", "csv", "tsv", "parquet") whatever its name says;
            None decides by the file's suffix.

    Raises:
        InputError: the source does not exist, is of an unknown type, cannot be read or loaded, or the extra that
            reads it (`genvec[data]`: Parquet, datasets) is not installed.

    Example:
        >>> for record in open_records("corpus.jsonl").read(required=("id", "text")):
        ...     print(record.where, record.fields["text"])
    """
    path = Path(source)
    if format is not None and format not in _OPENERS:
        raise InputError(f"format must be one of {', '.join(map(repr, _OPENERS))} or None, got {format!r}.")
    if path.is_file():
        chosen = format or FORMATS.get(path.suffix.lower())
        if chosen is None:
            raise InputError(f"{path}: unknown file type {path.suffix or '(no extension)'!r}; use {SUPPORTED}.")
        return _OPENERS[chosen](path, text_field)
    if format is None and (path.is_dir() or _looks_like_hub_id(str(source))):
        return _Dataset(str(source), split)
    what = "is a directory" if path.is_dir() else "does not exist"
    wanted = f"a {format} file" if format else f"a file ({SUPPORTED})"
    raise InputError(f"source {str(source)!r} {what}; pass {wanted}.")


def read_records(
    source: str | Path, *, required: Sequence[str] = (), split: str = "train", text_field: str = "text",
    format: str | None = None
) -> Iterator[Record]:
    """The records of a file or dataset, each holding every `required` field (see `open_records`, `Records.read`).

    Example:
        >>> texts = [record.fields["text"] for record in read_records("queries.jsonl", required=("text",))]
    """
    yield from open_records(source, split=split, text_field=text_field, format=format).read(required)


# ---------------------------------------------------------------------------------------------- files


class _File(Records):
    def __init__(self, path: Path, text_field: str) -> None:
        super().__init__(str(path))
        self.path = path
        self.text_field = text_field

    def describe(self) -> dict:
        return {"path": str(self.path.resolve()), "bytes": self.path.stat().st_size, "sha256": sha256_file(self.path)}


class _TextFile(_File):
    format = "text"
    columns_where = "a text file (one record per line)"

    def __init__(self, path: Path, text_field: str) -> None:
        super().__init__(path, text_field)
        self.columns = (text_field,)

    def _rows(self, columns: Sequence[str] | None) -> Iterator[Record]:
        number = 0
        for _, raw in _raw_lines(self.path):
            for part in raw.rstrip(b"\r\n").split(b"\r"):  # a carriage return alone ends a line too (old Mac files)
                number += 1
                text = _decode(self.path, number, part)
                if "\x00" in text:
                    raise InputError(f"{self.path}: line {number} holds NUL bytes; expected plain text, one record "
                                     "per line.")
                yield Record("line", number, {self.text_field: text})


class _JsonFile(_File):
    format = "json"

    def __init__(self, path: Path, text_field: str) -> None:
        super().__init__(path, text_field)
        self._document: list | None = None
        self._parsed = False

    def _rows(self, columns: Sequence[str] | None) -> Iterator[Record]:
        document = self._whole() if self.path.suffix.lower() == ".json" else None
        if document is not None:  # one JSON document (an array of records, or a single record), however laid out
            escaped, items = document
            for index, value in enumerate(items):
                yield Record("item", index, self._fields(f"item {index}", value, escaped))
            return
        for number, line in _text_lines(self.path):
            if not line.strip():
                continue
            try:
                value = json.loads(line.rstrip("\r\n"))  # without its end, an error's column is on this line
            except json.JSONDecodeError as err:
                raise InputError(f"{self.path}: line {number} is not valid JSON ({err.msg} at column {err.colno}); "
                                 "expected one JSON object per line (JSON Lines).") from err
            except RecursionError as err:
                raise InputError(f"{self.path}: line {number} nests JSON arrays or objects too deeply to read; "
                                 "expected one JSON object of fields per line (JSON Lines).") from err
            # Only a \u escape can make a surrogate: the file was decoded as strict UTF-8.
            yield Record("line", number, self._fields(f"line {number}", value, "\\u" in line))

    def _whole(self) -> tuple[bool, list] | None:
        """(whether the text holds a \\u escape, the records) of a .json file that is one JSON value (kept for the
        next read), or None: JSON Lines."""
        if not self._parsed:
            text = "".join(line for _, line in _text_lines(self.path))
            try:
                whole = json.loads(text)
            except json.JSONDecodeError as err:
                if text.lstrip().startswith("["):
                    raise InputError(f"{self.path}: not valid JSON ({err.msg} at line {err.lineno}, column "
                                     f"{err.colno}); expected a JSON array of objects.") from err
                whole = None  # several documents, one per line, or broken: the JSON Lines reader names the line
            except RecursionError as err:
                raise InputError(f"{self.path}: nests JSON arrays or objects too deeply to read; expected a JSON "
                                 "array of objects of fields.") from err
            items = None if whole is None else whole if isinstance(whole, list) else [whole]
            self._document = None if items is None else ("\\u" in text, items)
            self._parsed = True
        return self._document

    def _fields(self, where: str, value: object, escaped: bool) -> dict:
        if isinstance(value, str):
            value = {self.text_field: value}
        if not isinstance(value, dict):
            raise InputError(f"{self.path}: {where} is a JSON {_json_type(value)}; expected an object of fields (or "
                             f"a string, read as the field {self.text_field!r}).")
        if escaped:
            for name, field in value.items():
                found = _lone_surrogate(name) or _lone_surrogate(field)
                if found:
                    raise InputError(
                        f"{self.path}: {where}: the field {name!r} holds a lone surrogate, U+{found:04X} (a "
                        "\\ud800-\\udfff escape without its pair), which is no character; give the escape its pair "
                        "(a high one, \\ud800-\\udbff, followed by a low one, \\udc00-\\udfff) or remove it.")
        return value


class _CsvFile(_File):
    format = "csv"
    delimiter = ","
    columns_where = "the header (line 1)"

    def __init__(self, path: Path, text_field: str) -> None:
        super().__init__(path, text_field)
        reader = self._reader()
        try:
            header = next(reader, None)
        except csv.Error as err:
            raise self._damaged(reader.line_num, err) from err
        self.columns = None if header is None else tuple(header)  # an empty file declares nothing and has no rows

    def _reader(self):
        # TSV has no quoting: a quote is part of the text and a row ends at its line end (CSV keeps its quoting rules).
        quoting = csv.QUOTE_NONE if self.delimiter == "\t" else csv.QUOTE_MINIMAL
        return csv.reader((line for _, line in _text_lines(self.path)), delimiter=self.delimiter, quoting=quoting)

    def _rows(self, columns: Sequence[str] | None) -> Iterator[Record]:
        if self.columns is None:
            return
        reader = self._reader()
        try:
            next(reader)  # the header
            for row in reader:
                if not row:
                    continue
                if len(row) != len(self.columns):
                    raise InputError(f"{self.path}: line {reader.line_num} has {len(row)} columns, the header has "
                                     f"{len(self.columns)}; expected {self._layout()}")
                yield Record("line", reader.line_num, dict(zip(self.columns, row)))
        except csv.Error as err:
            raise self._damaged(reader.line_num, err) from err

    def _damaged(self, line: int, err: csv.Error) -> InputError:
        if "field limit" in str(err):
            quote = "" if self.delimiter == "\t" else " If it should be short, a double quote before it never closes."
            return InputError(f"{self.path}: line {line} holds a field over {csv.field_size_limit():,} characters, "
                              "the most the csv reader takes; shorten it (a model reads at most its max_length "
                              f"tokens of a text anyway).{quote}")
        return InputError(f"{self.path}: line {line} is not valid {self.format.upper()} ({err}).")

    def _layout(self) -> str:
        if self.delimiter == "\t":
            return "tab-separated values with one header line."
        return ("comma-separated values with one header line. If an earlier line opens a double quote it never "
                "closes, every line up to here was read as one field: close the quote, or double the quote "
                "characters inside the text.")


class _TsvFile(_CsvFile):
    format = "tsv"
    delimiter = "\t"


class _ParquetFile(_File):
    format = "parquet"
    columns_where = "the schema"

    def __init__(self, path: Path, text_field: str) -> None:
        super().__init__(path, text_field)
        pyarrow_parquet = _import_optional("pyarrow.parquet", "Parquet files")
        import pyarrow

        try:
            self._file = pyarrow_parquet.ParquetFile(path)
        except (pyarrow.ArrowInvalid, OSError) as err:
            raise InputError(f"{path}: not a Parquet file ({err}); expected Apache Parquet, as the name says.") from err
        self.columns = tuple(self._file.schema_arrow.names)

    def _rows(self, columns: Sequence[str] | None) -> Iterator[Record]:
        selected = None if columns is None else [name for name in columns if name in self.columns]
        number = 0
        for batch in self._file.iter_batches(columns=selected, batch_size=BATCH_ROWS):
            for fields in batch.to_pylist():
                yield Record("row", number, fields)
                number += 1


_OPENERS = {"text": _TextFile, "json": _JsonFile, "csv": _CsvFile, "tsv": _TsvFile, "parquet": _ParquetFile}


def _raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, line with its ending) of a file, as bytes; a byte-order mark at its start is dropped."""
    try:
        with open(path, "rb") as file:
            for number, raw in enumerate(file, 1):
                yield number, raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror}); check the path and its permissions.") from err


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, raw in _raw_lines(path):
        yield number, _decode(path, number, raw)


def _decode(path: Path, number: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{path}: line {number} is not UTF-8 text ({err.reason} at byte {err.start}); expected a "
            f"{path.suffix or 'text'} file of UTF-8 text. Is it a binary file with the wrong extension?"
        ) from err


def _kept(records: Iterator[Record], columns: Sequence[str]) -> Iterator[Record]:
    for record in records:
        yield Record(record.unit, record.number, {name: record.fields[name] for name in columns
                                                  if name in record.fields})


def _lone_surrogate(value: object) -> int | None:
    """The code point of the first lone surrogate in the strings of a parsed JSON value (keys too), or None.

    Walks with a list, not recursion: a value may nest nearly as deep as the parser's own limit."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return ord(found.group())
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {list: "array", type(None): "null"}.get(type(value), type(value).__name__)


def _names(names) -> str:
    return ", ".join(map(repr, names))


# ---------------------------------------------------------------------------------------------- datasets


class _Dataset(Records):
    format = "dataset"

    def __init__(self, source: str, split: str) -> None:
        super().__init__(f"dataset {source!r}")
        self.source, self.split = source, split
        self.columns_where = f"split {split!r}"
        self._dataset, self._saved = _load_dataset(source, split)
        self.columns = tuple(self._dataset.column_names)

    def describe(self) -> dict:
        if self._saved:
            return {"dataset": str(Path(self.source).resolve()), "fingerprint": self._dataset._fingerprint}
        return {"dataset": self.source, "split": self.split, "fingerprint": self._dataset._fingerprint}

    def _rows(self, columns: Sequence[str] | None) -> Iterator[Record]:
        dataset = self._dataset
        if columns is not None:
            dataset = dataset.select_columns([name for name in columns if name in self.columns])
        number = 0
        for batch in dataset.iter(batch_size=BATCH_ROWS):
            names = list(batch)
            for values in zip(*(batch[name] for name in names)):
                yield Record("row", number, dict(zip(names, values)))
                number += 1


def _looks_like_hub_id(source: str) -> bool:
    """`name` or `org/name` not ending in a file extension we read: worth asking the Hugging Face hub (or its cache)."""
    parts = source.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and Path(source).suffix.lower() not in FORMATS and source[0] != "."


def _load_dataset(source: str, split: str):
    """(the split's dataset, whether it was a `save_to_disk` directory)."""
    datasets = _import_optional("datasets", "Hugging Face datasets")
    path = Path(source)
    try:
        if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(source)
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise InputError(f"dataset {source!r} has no split {split!r}; its splits are {_names(loaded)}.")
                loaded = loaded[split]
            return loaded, True
        return datasets.load_dataset(source, split=split), False
    except InputError:
        raise
    except Exception as err:  # datasets raises many unrelated types (hub, file, split and schema errors)
        raise InputError(
            f"could not load the dataset {source!r} (split {split!r}): {type(err).__name__}: {err}. Pass a local "
            f"file ({SUPPORTED}); hub datasets need internet access or a filled cache."
        ) from err


def _import_optional(module: str, what: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        message = f"reading {what} needs the optional `data` dependencies; run `pip install genvec[data]`."
        raise InputError(message) from err
