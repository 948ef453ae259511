"""The one reader of records: every format, places named per line/item/row, required fields, damaged and empty files."""

import hashlib
import json
import sys

import pytest

from genvec.bulk import read_corpus
from genvec.data.records import open_records, read_records
from genvec.errors import InputError

ROWS = [{"id": "a", "text": "Polar bears hunt seals."}, {"id": "b", "text": "Rivers meet the sea."}]


def places_and_fields(source, **options):
    return [(record.where, record.fields) for record in read_records(source, **options)]


def test_json_lines_json_documents_csv_and_tsv_give_the_same_records(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps(ROWS[0]) + "\n\n" + json.dumps(ROWS[1]) + "\n")
    assert places_and_fields(tmp_path / "r.jsonl") == [("line 1", ROWS[0]), ("line 3", ROWS[1])]  # blank line 2
    (tmp_path / "r.ndjson").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    assert places_and_fields(tmp_path / "r.ndjson") == [("line 1", ROWS[0]), ("line 2", ROWS[1])]
    (tmp_path / "r.json").write_text(json.dumps(ROWS, indent=2))
    assert places_and_fields(tmp_path / "r.json") == [("item 0", ROWS[0]), ("item 1", ROWS[1])]
    (tmp_path / "one.json").write_text(json.dumps(ROWS[0], indent=2))
    assert places_and_fields(tmp_path / "one.json") == [("item 0", ROWS[0])]
    (tmp_path / "r.csv").write_text('id,text\na,"Polar bears hunt seals."\n\nb,Rivers meet the sea.\n')
    assert places_and_fields(tmp_path / "r.csv") == [("line 2", ROWS[0]), ("line 4", ROWS[1])]
    (tmp_path / "r.tsv").write_text('id\ttext\na\t"Quoted" stays\n')  # TSV has no quoting: quotes are text
    assert places_and_fields(tmp_path / "r.tsv") == [("line 2", {"id": "a", "text": '"Quoted" stays'})]


def test_text_files_put_every_line_under_the_named_field(tmp_path):
    (tmp_path / "t.txt").write_bytes(b"\xef\xbb\xbffirst\n\nsecond\r\nthird\rfourth")
    records = list(read_records(tmp_path / "t.txt", text_field="query"))
    # The byte-order mark is dropped; a blank line is a record; CR alone ends a line, so numbers stay unique.
    assert [(r.number, r.fields) for r in records] == [(1, {"query": "first"}), (2, {"query": ""}),
                                                        (3, {"query": "second"}), (4, {"query": "third"}),
                                                        (5, {"query": "fourth"})]
    opened = open_records(tmp_path / "t.txt")
    assert opened.format == "text" and opened.columns == ("text",)
    with pytest.raises(InputError, match=r"t.txt: no column 'id'; a text file \(one record per line\) has 'text'"):
        opened.read(("text", "id"))
    (tmp_path / "notes.log").write_text("a log line\n")  # any name, read as text when asked
    assert places_and_fields(tmp_path / "notes.log", format="text") == [("line 1", {"text": "a log line"})]


def test_a_bare_json_string_is_read_like_a_text_line(tmp_path):
    (tmp_path / "s.jsonl").write_text('"just a query"\n{"query": "an object"}\n')
    assert places_and_fields(tmp_path / "s.jsonl", text_field="query") == [
        ("line 1", {"query": "just a query"}), ("line 2", {"query": "an object"})]


def test_parquet_files_and_datasets_read_rows_and_only_the_columns_asked_for(tmp_path):
    pytest.importorskip("pyarrow")
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {"id": ["a", "b"], "text": [row["text"] for row in ROWS], "n": [1, 2]}
    pq.write_table(pa.table(columns), tmp_path / "r.parquet")
    opened = open_records(tmp_path / "r.parquet")
    assert (opened.format, opened.columns) == ("parquet", ("id", "text", "n"))
    assert [(r.where, r.fields) for r in opened.read(("text",), columns=("id", "text"))] == [
        ("row 0", ROWS[0]), ("row 1", ROWS[1])]
    assert next(opened.read()).fields == {"id": "a", "text": ROWS[0]["text"], "n": 1}
    dataset = datasets.Dataset.from_dict(columns)
    datasets.DatasetDict({"train": dataset, "test": dataset.select([1])}).save_to_disk(str(tmp_path / "saved"))
    assert places_and_fields(tmp_path / "saved", split="test") == [("row 0", {**ROWS[1], "n": 2})]
    saved = open_records(tmp_path / "saved")
    assert saved.name == f"dataset {str(tmp_path / 'saved')!r}" and saved.columns_where == "split 'train'"
    fingerprint = datasets.load_from_disk(str(tmp_path / "saved"))["train"]._fingerprint
    assert saved.describe() == {"dataset": str((tmp_path / "saved").resolve()), "fingerprint": fingerprint}
    with pytest.raises(InputError, match=r"saved': no column 'label'; split 'train' has 'id', 'text', 'n'. Pick"):
        saved.read(("label",), fix="Pick another.")
    with pytest.raises(InputError, match="has no split 'dev'; its splits are 'train', 'test'"):
        open_records(tmp_path / "saved", split="dev")


