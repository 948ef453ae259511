"""`genvec encode --input CORPUS --output DIR`: shards, resume without duplicates or losses, two processes. The tests
that look at the files themselves write `.npy` shards (`--format npy`, the format before Parquet); the Parquet shards
(the default) have their own tests in test_bulk_parquet.py."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from genvec.bulk import MANIFEST, PARQUET_MANIFEST, read_shards
from genvec.cli import main
from genvec.errors import InputError


def write_corpus(path, rows: int = 23):
    path.write_text("".join(json.dumps({"_id": f"doc-{i}", "text": f"passage {i} about rivers and ice {i * 7}"}) + "\n"
                            for i in range(rows)))
    return [f"passage {i} about rivers and ice {i * 7}" for i in range(rows)]


@pytest.fixture
def checkpoint(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def command(checkpoint, corpus, output, *extra):
    return ["encode", "--model", str(checkpoint), "--device", "cpu", "--input", str(corpus), "--output", str(output),
            "--id-field", "_id", "--document", "--shard-size", "5", *extra]


def test_a_corpus_becomes_shards_that_resume_and_read_back(qwen3_model, checkpoint, tmp_path):
    texts = write_corpus(tmp_path / "corpus.jsonl")
    output = tmp_path / "shards"
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", output, "--format", "npy")) == 0
    ids, vectors = read_shards(output)
    assert ids == [f"doc-{i}" for i in range(23)]
    assert np.abs(vectors - qwen3_model.encode_document(texts)).max() < 1e-5
    assert sorted(p.name for p in output.glob("*.npy")) == [f"shard-{i:05d}.npy" for i in range(5)]
    # A run killed before shard 3 was complete (its ids written, its array not): the rerun writes only that one.
    stamps = {p.name: p.stat().st_mtime_ns for p in output.glob("*.npy")}
    (output / "shard-00003.npy").unlink()
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", output, "--format", "npy")) == 0
    again = {p.name: p.stat().st_mtime_ns for p in output.glob("*.npy")}
    assert {k for k in again if again[k] != stamps.get(k)} == {"shard-00003.npy"}
    assert read_shards(output)[0] == ids and np.abs(read_shards(output)[1] - vectors).max() == 0
    # Another setting into the same directory is refused, naming what differs.
    with pytest.raises(InputError, match=r"holds shards of another encoding \(instruction: recorded"):
        from genvec.bulk import encode_corpus, read_corpus

        encode_corpus(qwen3_model, read_corpus(tmp_path / "corpus.jsonl", id_field="_id"), output, shard_size=5,
                      shard_format="npy")
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith("shard-")) == [MANIFEST]  # the old files


def test_unfinished_and_bad_inputs_say_what_to_do(qwen3_model, checkpoint, tmp_path, capsys):
    write_corpus(tmp_path / "corpus.jsonl")
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", tmp_path / "out", "--format", "npy")) == 0
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    manifest["complete"] = False
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="has not finished; run the same genvec encode command again"):
        read_shards(tmp_path / "out")
    (tmp_path / "bad.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    assert main(command(checkpoint, tmp_path / "bad.jsonl", tmp_path / "o2")) == 2
    assert "the id 'a' appears more than once; ids must be unique (pass another id_field). line 1 and line 2" in (
        capsys.readouterr().err)
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "text": "x"}\n')
    assert main(command(checkpoint, tmp_path / "bad.jsonl", tmp_path / "o3")) == 2
    assert ("bad.jsonl: line 1 has no field '_id'; its fields are 'id', 'text'. Pass text_field and id_field"
            in capsys.readouterr().err)


def test_two_processes_share_the_shards_and_give_the_same_embeddings(qwen3_model, checkpoint, tmp_path):
    texts = write_corpus(tmp_path / "corpus.jsonl", rows=31)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    words = command(checkpoint, tmp_path / "corpus.jsonl", tmp_path / "two")
    completed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                                "--master_port", "29541", "-m", "genvec", *words], env=env, capture_output=True,
                               text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    ids, vectors = read_shards(tmp_path / "two")
    assert ids == [f"doc-{i}" for i in range(31)]  # every row once, in order
    assert np.abs(vectors - qwen3_model.encode_document(texts)).max() < 1e-5
    assert json.loads((tmp_path / "two" / PARQUET_MANIFEST).read_text())["shards"] == 7  # Parquet: the default
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "two").column("id").to_pylist() == ids  # the directory, read by pyarrow alone


def test_parquet_files_and_saved_datasets_are_corpora_too(qwen3_model, tmp_path):
    pytest.importorskip("pyarrow")
    datasets = pytest.importorskip("datasets")
    import pyarrow as pa
    import pyarrow.parquet as pq

    from genvec.bulk import encode_corpus, read_corpus

    rows = {"doc": ["a1", "a2", "a3"], "body": ["Polar bears hunt seals.", "Rivers meet the sea.", "Ice melts."]}
    pq.write_table(pa.table(rows), tmp_path / "corpus.parquet")
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "saved"))
    expected = qwen3_model.encode(rows["body"])
    for source in (tmp_path / "corpus.parquet", tmp_path / "saved"):
        corpus = read_corpus(source, text_field="body", id_field="doc")
        output = encode_corpus(qwen3_model, corpus, tmp_path / f"out-{source.name}", shard_size=2, show_progress=False)
        ids, vectors = read_shards(output)
        assert ids == rows["doc"] and np.abs(vectors - expected).max() < 1e-5
    with pytest.raises(InputError, match="no column 'text'"):
        read_corpus(tmp_path / "saved", id_field="doc")
    with pytest.raises(InputError, match="no split 'test'"):
        read_corpus(tmp_path / "saved", text_field="body", id_field="doc", split="test")


def test_every_setting_that_changes_a_vector_is_recorded_and_max_length_applies(qwen3_model, checkpoint, tmp_path):
    texts = [f"{i * 37} rivers, ice and the bears that walk on it in the north" for i in range(8)]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n"
                                              for i, t in enumerate(texts)))
    base = ["encode", "--model", str(checkpoint), "--device", "cpu", "--input", str(tmp_path / "c.jsonl"),
            "--output", str(tmp_path / "sh"), "--shard-size", "3", "--format", "npy"]
    assert main([*base, "--max-length", "12"]) == 0
    _, vectors = read_shards(tmp_path / "sh")
    assert np.abs(vectors - qwen3_model.encode(texts, max_length=12)).max() < 1e-5  # --max-length reached bulk mode
    assert np.abs(vectors - qwen3_model.encode(texts)).max() > 1e-3
    manifest = json.loads((tmp_path / "sh" / MANIFEST).read_text())
    assert (manifest["dtype"], manifest["max_length"], manifest["rows"]) == ("fp32", 12, 8)
    # A killed run resumed with another dtype or max_length is refused, naming it: no mixed shards.
    (tmp_path / "sh" / "shard-00002.npy").unlink()
    with pytest.raises(InputError, match=r"another encoding \(dtype: recorded 'fp32', now 'bf16'; model:"):
        main([*base, "--max-length", "12", "--dtype", "bf16", "--debug"])
    with pytest.raises(InputError, match=r"another encoding \(max_length: recorded 12, now 16\)"):
        main([*base, "--max-length", "16", "--debug"])
    with pytest.raises(InputError, match=rf"another encoding \(max_length: recorded 12, now "
                                         rf"{qwen3_model.config.model.max_length}\)"):
        main([*base, "--debug"])  # no --max-length: the model's own
    assert not (tmp_path / "sh" / "shard-00002.npy").exists()
    assert main([*base, "--max-length", "12"]) == 0
    assert np.abs(read_shards(tmp_path / "sh")[1] - vectors).max() == 0


def test_a_damaged_shard_is_named_by_read_shards_and_redone_by_a_rerun(checkpoint, tmp_path, capsys, caplog):
    write_corpus(tmp_path / "corpus.jsonl")
    output = tmp_path / "shards"
    argv = command(checkpoint, tmp_path / "corpus.jsonl", output, "--format", "npy")
    assert main(argv) == 0
    ids, vectors = read_shards(output)
    stamps = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    (output / "shard-00001.ids.json").unlink()  # outside damage to a complete directory, three kinds
    (output / "shard-00002.npy").write_bytes((output / "shard-00002.npy").read_bytes()[:200])
    (output / "shard-00003.ids.json").write_text(json.dumps(ids[15:19]))  # 4 ids for 5 rows
    with pytest.raises(InputError, match=r"shards: shard 1 is damaged \(FileNotFoundError.*shard-00001.ids.json.*\); "
                                         "run the same genvec encode command again"):
        read_shards(output)
    (output / "shard-00001.ids.json").write_text(json.dumps(ids[5:10]))
    with pytest.raises(InputError, match=r"shard 2 is damaged \(ValueError: .*\); run the same genvec encode"):
        read_shards(output)
    (output / "shard-00001.ids.json").unlink()
    caplog.clear()
    assert main(argv) == 0
    assert caplog.text.count("; encoding it again.") == 3
    assert ("shard 3 is damaged (4 ids and a float32 array of shape (5, 16); the manifest gives it 5 rows of 16 "
            "float32); encoding it again." in caplog.text)
    again = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    assert {name for name in again if again[name] != stamps.get(name)} == {
        MANIFEST, "shard-00001.ids.json", "shard-00001.npy", "shard-00002.ids.json", "shard-00002.npy",
        "shard-00003.ids.json", "shard-00003.npy"}
    assert read_shards(output)[0] == ids and np.abs(read_shards(output)[1] - vectors).max() == 0
    (output / MANIFEST).write_text((output / MANIFEST).read_text()[:100])
    assert main(argv) == 2
    assert "manifest.json' is not valid JSON" in capsys.readouterr().err


def test_outputs_and_inputs_that_mean_something_else_are_refused(checkpoint, tmp_path, capsys):
    write_corpus(tmp_path / "corpus.jsonl")
    model = ["--model", str(checkpoint), "--device", "cpu"]
    corpus = ["--input", str(tmp_path / "corpus.jsonl"), "--id-field", "_id"]
    cases = [
        ([*corpus, "--output", str(tmp_path / "vectors.csv")], "genvec encode writes no .csv files; use a .npy"),
        ([*corpus, "--output", str(tmp_path / "x.npy")], "is a .jsonl corpus, but with --output"),
        ([*corpus, "--output", str(tmp_path / "x.jsonl")], "each raw line would be embedded). Use --output DIR"),
        ([*corpus], "but with no --output (stdout) genvec encode reads --input as plain text"),
        (["hello", "--output", str(tmp_path / "dir")], "names a directory (bulk mode), which takes an --input"),
    ]
    for argv, message in cases:
        assert main(["encode", *model, *argv]) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "corpus.jsonl"]  # nothing written
    # A directory of any name that exists is bulk mode (older genvecs made such directories; they resume).
    (tmp_path / "old.v1").mkdir()
    assert main(["encode", *model, *corpus, "--output", str(tmp_path / "old.v1"), "--shard-size", "10"]) == 0
    assert len(read_shards(tmp_path / "old.v1")[0]) == 23


def test_ids_must_be_strings_or_numbers_and_unique_as_text(tmp_path):
    from genvec.bulk import read_corpus

    def corpus(*ids):
        (tmp_path / "c.jsonl").write_text("".join(json.dumps({"id": row_id, "text": f"text {i}"}) + "\n"
                                                  for i, row_id in enumerate(ids)))
        return read_corpus(tmp_path / "c.jsonl")

    assert corpus("a", 7, 2.5, -1).ids == ["a", "7", "2.5", "-1"]
    for bad, shown in ((None, "None (NoneType)"), ({"k": 1}, "{'k': 1} (dict)"), (True, "True (bool)"),
                       ([1], "[1] (list)")):
        with pytest.raises(InputError, match=rf"c.jsonl: line 2: 'id' is {re.escape(shown)}; an id must be a string "
                                             "or a finite number"):
            corpus("a", bad)
    (tmp_path / "c.jsonl").write_text('{"id": 1, "text": "x"}\n{"id": 1e999, "text": "y"}\n')  # inf
    with pytest.raises(InputError, match=r"c.jsonl: line 2"):
        read_corpus(tmp_path / "c.jsonl")
    with pytest.raises(InputError, match=r"the id '1' appears more than once; ids must be unique \(pass another "
                                         r"id_field\). line 2 and line 3 both hold it \(ids are stored as text"):
        corpus("a", 1, "1")


def test_bad_bulk_inputs_name_the_file_and_the_row(qwen3_model, checkpoint, tmp_path, capsys):
    from genvec.bulk import Corpus, encode_corpus

    model = ["encode", "--model", str(checkpoint), "--device", "cpu", "--output", str(tmp_path / "out")]
    (tmp_path / "latin1.jsonl").write_bytes(b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "caf\xe9"}\n')
    (tmp_path / "surrogate.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b", "text": "bad \\ud800"}\n')
    (tmp_path / "deep.jsonl").write_text('{"id": "a", "text": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (tmp_path / "empty-dir").mkdir()
    cases = [("latin1.jsonl", "latin1.jsonl: line 2 is not UTF-8 text", "UTF-8"),
             ("surrogate.jsonl", "surrogate.jsonl: line 2: ", "surrogate"),
             ("deep.jsonl", "deep.jsonl: line 1 ", "nest")]
    if importlib.util.find_spec("datasets") is not None:
        cases.append(("empty-dir", "could not load the dataset", "empty-dir"))
    for name, where, what in cases:
        assert main([*model, "--input", str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err
        assert where in err and what in err and "Traceback" not in err and "RecursionError" not in err, (name, err)
    # A text the front door refuses inside a shard is named by its row in the corpus and its id, not its place in
    # the shard.
    corpus = Corpus([f"d{i}" for i in range(5)], ["a", "b", "c", "bad \ud800", "e"], {"path": "in memory"})
    with pytest.raises(InputError, match=r"texts\[1\] .* \(in shard 1: row 3 of the corpus, id 'd3'\)") as raised:
        encode_corpus(qwen3_model, corpus, tmp_path / "mem", shard_size=2, show_progress=False)
    assert raised.value.index == 3


def test_a_second_encoding_into_a_directory_being_written_is_refused_before_it_writes(qwen3_model, tmp_path):
    """Two jobs into one new --output could both pass the manifest check and overwrite each other's shards (both
    reporting success): the first holds a lock on the directory while it writes."""
    from genvec.bulk import encode_corpus, read_corpus
    from genvec.errors import BusyError
    from genvec.files import exclusive_lock, lock_file_for

    write_corpus(tmp_path / "corpus.jsonl")
    output = tmp_path / "shards"
    corpus = read_corpus(tmp_path / "corpus.jsonl", id_field="_id")
    with exclusive_lock(lock_file_for(output), "the other job's shards"), \
            pytest.raises(BusyError, match="is being written by process"):
        encode_corpus(qwen3_model, corpus, output, shard_size=5, show_progress=False)
    assert not output.exists() or not any(output.iterdir())  # nothing written by the refused one
    encode_corpus(qwen3_model, corpus, output, shard_size=5, show_progress=False)  # once the lock is free
    assert read_shards(output)[0] == [f"doc-{i}" for i in range(23)]
