"""One text, one vector, whichever door it comes through: the library, the CLI, the server, bulk encoding, the
sentence-transformers object, the mteb encoder and the LangChain, LlamaIndex and Haystack adapters all read texts
through `genvec.inference`, so short and over-long texts, with and without an instruction, on the query and the
document side, give the library's vectors (< 1e-5), and a text too long with truncation off is refused alike."""

import json
import types
import warnings

import numpy as np
import pytest
import torch

from genvec import GenVecModel, cli, inference
from genvec.bulk import Corpus, encode_corpus, read_shards
from genvec.errors import InputTooLongError

INSTRUCTION = "Answer the question in one sentence:"
# Routes: (instruction, side) as the library takes them.
ROUTES = [(None, None), (INSTRUCTION, None), (None, "query"), (None, "document")]


@pytest.fixture(scope="module")
def model(served_model):
    return served_model  # conftest's seeded tiny Qwen3 model


@pytest.fixture(scope="module")
def texts(model):
    """Short texts and one over-long text (more tokens than the model reads, few enough characters to tokenise)."""
    return ["where do polar bears live?", "How do rivers form?", "river " * (inference.text_limit(model) + 40),
            "a third, longer text about the arctic sea ice"]


@pytest.fixture(scope="module")
def expected(model, texts):
    """The library's vectors per route (the over-long text cut, with the library's warning)."""
    vectors = {}
    for instruction, side in ROUTES:
        with pytest.warns(UserWarning, match="1 of 4 texts were longer than the model reads and were cut"):
            vectors[instruction, side] = model.encode(texts, instruction=instruction, side=side)
    return vectors


def close(a, b) -> bool:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return a.shape == b.shape and float(np.abs(a - b).max()) < 1e-5


def test_the_routes_differ_and_the_long_text_is_cut_not_dropped(model, texts, expected):
    assert not close(expected[None, None], expected[INSTRUCTION, None])
    assert not close(expected[None, "query"], expected[None, "document"])
    inputs = model.prepare(texts, side="query")
    assert inputs.cut == (2,) and len(inputs.ids[2]) == inference.text_limit(model)
    fits = model.prepare([model.tokenizer.decode(inputs.ids[2], skip_special_tokens=True)])
    assert fits.cut == ()  # a text exactly at the limit is not counted as cut


def test_the_library_methods(model, texts, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert close(model.encode_query(texts), expected[None, "query"])
        assert close(model.encode_document(texts), expected[None, "document"])
        assert close(model.encode(texts, instruction=model.config.model.instructions["query"]),
                     expected[None, "query"])
        states = model.compress(texts, instruction=INSTRUCTION)
    assert close(model.embed(states).detach(), expected[INSTRUCTION, None])


def test_the_cli(model, texts, expected, tmp_path):
    model.save_pretrained(tmp_path / "model")
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    for instruction, side in ROUTES:
        flags = ["--instruction", instruction] if instruction else [f"--{side}"] if side else []
        output = tmp_path / "out.npy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert cli.main(["encode", "--model", str(tmp_path / "model"), "--device", "cpu", "--input",
                             str(tmp_path / "texts.txt"), "--output", str(output), *flags]) == 0
        assert close(np.load(output), expected[instruction, side]), (instruction, side)


def test_the_server_and_the_openai_client(model, texts, expected):
    openai = pytest.importorskip("openai")
    pytest.importorskip("uvicorn")
    from test_serve import Server

    server = Server(model)
    try:
        server.wait_ready()
        api = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
        for instruction, side in ROUTES:
            extra = {"instruction": instruction} if instruction else {"input_type": side} if side else {}
            response = api.embeddings.create(model="genvec", input=texts, extra_body={
                **extra, "truncate": True, "normalize": False})
            vectors = [item.embedding for item in response.data]
            assert close(vectors, expected[instruction, side]), (instruction, side)
    finally:
        server.close()


def test_bulk_encoding(model, texts, expected, tmp_path):
    corpus = Corpus([str(i) for i in range(len(texts))], texts, {"path": "in memory"})
    for number, (instruction, side) in enumerate(ROUTES):
        output = encode_corpus(model, corpus, tmp_path / f"shards-{number}", instruction=instruction, side=side,
                               shard_size=3, show_progress=False)
        ids, vectors = read_shards(output)
        assert ids == corpus.ids and close(vectors, expected[instruction, side]), (instruction, side)