def test_a_missing_field_names_the_file_the_line_what_is_there_and_the_fix(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b", "body": "y"}\n')
    with pytest.raises(InputError, match=r"r.jsonl: line 2 has no field 'text'; its fields are 'id', 'body'. Each "
                                         r"record needs 'id', 'text'."):
        list(read_records(tmp_path / "r.jsonl", required=("id", "text")))
    (tmp_path / "r.csv").write_text("id,body\na,x\n")
    with pytest.raises(InputError, match=r"r.csv: no column 'text'; the header \(line 1\) has 'id', 'body'. Pass "
                                         r"text_field"):
        open_records(tmp_path / "r.csv").read(("id", "text"), fix="Pass text_field naming it.")


def test_damaged_files_name_the_line(tmp_path):
    (tmp_path / "r.jsonl").write_text('{"text": "a"}\n{"text": "b"\n')
    with pytest.raises(InputError, match=r"r.jsonl: line 2 is not valid JSON \(Expecting ',' delimiter at column 13\); "
                                         r"expected one JSON object per line"):
        list(read_records(tmp_path / "r.jsonl"))
    (tmp_path / "r.jsonl").write_text('{"text": "a"}\n[1, 2]\n')
    with pytest.raises(InputError, match=r"r.jsonl: line 2 is a JSON array; expected an object of fields"):
        list(read_records(tmp_path / "r.jsonl"))
    (tmp_path / "r.json").write_text('[{"text": "a"},\n {"text": }]')
    with pytest.raises(InputError, match=r"r.json: not valid JSON \(Expecting value at line 2, column 11\)"):
        list(read_records(tmp_path / "r.json"))
    (tmp_path / "r.csv").write_text("id,text\na,x\nb,y,z\n")
    with pytest.raises(InputError, match=r"r.csv: line 3 has 3 columns, the header has 2"):
        list(read_records(tmp_path / "r.csv"))
    (tmp_path / "r.txt").write_bytes(b"fine\nalso fine\n\xff\xfe broken\n")
    with pytest.raises(InputError, match=r"r.txt: line 3 is not UTF-8 text \(invalid start byte at byte 0\)"):
        list(read_records(tmp_path / "r.txt"))
    (tmp_path / "r.txt").write_bytes(b"fine\nnul\x00byte\n")
    with pytest.raises(InputError, match=r"r.txt: line 2 holds NUL bytes"):
        list(read_records(tmp_path / "r.txt"))
    (tmp_path / "r.tsv").write_bytes(b"id\ttext\na\t\xe9t\xe9\n")  # Latin-1, not UTF-8
    with pytest.raises(InputError, match=r"r.tsv: line 2 is not UTF-8 text"):
        list(read_records(tmp_path / "r.tsv"))
    (tmp_path / "r.parquet").write_text("id,text\n")
    pytest.importorskip("pyarrow")
    with pytest.raises(InputError, match=r"r.parquet: not a Parquet file .*expected Apache Parquet"):
        open_records(tmp_path / "r.parquet")


def test_empty_files_have_no_records(tmp_path):
    for name in ("e.jsonl", "e.json", "e.csv", "e.tsv", "e.txt"):
        (tmp_path / name).write_text("")
        assert list(read_records(tmp_path / name, required=("text",))) == [], name
        assert open_records(tmp_path / name).first() is None
    assert open_records(tmp_path / "e.csv").columns is None  # no header line: nothing declared


def test_sources_that_cannot_be_opened_say_what_to_pass(tmp_path, monkeypatch):
    with pytest.raises(InputError, match=r"source '.*missing.jsonl' does not exist; pass a file \(.jsonl, .ndjson"):
        open_records(tmp_path / "missing.jsonl")
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"r.xlsx: unknown file type '.xlsx'; use .jsonl, .ndjson, .json, .csv"):
        open_records(tmp_path / "r.xlsx")
    with pytest.raises(InputError, match=r"format must be one of 'text', 'json', 'csv', 'tsv', 'parquet' or None, "
                                         r"got 'xlsx'"):
        open_records(tmp_path / "r.xlsx", format="xlsx")
    with pytest.raises(InputError, match=r"source '.*' is a directory; pass a text file"):
        open_records(tmp_path, format="text")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if the `data` extra were not installed
    with pytest.raises(InputError, match=r"reading Hugging Face datasets needs the optional `data` dependencies; run "
                                         r"`pip install genvec\[data\]`"):
        open_records("some-org/some-dataset")


