"""`genvec encode --output DIR` writes Parquet shards by default: a directory that pyarrow, pandas, DuckDB and polars
read with no genvec code, resumed after a kill without losing or repeating a row, and never mixed with `.npy` shards.
"""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from test_bulk_encode import command, write_corpus

from genvec.bulk import MANIFEST, PARQUET_MANIFEST, encode_corpus, read_corpus, read_shards
from genvec.cli import main
from genvec.errors import InputError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

# A child that dies by SIGKILL halfway through writing its 4th Parquet file (a real kill, at a known place).
DIES_WRITING_SHARD_4 = """
import io, os, signal, sys
import pyarrow.parquet as pq
from genvec.cli import main

real, calls = pq.write_table, []

def write_then_die(table, where, **options):
    calls.append(table.num_rows)
    if len(calls) < 4:
        return real(table, where, **options)
    buffer = io.BytesIO()
    real(table, buffer, **options)
    where.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    where.flush()
    os.kill(os.getpid(), signal.SIGKILL)

pq.write_table = write_then_die
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def checkpoint(qwen3_model, tmp_path):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_parquet_shards_equal_encode_read_by_pyarrow_pandas_duckdb_and_polars(qwen3_model, checkpoint, tmp_path):
    texts = write_corpus(tmp_path / "corpus.jsonl")
    output = tmp_path / "shards"
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", output, "--with-text")) == 0
    ids, expected = [f"doc-{i}" for i in range(23)], qwen3_model.encode_document(texts)
    dim = expected.shape[1]
    assert sorted(p.name for p in output.iterdir()) == [PARQUET_MANIFEST] + [f"shard-{i:05d}.parquet"
                                                                             for i in range(5)]
    # pyarrow alone, the directory as one dataset: the schema, every row once and in order, the vectors.
    table = pq.read_table(output)
    assert table.schema == pa.schema([("id", pa.string()), ("text", pa.string()),
                                      ("embedding", pa.list_(pa.float32(), dim))])
    assert table.column("id").to_pylist() == ids and table.column("text").to_pylist() == texts
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(-1, dim)
    assert vectors.dtype == np.float32 and np.abs(vectors - expected).max() < 1e-5
    # pandas alone.
    import pandas as pd

    frame = pd.read_parquet(output)
    assert list(frame["id"]) == ids and np.abs(np.stack(frame["embedding"]) - expected).max() < 1e-5
    # genvec's own reader agrees.
    stored_ids, stored = read_shards(output)
    assert stored_ids == ids and np.abs(stored - vectors).max() == 0
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT id, embedding FROM read_parquet('{output}/*.parquet')").fetchall()
    assert sorted(row_id for row_id, _ in rows) == sorted(ids)
    by_id = {row_id: np.asarray(vector, dtype=np.float32) for row_id, vector in rows}
    assert max(np.abs(by_id[row_id] - expected[i]).max() for i, row_id in enumerate(ids)) < 1e-5
    polars = pytest.importorskip("polars")
    frame = polars.read_parquet(f"{output}/*.parquet")
    assert frame["id"].to_list() == ids and np.abs(frame["embedding"].to_numpy() - expected).max() < 1e-5


def test_a_killed_run_resumes_without_losing_or_repeating_a_row(qwen3_model, checkpoint, tmp_path):
    texts = write_corpus(tmp_path / "corpus.jsonl", rows=31)
    output = tmp_path / "shards"
    argv = command(checkpoint, tmp_path / "corpus.jsonl", output)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", DIES_WRITING_SHARD_4, *argv], env=env, capture_output=True,
                            text=True, timeout=300, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    shards = sorted(p.name for p in output.glob("shard-*.parquet"))
    assert shards == [f"shard-{i:05d}.parquet" for i in range(3)] and list(output.glob(".shard-00003.parquet.*.tmp"))
    assert not json.loads((output / PARQUET_MANIFEST).read_text())["complete"]
    with pytest.raises(InputError, match="the encoding has not finished; run the same genvec encode command again"):
        read_shards(output)
    # What a reader sees meanwhile: the whole shards only (the half-written file is hidden).
    assert pq.read_table(output).column("id").to_pylist() == [f"doc-{i}" for i in range(15)]
    stamps = {name: (output / name).stat().st_mtime_ns for name in shards}
    assert main(argv) == 0
    assert all((output / name).stat().st_mtime_ns == stamps[name] for name in shards)  # kept, not written again
    assert not list(output.glob(".*.tmp"))  # the killed run's half-written file is gone
    # Row by row, by pyarrow alone: every id once, in corpus order, with its own vector.
    table = pq.read_table(output)
    expected = qwen3_model.encode_document(texts)
    assert table.column_names == ["id", "embedding"]
    assert table.column("id").to_pylist() == [f"doc-{i}" for i in range(31)]
    for row, vector in enumerate(table.column("embedding").to_pylist()):
        assert np.abs(np.asarray(vector, dtype=np.float32) - expected[row]).max() < 1e-5, row


def test_a_damaged_parquet_shard_is_named_and_redone(checkpoint, tmp_path, caplog):
    write_corpus(tmp_path / "corpus.jsonl")
    output = tmp_path / "shards"
    argv = command(checkpoint, tmp_path / "corpus.jsonl", output)
    assert main(argv) == 0
    ids, vectors = read_shards(output)
    stamps = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    (output / "shard-00001.parquet").write_bytes((output / "shard-00001.parquet").read_bytes()[:300])  # cut
    with pytest.raises(InputError, match=r"shards: shard 1 is damaged \(ArrowInvalid: .*\); run the same genvec "
                                         "encode command again"):
        read_shards(output)
    pq.write_table(pa.table({"id": ids[10:15], "embedding": pa.array([[0.0]] * 5, pa.list_(pa.float32(), 1))}),
                   output / "shard-00002.parquet")  # the right rows, vectors of the wrong width
    caplog.clear()
    assert main(argv) == 0
    assert caplog.text.count("; encoding it again.") == 2
    assert (f"shard 2 is damaged (shard-00002.parquet holds 5 rows of id: string, embedding: fixed_size_list<element: "
            f"float>[1]; the manifest gives it 5 rows of id: string, embedding: fixed_size_list<item: float>"
            f"[{vectors.shape[1]}]); encoding it again." in caplog.text)
    again = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    assert {name for name in again if again[name] != stamps.get(name)} == {
        PARQUET_MANIFEST, "shard-00001.parquet", "shard-00002.parquet"}
    assert read_shards(output)[0] == ids and np.abs(read_shards(output)[1] - vectors).max() == 0


def test_a_manifest_of_one_format_refuses_a_resume_in_the_other(checkpoint, tmp_path, capsys):
    write_corpus(tmp_path / "corpus.jsonl")
    corpus = tmp_path / "corpus.jsonl"
    for written, other in (("npy", "parquet"), ("parquet", "npy")):
        output = tmp_path / f"shards-{written}"
        assert main(command(checkpoint, corpus, output, "--format", written)) == 0
        stamps = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
        assert main(command(checkpoint, corpus, output, "--format", other)) == 2
        assert (f"holds shards of another encoding (shard_format: recorded {written!r}, now {other!r}); it holds "
                f"{written} shards: pass --format {written} (shard_format={written!r}) to continue it, another "
                "--output, or remove it.") in capsys.readouterr().err
        assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == stamps  # nothing written
    # Asking for the text column on a resume that did not store it is another encoding too.
    assert main(command(checkpoint, corpus, tmp_path / "shards-parquet", "--with-text")) == 2
    assert "(with_text: recorded False, now True)" in capsys.readouterr().err
    assert main(command(checkpoint, corpus, tmp_path / "t", "--format", "npy", "--with-text")) == 2
    assert "but .npy shards hold vectors only; drop it, or write Parquet shards" in capsys.readouterr().err
    # A manifest of genvec before Parquet shards (no shard_format) holds .npy shards: they resume as such.
    output = tmp_path / "shards-npy"
    manifest = json.loads((output / MANIFEST).read_text())
    del manifest["shard_format"], manifest["with_text"]
    (output / MANIFEST).write_text(json.dumps(manifest))
    assert main(command(checkpoint, corpus, output)) == 2
    assert "shard_format: recorded 'npy', now 'parquet'" in capsys.readouterr().err
    assert main(command(checkpoint, corpus, output, "--format", "npy")) == 0
    assert len(read_shards(output)[0]) == 23


def test_without_pyarrow_parquet_is_refused_saying_how_and_npy_still_works(qwen3_model, tmp_path, monkeypatch):
    write_corpus(tmp_path / "corpus.jsonl")
    corpus = read_corpus(tmp_path / "corpus.jsonl", id_field="_id")
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # `import pyarrow` now fails as if it were not installed
    with pytest.raises(InputError, match=r"Parquet shards need pyarrow, which is not installed here .*; run `pip "
                                         r"install pyarrow` \(genvec depends on it\), or write .npy shards"):
        encode_corpus(qwen3_model, corpus, tmp_path / "parquet", shard_size=5, show_progress=False)
    assert not (tmp_path / "parquet").exists()
    output = encode_corpus(qwen3_model, corpus, tmp_path / "npy", shard_size=5, shard_format="npy",
                           show_progress=False)
    assert read_shards(output)[0] == corpus.ids