def test_the_sentence_transformers_object(model, texts, expected):
    pytest.importorskip("sentence_transformers")
    from genvec import to_sentence_transformer

    st = to_sentence_transformer(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert close(st.encode(texts), expected[None, None])
        assert close(st.encode(texts, prompt=INSTRUCTION), expected[INSTRUCTION, None])
        assert close(st.encode_query(texts), expected[None, "query"])
        assert close(st.encode_document(texts), expected[None, "document"])


def test_the_mteb_encoder(model, texts, expected):
    pytest.importorskip("mteb")
    from mteb.types import PromptType

    from genvec.evaluate.instructions import InstructionTable, TaskInstructions
    from genvec.evaluate.mteb_encoder import mteb_encoder

    saved = model.config.model.instructions
    tables = {(INSTRUCTION, None): TaskInstructions(INSTRUCTION),
              (None, "query"): TaskInstructions(saved["query"], saved["document"]),
              (None, "document"): TaskInstructions(saved["query"], saved["document"])}
    for (instruction, side), task in tables.items():
        encoder = mteb_encoder(model, instructions=InstructionTable({"Door": task}))
        prompt_type = PromptType.document if side == "document" else PromptType.query
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vectors = encoder.encode(types.SimpleNamespace(dataset={"text": texts}),
                                     task_metadata=types.SimpleNamespace(name="Door"), hf_split="test",
                                     hf_subset="default", prompt_type=prompt_type)
        assert close(vectors, expected[instruction, side]), (instruction, side)


def test_the_framework_adapters(model, texts, expected):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from haystack import Document

    from genvec.integrations.haystack import GenVecDocumentEmbedder, GenVecTextEmbedder
    from genvec.integrations.langchain import GenVecEmbeddings
    from genvec.integrations.llamaindex import GenVecEmbedding

    queries, documents = expected[None, "query"], expected[None, "document"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        langchain = GenVecEmbeddings(model, batch_size=3)
        assert close(langchain.embed_documents(texts), documents)
        assert close([langchain.embed_query(text) for text in texts], queries)
        llamaindex = GenVecEmbedding(model, embed_batch_size=3)
        assert close(llamaindex.get_text_embedding_batch(texts), documents)
        assert close([llamaindex.get_query_embedding(text) for text in texts], queries)
        document_embedder, text_embedder = GenVecDocumentEmbedder(model=model), GenVecTextEmbedder(model=model)
        embedded = document_embedder.run([Document(content=text) for text in texts])["documents"]
        assert close([document.embedding for document in embedded], documents)
        assert close([text_embedder.run(text)["embedding"] for text in texts], queries)


def test_a_text_too_long_is_refused_alike(model, texts, tmp_path, capsys):
    with pytest.raises(InputTooLongError) as library:
        model.encode(texts, side="query", truncate="error")
    assert library.value.param == "texts" and library.value.index == 2
    message = str(library.value)
    assert message.startswith("texts[2] is longer than the") and 'truncate="cut"' in message

    model.save_pretrained(tmp_path / "model")
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert cli.main(["encode", "--model", str(tmp_path / "model"), "--device", "cpu", "--input",
                     str(tmp_path / "texts.txt"), "--query", "--truncate", "error"]) == 2
    assert message in capsys.readouterr().err

    corpus = Corpus([str(i) for i in range(len(texts))], texts, {"path": "in memory"})
    with pytest.raises(InputTooLongError, match=r"texts\[2\] is longer than the"):
        encode_corpus(model, corpus, tmp_path / "shards", side="query", truncate="error", show_progress=False)

    pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx2")
    from test_serve import Server

    server = Server(model)
    try:
        server.wait_ready()
        response = httpx.post(server.url + "/v1/embeddings", json={"input": texts, "input_type": "query"})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["param"] == "input" and error["code"] == "input_too_long"
        assert error["message"].startswith(message.replace("texts[2]", "input[2]"))
        for route, body in [("/v1/decode", {"input": texts}), ("/v1/inspect", {"input": texts[2]})]:
            refused = httpx.post(server.url + route, json=body)
            assert refused.status_code == 422 and refused.json()["error"]["param"] == "input", (route, refused.text)
    finally:
        server.close()


def test_an_identity_names_what_the_model_computes(model, backbone_dirs):
    torch.manual_seed(0)
    twin = GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                     embedding_dim=16, dtype="fp32", device="cpu")
    assert twin.identity() == model.identity() and len(model.identity()) == 32
    with torch.no_grad():
        twin.alignment.bias.add_(1e-3)
    assert twin.identity() != model.identity()
    assert json.dumps(model.identity())  # a plain string, ready for any manifest
