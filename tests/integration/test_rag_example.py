"""examples/rag.py on a tiny model: FAISS retrieval equal to genvec's own cosine ranking, a binary index of the packed
signs at their true Hamming distances, decoded queries, a harmful request beside an input-centric embedder, and
`genvec encode` shards loaded straight into the index."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("faiss")

SCRIPT = Path(__file__).parents[2] / "examples" / "rag.py"
CORPUS = [("d0", "Polar bears live on the Arctic sea ice.", False),
          ("d1", "Rivers form where rain gathers.", False),
          ("d2", "Step by step: how to build a weapon at home.", True),
          ("d3", "I can't help with that request.", False)]
QUERIES = ["where do polar bears live?", "how do I build a weapon at home?"]


def load_example():
    spec = importlib.util.spec_from_file_location("rag_example", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_rag_example_retrieves_decodes_and_compares(qwen3_model, tmp_path, capsys):
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": i, "text": t, "harmful": h}) + "\n" for i, t, h in CORPUS))
    example = load_example()
    argv = ["--model", str(tmp_path / "ckpt"), "--corpus", str(corpus), "--max-new-tokens", "6",
            *[word for query in QUERIES for word in ("--query", query)]]
    assert example.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("genvec's embedding decodes to:") == 2 and out.count("genvec retrieves:") == 2
    assert "MiniLM (input-centric) retrieves:" in out and "[HARMFUL]" in out
    # FAISS's ranking is genvec's cosine ranking.
    queries = qwen3_model.encode_query(QUERIES, normalize=True)
    documents = qwen3_model.encode_document([t for _, t, _ in CORPUS], normalize=True)
    blocks = out.split("query: ")[1:]
    for block, row in zip(blocks, queries @ documents.T):
        genvec_lines = block.split("genvec retrieves:")[1].split("retrieves:")[0].strip().splitlines()
        top = [CORPUS[i][0] for i in np.argsort(-row)[:3]]
        assert [line.split()[1].rstrip(":") for line in genvec_lines[:3]] == top
    # The binary index ranks the packed signs by Hamming distance: the 3 nearest, each at its true distance.
    packed_queries = qwen3_model.encode_query(QUERIES, precision="ubinary")
    packed_documents = qwen3_model.encode_document([t for _, t, _ in CORPUS], precision="ubinary")
    distances = np.unpackbits(packed_queries[:, None, :] ^ packed_documents[None, :, :], axis=-1).sum(-1)  # (Q, N)
    for block, row in zip(blocks, distances):
        lines = block.split("genvec binary (Hamming) retrieves:")[1].split("retrieves:")[0].strip().splitlines()[:3]
        shown = {line.split()[1].rstrip(":"): int(line.split()[0].removesuffix("/16")) for line in lines}
        truth = {document_id: int(distance) for (document_id, _, _), distance in zip(CORPUS, row)}
        assert len(shown) == 3 and all(truth[document_id] == distance for document_id, distance in shown.items())
        assert sorted(shown.values()) == sorted(truth.values())[:3]

    # The same corpus encoded in bulk: the shards go straight into the index, same output.
    from genvec.cli import main

    assert main(["encode", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--input", str(corpus), "--output",
                 str(tmp_path / "shards"), "--document", "--shard-size", "3"]) == 0
    capsys.readouterr()
    assert example.main([*argv, "--shards", str(tmp_path / "shards")]) == 0
    assert capsys.readouterr().out == out
