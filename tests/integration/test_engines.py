"""genvec in Daft (a local session), LanceDB and Chroma (both embedded, in a temporary directory), each the real
package from PyPI: every path's vectors equal `encode` (max abs diff < 1e-5), searches rank as genvec's cosine does,
and `genvec encode`'s Parquet shards read back with Daft and LanceDB alone."""

import daft
import lancedb
import numpy as np
import pyarrow.dataset
import pytest
import torch

from genvec.bulk import encode_corpus, read_corpus
from genvec.errors import InputError
from genvec.integrations.chroma import GenVecEmbeddingFunction as ChromaFunction
from genvec.integrations.daft import embedder
from genvec.integrations.lancedb import GenVecEmbeddingFunction as LanceFunction
from genvec.loading import load_model

QUERY = "where do polar bears live?"
DOCUMENTS = ["How do rivers form?", "a third, longer text about the arctic sea ice",
             "Polar bears live on the Arctic sea ice.", "Bread rises because yeast makes gas."]


@pytest.fixture(scope="module")
def model(served_model):
    return served_model  # conftest's seeded tiny Qwen3 model


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("engines") / "ckpt"
    model.save_pretrained(directory)
    return directory


def close(a, b) -> bool:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).max()) < 1e-5


def best_document(model, query_vector: np.ndarray) -> str:
    """The document genvec ranks first for a query vector, by cosine."""
    documents = model.encode_document(DOCUMENTS, normalize=True)
    return DOCUMENTS[int(np.argmax(documents @ (query_vector / np.linalg.norm(query_vector))))]


def test_daft_class_gives_a_fixed_size_float32_column_equal_to_encode(model, checkpoint):
    frame = daft.from_pydict({"text": DOCUMENTS})
    documents, queries = embedder(checkpoint), embedder(str(checkpoint), side="query", normalize=True, batch_size=3)
    answered = embedder(checkpoint, instruction="Answer the question:")
    frame = frame.with_columns({"document": documents(frame["text"]), "query": queries(frame["text"]),
                                "answered": answered(frame["text"])}).collect()
    width = model.embedding_dim
    assert frame.schema()["document"].dtype == daft.DataType.fixed_size_list(daft.DataType.float32(), width)
    columns = frame.to_pydict()
    assert close(columns["document"], model.encode_document(DOCUMENTS))
    assert close(columns["query"], model.encode_query(DOCUMENTS, normalize=True))
    assert close(columns["answered"], model.encode(DOCUMENTS, instruction="Answer the question:"))
    assert close(embedder(checkpoint, dimensions=width)(daft.Series.from_pylist(DOCUMENTS[:1])).to_pylist(),
                 model.encode_document(DOCUMENTS[:1]))  # called on a Series, the class runs here and now


def test_daft_embedder_refuses_what_its_workers_could_not_load(model, checkpoint):
    with pytest.raises(InputError, match="takes a checkpoint path, got a loaded GenVecModel.*save_pretrained"):
        embedder(model)
    with pytest.raises(InputError, match="side must be \"query\" or \"document\", got 'queries'"):
        embedder(checkpoint, side="queries")
    with pytest.raises(InputError, match="not a local genvec checkpoint.*pass dimensions=D"):
        embedder("McGill-NLP/LLM2Vec-Gen-Qwen3-06B")
    with pytest.raises(InputError, match="dimensions must be a positive integer, got 0"):
        embedder(checkpoint, dimensions=0)


def test_parquet_shards_of_genvec_encode_read_by_daft_and_lancedb_alone(model, tmp_path):
    (tmp_path / "corpus.jsonl").write_text("".join(f'{{"id": "d{i}", "text": "{text}"}}\n'
                                                   for i, text in enumerate(DOCUMENTS)))
    shards = encode_corpus(model, read_corpus(tmp_path / "corpus.jsonl"), tmp_path / "shards", side="document",
                           shard_size=3, with_text=True, show_progress=False)
    expected = model.encode_document(DOCUMENTS)
    ids = [f"d{i}" for i in range(len(DOCUMENTS))]
    # Daft lists every file of a directory (the manifest too), so it reads the shards by their pattern.
    columns = daft.read_parquet(f"{shards}/*.parquet").sort("id").to_pydict()
    assert columns["id"] == ids and columns["text"] == DOCUMENTS and close(columns["embedding"], expected)
    # LanceDB takes the shards as an Arrow dataset: the fixed-size list column is a vector column as it is.
    table = lancedb.connect(tmp_path / "lancedb").create_table(
        "corpus", data=pyarrow.dataset.dataset(shards, format="parquet"))
    stored = table.to_arrow().sort_by("id")
    assert str(stored.schema.field("embedding").type) == f"fixed_size_list<item: float>[{model.embedding_dim}]"
    assert stored.column("id").to_pylist() == ids and close(stored.column("embedding").to_pylist(), expected)
    query = model.encode_query([QUERY])[0]
    hit = table.search(query, vector_column_name="embedding").distance_type("cosine").limit(1).to_list()[0]
    assert hit["text"] == best_document(model, query)


