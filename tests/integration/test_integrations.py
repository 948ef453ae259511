"""genvec inside sentence-transformers, LangChain, LlamaIndex and Haystack (each the real framework from PyPI), and
the frameworks' OpenAI embedders pointed at a real `genvec serve`."""

import numpy as np
import pytest
import torch

from genvec import GenVecModel

TEXTS = ["where do polar bears live?", "How do rivers form?", "a third, longer text about the arctic sea ice",
         "Polar bears live on the Arctic sea ice."]


@pytest.fixture(scope="module")
def model(backbone_dirs):
    torch.manual_seed(0)
    return GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                     embedding_dim=16, dtype="fp32", device="cpu")


def close(a, b) -> bool:
    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).max()) < 1e-5


def test_sentence_transformer_object_saves_reloads_and_is_evaluated_by_mteb(model, tmp_path):
    pytest.importorskip("sentence_transformers")
    from sentence_transformers import SentenceTransformer

    import genvec

    st = genvec.to_sentence_transformer(model)
    assert close(st.encode_query(TEXTS), model.encode_query(TEXTS))
    assert close(st.encode_document(TEXTS), model.encode_document(TEXTS))
    assert close(st.encode(TEXTS), model.encode(TEXTS))  # plain encode reads texts as they are
    assert close(st.encode(TEXTS[:1], prompt="Answer:"), model.encode(TEXTS[:1], instruction="Answer:"))
    assert st.get_embedding_dimension() == model.embedding_dim
    st.save(str(tmp_path / "st"))
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path / "st"))
    reloaded = SentenceTransformer(str(tmp_path / "st"), trust_remote_code=True)
    assert close(reloaded.encode_query(TEXTS), model.encode_query(TEXTS))
    assert close(reloaded.encode_document(TEXTS), model.encode_document(TEXTS))

    mteb = pytest.importorskip("mteb")
    from genvec.evaluate.local import read_local_benchmark

    retrieval = tmp_path / "bench" / "Tiny"
    retrieval.mkdir(parents=True)
    (retrieval / "corpus.jsonl").write_text('{"_id": "d0", "text": "Polar bears live on the ice."}\n'
                                            '{"_id": "d1", "text": "Rivers form from rain."}\n')
    (retrieval / "queries.jsonl").write_text('{"_id": "q0", "text": "where do polar bears live?"}\n')
    (retrieval / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")
    tasks, _ = read_local_benchmark(tmp_path / "bench")
    results = mteb.evaluate(st, tasks, cache=None, show_progress_bar=False, raise_error=True)
    assert 0 <= results.task_results[0].get_score() <= 1


def test_langchain_embeddings_and_a_vector_store(model):
    pytest.importorskip("langchain_core")
    import asyncio

    from langchain_core.vectorstores import InMemoryVectorStore

    from genvec.integrations.langchain import GenVecEmbeddings

    embeddings = GenVecEmbeddings(model, batch_size=2)
    assert close(embeddings.embed_documents(TEXTS), model.encode_document(TEXTS))
    assert close(embeddings.embed_query(TEXTS[0]), model.encode_query(TEXTS[:1])[0])
    assert close(asyncio.run(embeddings.aembed_documents(TEXTS)), model.encode_document(TEXTS))
    assert close(GenVecEmbeddings(model, normalize=True).embed_query(TEXTS[0]),
                 model.encode_query(TEXTS[:1], normalize=True)[0])
    store = InMemoryVectorStore(embeddings)
    store.add_texts(TEXTS[1:])
    query = model.encode_query(TEXTS[:1], normalize=True)[0]
    documents = model.encode_document(TEXTS[1:], normalize=True)
    found = store.similarity_search(TEXTS[0], k=1)[0].page_content
    assert found == TEXTS[1:][int(np.argmax(documents @ query))]  # the store ranks by genvec's cosine


def test_llamaindex_embedding_batches_for_real(model, monkeypatch):
    pytest.importorskip("llama_index.core")
    from genvec.integrations.llamaindex import GenVecEmbedding

    embedding = GenVecEmbedding(model, embed_batch_size=3)
    calls = []
    original = model.encode_document
    monkeypatch.setattr(model, "encode_document", lambda texts, **kw: calls.append(len(texts)) or original(texts, **kw))
    assert close(embedding.get_text_embedding_batch(TEXTS), original(TEXTS))
    assert calls == [3, 1]  # batches of embed_batch_size, not one text at a time
    assert close(embedding.get_query_embedding(TEXTS[0]), model.encode_query(TEXTS[:1])[0])
    assert close(embedding.get_text_embedding(TEXTS[1]), original(TEXTS[1:2])[0])


def test_haystack_components_in_a_pipeline(model, tmp_path):
    pytest.importorskip("haystack")
    from haystack import Document, Pipeline
    from haystack.components.retrievers.in_memory import InMemoryEmbeddingRetriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    from genvec.integrations.haystack import GenVecDocumentEmbedder, GenVecTextEmbedder

    model.save_pretrained(tmp_path / "ckpt")
    documents = GenVecDocumentEmbedder(model=str(tmp_path / "ckpt"), device="cpu").run(
        [Document(content=text) for text in TEXTS[1:]])["documents"]
    assert close([d.embedding for d in documents], model.encode_document(TEXTS[1:]))
    store = InMemoryDocumentStore(embedding_similarity_function="cosine")
    store.write_documents(documents)
    pipeline = Pipeline()
    pipeline.add_component("embedder", GenVecTextEmbedder(model=str(tmp_path / "ckpt"), device="cpu"))
    pipeline.add_component("retriever", InMemoryEmbeddingRetriever(store, top_k=1))
    pipeline.connect("embedder.embedding", "retriever.query_embedding")
    answer = pipeline.run({"embedder": {"text": TEXTS[0]}})
    query = model.encode_query(TEXTS[:1], normalize=True)[0]
    expected = TEXTS[1:][int(np.argmax(model.encode_document(TEXTS[1:], normalize=True) @ query))]
    assert answer["retriever"]["documents"][0].content == expected
    restored = Pipeline.loads(pipeline.dumps(), allowed_modules=["genvec.integrations.haystack"])  # by checkpoint path
    assert restored.get_component("embedder").model == str(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="no text content"):
        GenVecDocumentEmbedder(model=str(tmp_path / "ckpt"), device="cpu").run([Document(content="  ")])


def test_langchain_and_llamaindex_openai_embedders_against_genvec_serve(model):
    pytest.importorskip("langchain_openai")
    pytest.importorskip("fastapi")
    from langchain_openai import OpenAIEmbeddings
    from test_serve import Server

    server = Server(model)
    try:
        server.wait_ready()
        documents = OpenAIEmbeddings(base_url=server.url + "/v1", api_key="unused", model="genvec",
                                     check_embedding_ctx_length=False,
                                     model_kwargs={"extra_body": {"input_type": "document"}})
        assert close(documents.embed_documents(TEXTS), model.encode_document(TEXTS, normalize=True))
        queries = OpenAIEmbeddings(base_url=server.url + "/v1", api_key="unused", model="genvec",
                                   check_embedding_ctx_length=False,
                                   model_kwargs={"extra_body": {"input_type": "query"}})
        assert close(queries.embed_query(TEXTS[0]), model.encode_query(TEXTS[:1], normalize=True)[0])
        pytest.importorskip("llama_index.embeddings.openai_like")
        from llama_index.embeddings.openai_like import OpenAILikeEmbedding

        embed = OpenAILikeEmbedding(model_name="genvec", api_base=server.url + "/v1", api_key="unused",
                                    additional_kwargs={"extra_body": {"input_type": "document"}})
        assert close(embed.get_text_embedding_batch(TEXTS), model.encode_document(TEXTS, normalize=True))
    finally:
        server.close()


def test_framework_methods_refuse_a_string_or_none_where_they_take_a_list(model):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    import asyncio

    from genvec.errors import InputError
    from genvec.integrations.langchain import GenVecEmbeddings
    from genvec.integrations.llamaindex import GenVecEmbedding

    embeddings = GenVecEmbeddings(model)
    with pytest.raises(InputError, match=r"embed_documents takes a list of texts, got one str \('abc'\); pass "
                                         r"\[text\], or use embed_query"):
        embeddings.embed_documents("abc")  # list("abc") would embed "a", "b" and "c"
    with pytest.raises(InputError, match="embed_documents takes a list of texts, got NoneType"):
        embeddings.embed_documents(None)
    with pytest.raises(InputError, match="got one str"):
        asyncio.run(embeddings.aembed_documents("abc"))
    with pytest.raises(InputError, match=r"embed_query takes one text \(a string\), got list"):
        embeddings.embed_query(["a", "b"])
    assert embeddings.embed_documents([]) == []
    assert close(embeddings.embed_documents(text for text in TEXTS[:2]), model.encode_document(TEXTS[:2]))

    embedding = GenVecEmbedding(model)
    with pytest.raises(InputError, match="get_text_embedding_batch takes a list of texts, got one str"):
        embedding.get_text_embedding_batch("abc")
    with pytest.raises(InputError, match="get_text_embedding_batch takes a list of texts, got NoneType"):
        embedding.get_text_embedding_batch(None)
    with pytest.raises(InputError, match="aget_text_embedding_batch takes a list of texts, got one str"):
        asyncio.run(embedding.aget_text_embedding_batch("abc"))
    with pytest.raises(InputError, match=r"get_query_embedding takes one text \(a string\), got list"):
        embedding.get_query_embedding(["a", "b"])
    assert embedding.get_text_embedding_batch([]) == []


def test_haystack_document_embedder_takes_documents_only_and_a_loaded_model_is_not_serialised_as_its_repr(
        model, tmp_path):
    pytest.importorskip("haystack")
    from haystack import Document, Pipeline
    from haystack.core.errors import SerializationError

    from genvec.integrations.haystack import GenVecDocumentEmbedder, GenVecTextEmbedder

    embedder = GenVecDocumentEmbedder(model=model)
    for documents, message in [(None, r"takes a list of Documents, got NoneType"),
                               (Document(content="a"), r"takes a list of Documents, got Document"),
                               (["a", "b"], r"documents\[0\] is str \('a'\); wrap texts as Document"),
                               ([Document(content="a"), None], r"documents\[1\] is NoneType")]:
        with pytest.raises(TypeError, match=message):
            embedder.run(documents)
    assert embedder.run([]) == {"documents": []}
    assert close(embedder.run([Document(content=TEXTS[0])])["documents"][0].embedding, model.encode_document(TEXTS[:1]))

    pipeline = Pipeline()
    pipeline.add_component("embedder", GenVecTextEmbedder(model=model))
    with pytest.raises(SerializationError, match=r"built from a loaded GenVecModel, which has no checkpoint path .* "
                                                 r"model.save_pretrained\(directory\)"):
        pipeline.dumps()
    model.save_pretrained(tmp_path / "ckpt")
    by_path = GenVecTextEmbedder(model=tmp_path / "ckpt", device="cpu")  # a Path is written as its string
    assert by_path.to_dict()["init_parameters"]["model"] == str(tmp_path / "ckpt")


def test_a_saved_sentence_transformer_cannot_load_a_checkpoint_outside_its_directory(model, tmp_path):
    pytest.importorskip("sentence_transformers")
    import json

    from sentence_transformers import SentenceTransformer

    import genvec
    from genvec.errors import CheckpointError

    genvec.to_sentence_transformer(model).save(str(tmp_path / "st"))
    model.save_pretrained(tmp_path / "outside")
    config = tmp_path / "st" / "genvec_st_config.json"
    for checkpoint in ["../outside", str(tmp_path / "outside"), "genvec/../../outside", "..\\outside", "", 5]:
        config.write_text(json.dumps({"checkpoint": checkpoint}))
        with pytest.raises(CheckpointError, match=r"genvec_st_config.json sets checkpoint to .*; it must be a "
                                                  r"directory inside the saved model's directory"):
            SentenceTransformer(str(tmp_path / "st"), trust_remote_code=True)
    config.write_text(json.dumps({"checkpoint": "genvec"}))
    assert close(SentenceTransformer(str(tmp_path / "st"), trust_remote_code=True).encode(TEXTS[:1]),
                 model.encode(TEXTS[:1]))
