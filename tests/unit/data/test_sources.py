"""Query sources: every format, automatic fields, skipped rows counted, errors naming file, row and expectation."""

import json

import pytest

from genvec.data.sources import queries_from_texts, read_queries
from genvec.errors import InputError

QUERIES = ["Where do polar bears live?", "", "How do rivers form?", "Where do polar bears live?", "  What is ice?  "]
KEPT = ["Where do polar bears live?", "How do rivers form?", "What is ice?"]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_jsonl_finds_the_field_skips_and_counts(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"id": i, "question": q} for i, q in enumerate(QUERIES)])
    queries = read_queries(path)
    assert queries.queries == KEPT
    assert queries.ids == [0, 2, 4]  # source rows, counting the skipped ones
    summary = queries.summary
    assert (summary.rows, summary.queries, summary.empty, summary.duplicates) == (5, 3, 1, 1)


def test_named_field_null_values_and_limit(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"text": q, "prompt": "other"} for q in QUERIES] + [{"text": None}])
    assert read_queries(path, field="text").queries == KEPT
    assert read_queries(path, field="text").summary.empty == 2
    assert read_queries(path, field="text", limit=2).queries == KEPT[:2]


def test_csv_tsv_text_json_array(tmp_path):
    (tmp_path / "q.csv").write_text('id,query\n1,"Where do polar bears live?"\n2,"How do rivers form?"\n3,"a, b"\n')
    assert read_queries(tmp_path / "q.csv").queries == ["Where do polar bears live?", "How do rivers form?", "a, b"]
    (tmp_path / "q.tsv").write_text("prompt\tn\nWhere do polar bears live?\t1\n\t2\n")
    queries = read_queries(tmp_path / "q.tsv")
    assert queries.queries == ["Where do polar bears live?"] and queries.summary.empty == 1
    (tmp_path / "q.txt").write_text("\n".join(QUERIES) + "\n")
    assert read_queries(tmp_path / "q.txt").queries == KEPT
    (tmp_path / "q.json").write_text(json.dumps([{"prompt": q} for q in QUERIES]))
    assert read_queries(tmp_path / "q.json").queries == KEPT


def test_parquet_and_hugging_face_dataset(tmp_path):
    import datasets  # the dev extra installs it
    dataset = datasets.Dataset.from_dict({"question": QUERIES, "n": list(range(len(QUERIES)))})
    dataset.to_parquet(str(tmp_path / "q.parquet"))
    assert read_queries(tmp_path / "q.parquet").queries == KEPT
    with pytest.raises(InputError, match=r"q.parquet: no column 'text'; the schema has 'question', 'n'"):
        read_queries(tmp_path / "q.parquet", field="text")
    datasets.DatasetDict({"train": dataset, "test": dataset.select([2])}).save_to_disk(str(tmp_path / "saved"))
    assert read_queries(tmp_path / "saved").queries == KEPT
    assert read_queries(tmp_path / "saved", split="test").queries == ["How do rivers form?"]
    with pytest.raises(InputError, match="has no split 'dev'; its splits are 'train', 'test'"):
        read_queries(tmp_path / "saved", split="dev")
    with pytest.raises(InputError, match=r"dataset '.*saved': no column 'text'; split 'train' has 'question', 'n'"):
        read_queries(tmp_path / "saved", field="text")


def test_queries_from_texts():
    queries = queries_from_texts(QUERIES)
    assert queries.queries == KEPT and queries.ids == [0, 2, 4]
    with pytest.raises(InputError, match="item 1 holds a int"):
        queries_from_texts(["a", 3])


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_queries(tmp_path / "missing.jsonl")
    (tmp_path / "q.xlsx").write_text("x")
    with pytest.raises(InputError, match=r"q.xlsx: unknown file type '.xlsx'; use .jsonl"):
        read_queries(tmp_path / "q.xlsx")