def test_lancedb_registered_function_embeds_each_side_and_a_reopened_table_searches_alike(model, checkpoint,
                                                                                          tmp_path):
    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector

    function = get_registry().get("genvec").create(model=checkpoint, device="cpu", query_instruction="Answer:")
    assert isinstance(function, LanceFunction) and function.ndims() == model.embedding_dim

    class Passage(LanceModel):
        text: str = function.SourceField()
        vector: Vector(function.ndims()) = function.VectorField()

    table = lancedb.connect(tmp_path / "db").create_table("passages", schema=Passage)
    table.add([{"text": text} for text in DOCUMENTS])
    stored = table.to_arrow()
    assert close(stored.column("vector").to_pylist(), model.encode_document(stored.column("text").to_pylist()))
    query = model.encode([QUERY], instruction="Answer:")[0]
    assert close(function.compute_query_embeddings(QUERY), [query])
    assert table.search(QUERY).distance_type("cosine").limit(1).to_pydantic(Passage)[0].text == best_document(
        model, query)
    reopened = lancedb.connect(tmp_path / "db").open_table("passages")
    rebuilt = reopened.embedding_functions["vector"].function  # from the table's metadata
    assert rebuilt is not function and (rebuilt.model, rebuilt.query_instruction) == (str(checkpoint), "Answer:")
    assert reopened.search(QUERY).distance_type("cosine").limit(1).to_list()[0]["text"] == best_document(model, query)
    with pytest.raises(ValueError, match="model must be a checkpoint path"):
        get_registry().get("genvec").create(model=model)
    with pytest.raises(InputError, match="compute_query_embeddings takes one text"):
        function.compute_query_embeddings(["a", "b"])


def test_chroma_function_embeds_each_side_and_a_persisted_collection_reopens_with_its_instruction(model, checkpoint,
                                                                                                  tmp_path):
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    function = ChromaFunction(checkpoint, device="cpu", query_instruction="Answer:")
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=settings)
    passages = client.create_collection("passages", embedding_function=function)
    assert passages.configuration["hnsw"]["space"] == "cosine"
    passages.add(ids=[f"d{i}" for i in range(len(DOCUMENTS))], documents=DOCUMENTS)
    stored = passages.get(include=["embeddings", "documents"])
    assert close(stored["embeddings"], model.encode_document(stored["documents"]))
    query = model.encode([QUERY], instruction="Answer:")[0]
    assert close(function.embed_query([QUERY]), [query])
    found = passages.query(query_texts=[QUERY], n_results=1, include=["documents"])["documents"][0][0]
    assert found == best_document(model, query)

    reopened = chromadb.PersistentClient(path=str(tmp_path / "chroma"), settings=settings).get_collection("passages")
    rebuilt = reopened.configuration["embedding_function"]  # built from the persisted config
    assert isinstance(rebuilt, ChromaFunction) and rebuilt is not function
    assert rebuilt.get_config() == function.get_config() and rebuilt.query_instruction == "Answer:"
    assert reopened.query(query_texts=[QUERY], n_results=1)["documents"][0][0] == best_document(model, query)
    with pytest.raises(InputError, match="vectors were made with other query_instruction"):
        reopened.modify(configuration={"embedding_function": ChromaFunction(checkpoint, device="cpu")})


def test_chroma_function_refuses_a_loaded_model_a_string_and_a_foreign_config(model, checkpoint):
    with pytest.raises(InputError, match="takes a checkpoint path, got a loaded GenVecModel"):
        ChromaFunction(model)
    with pytest.raises(InputError, match=r"embed_query takes a list of texts, got str \('abc'\); pass \[text\]"):
        ChromaFunction(checkpoint).embed_query("abc")
    with pytest.raises(InputError, match=r"config holds \['model_name'\]"):
        ChromaFunction.build_from_config({"model_name": "x"})


def test_the_stores_cached_loader_reloads_a_checkpoint_saved_again_in_place(model, tmp_path):
    from genvec.integrations.common import cached_model

    directory = tmp_path / "ckpt"
    model.save_pretrained(directory)
    loaded = cached_model(str(directory), "cpu")
    assert cached_model(str(directory), "cpu") is loaded  # unchanged files: loaded once
    assert close(loaded.encode_query([QUERY]), model.encode_query([QUERY]))
    retrained = load_model(directory, device="cpu")
    with torch.no_grad():
        retrained.special_tokens.weight.add_(0.5)
    retrained.save_pretrained(directory)  # another model saved to the same directory
    reloaded = cached_model(str(directory), "cpu")
    assert reloaded is not loaded
    assert close(reloaded.encode_query([QUERY]), retrained.encode_query([QUERY]))
    assert not close(reloaded.encode_query([QUERY]), model.encode_query([QUERY]))
