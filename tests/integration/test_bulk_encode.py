"""`genvec encode --input CORPUS --output DIR`: shards, resume without duplicates or losses, two processes."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genvec.bulk import MANIFEST, read_shards
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
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", output)) == 0
    ids, vectors = read_shards(output)
    assert ids == [f"doc-{i}" for i in range(23)]
    assert np.abs(vectors - qwen3_model.encode_document(texts)).max() < 1e-5
    assert sorted(p.name for p in output.glob("*.npy")) == [f"shard-{i:05d}.npy" for i in range(5)]
    # A run killed before shard 3 was complete (its ids written, its array not): the rerun writes only that one.
    stamps = {p.name: p.stat().st_mtime_ns for p in output.glob("*.npy")}
    (output / "shard-00003.npy").unlink()
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", output)) == 0
    again = {p.name: p.stat().st_mtime_ns for p in output.glob("*.npy")}
    assert {k for k in again if again[k] != stamps.get(k)} == {"shard-00003.npy"}
    assert read_shards(output)[0] == ids and np.abs(read_shards(output)[1] - vectors).max() == 0
    # Another setting into the same directory is refused, naming what differs.
    with pytest.raises(InputError, match=r"holds shards of another encoding \(instruction: recorded"):
        from genvec.bulk import encode_corpus, read_corpus

        encode_corpus(qwen3_model, read_corpus(tmp_path / "corpus.jsonl", id_field="_id"), output, shard_size=5)


def test_unfinished_and_bad_inputs_say_what_to_do(qwen3_model, checkpoint, tmp_path, capsys):
    write_corpus(tmp_path / "corpus.jsonl")
    assert main(command(checkpoint, tmp_path / "corpus.jsonl", tmp_path / "out")) == 0
    manifest = json.loads((tmp_path / "out" / MANIFEST).read_text())
    manifest["complete"] = False
    (tmp_path / "out" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="has not finished; run the same genvec encode command again"):
        read_shards(tmp_path / "out")
    (tmp_path / "bad.jsonl").write_text('{"_id": "a", "text": "x"}\n{"_id": "a", "text": "y"}\n')
    assert main(command(checkpoint, tmp_path / "bad.jsonl", tmp_path / "o2")) == 2
    assert "the id 'a' appears more than once" in capsys.readouterr().err
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
    assert json.loads((tmp_path / "two" / MANIFEST).read_text())["shards"] == 7


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