def test_a_file_is_described_by_its_path_size_and_hash(tmp_path):
    (tmp_path / "r.jsonl").write_text(json.dumps(ROWS[0]) + "\n")
    content = (tmp_path / "r.jsonl").read_bytes()
    assert open_records(tmp_path / "r.jsonl").describe() == {
        "path": str((tmp_path / "r.jsonl").resolve()), "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest()}


def test_read_corpus_takes_every_format_the_reader_does_and_speaks_of_its_parameters(tmp_path):
    (tmp_path / "c.csv").write_text("id,text\na,Polar bears hunt seals.\nb,Rivers meet the sea.\n")
    (tmp_path / "c.tsv").write_text("id\ttext\na\tPolar bears hunt seals.\nb\tRivers meet the sea.\n")
    (tmp_path / "c.json").write_text(json.dumps(ROWS))
    (tmp_path / "c.ndjson").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    for name in ("c.csv", "c.tsv", "c.json", "c.ndjson"):
        corpus = read_corpus(tmp_path / name)
        assert (corpus.ids, corpus.texts) == (["a", "b"], [row["text"] for row in ROWS]), name
        assert corpus.source["rows"] == 2 and corpus.source["path"] == str((tmp_path / name).resolve())
    (tmp_path / "c.txt").write_text("first\n\nsecond\n")
    corpus = read_corpus(tmp_path / "c.txt")
    assert (corpus.ids, corpus.texts) == (["1", "3"], ["first", "second"])  # ids are line numbers
    with pytest.raises(InputError, match=r"c.csv: no column '_id'; the header \(line 1\) has 'id', 'text'. Pass "
                                         r"text_field and id_field") as raised:
        read_corpus(tmp_path / "c.csv", id_field="_id")
    assert "--" not in str(raised.value)  # a library error names parameters, not CLI flags
    (tmp_path / "c.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    with pytest.raises(InputError, match=r"the id 'a' appears more than once; ids must be unique \(pass another "
                                         r"id_field\)"):
        read_corpus(tmp_path / "c.jsonl")
    (tmp_path / "c.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": " "}\n')
    with pytest.raises(InputError, match=r"c.jsonl: line 2: 'text' is ' '; every row needs a non-empty text"):
        read_corpus(tmp_path / "c.jsonl")
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(InputError, match=r"e.jsonl: no rows to encode"):
        read_corpus(tmp_path / "e.jsonl")


def test_json_nested_too_deeply_to_parse_names_the_line(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "r.jsonl").write_text('{"text": "a"}\n{"text": ' + deep + "}\n")
    with pytest.raises(InputError, match=r"r.jsonl: line 2 nests JSON arrays or objects too deeply to read; expected "
                                         r"one JSON object of fields per line"):
        list(read_records(tmp_path / "r.jsonl"))
    (tmp_path / "r.json").write_text(deep)
    with pytest.raises(InputError, match=r"r.json: nests JSON arrays or objects too deeply to read"):
        list(read_records(tmp_path / "r.json"))


def test_a_lone_surrogate_escape_names_the_line_and_the_field(tmp_path):
    # json.loads joins an escaped pair into one character; half of one is no character and no encoder takes it.
    (tmp_path / "r.jsonl").write_text('{"text": "a pair \\ud83d\\ude00 is fine"}\n{"id": "b", "text": "x\\udc00"}\n')
    with pytest.raises(InputError, match=r"r.jsonl: line 2: the field 'text' holds a lone surrogate, U\+DC00 .* give "
                                         r"the escape its pair .* or remove it"):
        list(read_records(tmp_path / "r.jsonl"))
    assert next(read_records(tmp_path / "r.jsonl")).fields["text"] == "a pair \U0001f600 is fine"
    (tmp_path / "r.jsonl").write_text('{"text": "x", "meta": {"tags": [["ok", "\\uD800"]]}}\n')  # nested, upper case
    with pytest.raises(InputError, match=r"line 1: the field 'meta' holds a lone surrogate, U\+D800"):
        list(read_records(tmp_path / "r.jsonl"))
    (tmp_path / "r.json").write_text('[{"text": "fine"}, "\\ud800 bare"]')
    with pytest.raises(InputError, match=r"r.json: item 1: the field 'text' holds a lone surrogate, U\+D800"):
        list(read_records(tmp_path / "r.json"))


def test_a_field_over_the_csv_limit_names_the_line_and_the_fix(tmp_path):
    (tmp_path / "r.tsv").write_text(f"id\ttext\na\tshort\nb\t{'x' * 200_000}\n")
    with pytest.raises(InputError, match=r"r.tsv: line 3 holds a field over 131,072 characters, the most the csv "
                                         r"reader takes; shorten it \(a model reads at most its max_length tokens"):
        list(read_records(tmp_path / "r.tsv"))
    (tmp_path / "r.csv").write_text(f"{'x' * 200_000},text\n")  # in the header, read when the file is opened
    with pytest.raises(InputError, match=r"r.csv: line 1 holds a field over 131,072 characters.* a double quote "
                                         r"before it never closes"):
        open_records(tmp_path / "r.csv")