def test_missing_field_is_named_with_the_fields_found(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"text": "a"}])
    with pytest.raises(InputError, match=r"q.jsonl: line 1 has no query field; found 'text', looked for 'query'"):
        read_queries(path)
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "a"}, {"query": "b"}])
    with pytest.raises(InputError, match=r"q.jsonl: line 2 has no field 'question'; its fields are 'query'"):
        read_queries(path)
    (tmp_path / "q.csv").write_text("text,n\na,1\n")
    with pytest.raises(InputError, match=r"q.csv: no column 'query'; the header \(line 1\) has 'text', 'n'"):
        read_queries(tmp_path / "q.csv", field="query")


def test_file_that_is_not_what_its_name_says(tmp_path):
    (tmp_path / "q.jsonl").write_text('{"query": "a"}\nquery,id\n')
    with pytest.raises(InputError, match=r"q.jsonl: line 2 is not valid JSON .*expected one JSON object per line"):
        read_queries(tmp_path / "q.jsonl")
    (tmp_path / "q.parquet").write_text("query\nWhere do polar bears live?\n")
    with pytest.raises(InputError, match=r"q.parquet: not a Parquet file .*expected Apache Parquet"):
        read_queries(tmp_path / "q.parquet")
    (tmp_path / "q.txt").write_bytes(b"fine\n\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(InputError, match=r"q.txt: line 2 is not UTF-8 text .*binary file with the wrong extension"):
        read_queries(tmp_path / "q.txt")
    (tmp_path / "q.csv").write_text("query,n\na,1\nb,2,3\n")
    with pytest.raises(InputError, match=r"q.csv: line 3 has 3 columns, the header has 2"):
        read_queries(tmp_path / "q.csv")
    write_jsonl(tmp_path / "q.jsonl", [{"query": "a"}, {"query": ["a", "list"]}])
    with pytest.raises(InputError, match=r"q.jsonl: line 2 holds a list .*expected the query as a string"):
        read_queries(tmp_path / "q.jsonl")
    with pytest.raises(InputError, match="text file holds one query per line and has no fields"):
        read_queries(tmp_path / "q.txt", field="query")


def test_tsv_keeps_quotes_and_lines_as_written(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text('query\tid\n"Hello" she said\t1\n"multi\t2\nline"\t3\n', encoding="utf-8")
    # TSV has no quoting: quotes stay, each line is one row (a CSV reader would drop the quotes and merge 2 lines).
    assert read_queries(path).queries == ['"Hello" she said', '"multi', 'line"']
    path.write_text('query\tid\n"Hello" she said\t1\nit\'s "quoted"\t2\n', encoding="utf-8")
    assert read_queries(path).queries == ['"Hello" she said', 'it\'s "quoted"']


def test_a_byte_order_mark_is_not_part_of_the_first_query(tmp_path):
    for name, text in (("q.txt", "first\nsecond\n"), ("q.csv", "query\nfirst\nsecond\n"),
                       ("q.jsonl", '{"query": "first"}\n{"query": "second"}\n')):
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
        assert read_queries(tmp_path / name).queries == ["first", "second"], name


def test_json_documents_however_laid_out_and_old_mac_line_endings(tmp_path):
    (tmp_path / "a.json").write_text('\n[\n  {"query": "one"},\n  {"query": "two"}\n]\n')
    assert read_queries(tmp_path / "a.json").queries == ["one", "two"]
    (tmp_path / "o.json").write_text('{\n  "query": "alone"\n}\n')
    assert read_queries(tmp_path / "o.json").queries == ["alone"]
    (tmp_path / "r.txt").write_bytes(b"one\rtwo\rthree")
    assert read_queries(tmp_path / "r.txt").queries == ["one", "two", "three"]


def test_an_unclosed_csv_quote_is_named_as_the_likely_cause(tmp_path):
    (tmp_path / "q.csv").write_text('query,id\n"unterminated quote,2\nnext,3\nlast,4\n')
    with pytest.raises(InputError, match="If an earlier line opens a double quote it never closes"):
        read_queries(tmp_path / "q.csv")
