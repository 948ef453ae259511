"""`dimensions` through every door on one truncatable tiny model: the library, `genvec encode --dimensions`,
`genvec make-truncatable`, the server (the `openai` SDK's `dimensions=`, TEI's `/embed`, Ollama's `/api/embed`), the
LangChain adapter and sentence-transformers' `truncate_dim` give the same vectors (within 1e-5); a model that is not
truncatable, and bad sizes, are refused with the library's message (4xx in the server)."""

import json

import numpy as np
import pytest

from genvec.bulk import read_shards
from genvec.cli import main
from genvec.errors import InputError
from genvec.files import sha256_file
from genvec.loading import load_model
from genvec.truncation import make_truncatable

TEXTS = ["where do polar bears live?", "How do rivers form?", "a third, longer text about the arctic sea ice"]
SAMPLE = [f"{topic} {detail}" for topic in ("polar bears", "rivers", "glaciers", "volcanoes", "markets", "cakes")
          for detail in ("live where it is cold", "how do they form?", "move slowly downhill", "a short history")]
D, SHORT = 16, 4


@pytest.fixture(scope="module")
def truncatable(plain_dir):
    model = load_model(plain_dir, device="cpu")
    make_truncatable(model, SAMPLE)
    return model


def close(got, expected) -> bool:
    return float(np.abs(np.asarray(got, dtype=np.float32) - np.asarray(expected, dtype=np.float32)).max()) < 1e-5


def test_make_truncatable_writes_a_new_checkpoint_and_never_touches_the_model(plain_dir, tmp_path, capsys):
    before = {path.name: sha256_file(path) for path in plain_dir.iterdir()}
    (tmp_path / "sample.txt").write_text("\n".join(SAMPLE) + "\n\n")
    output = tmp_path / "truncatable"
    assert main(["make-truncatable", str(plain_dir), "--texts", str(tmp_path / "sample.txt"), "--output",
                 str(output), "--basis", "svd", "--device", "cpu"]) == 0
    assert "share of the sample's second moment kept by the first d coordinates: 1: " in capsys.readouterr().err
    assert {path.name: sha256_file(path) for path in plain_dir.iterdir()} == before
    written = load_model(output, device="cpu")
    assert written.truncation["basis"] == "svd" and written.truncation["num_texts"] == len(SAMPLE)
    plain = load_model(plain_dir, device="cpu")
    assert close(written.encode(TEXTS) @ written.encode(TEXTS).T, plain.encode(TEXTS) @ plain.encode(TEXTS).T)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".truncatable.writing-")] == []
    again = ["make-truncatable", str(plain_dir), "--texts", str(tmp_path / "sample.txt"), "--device", "cpu"]
    assert main([*again, "--output", str(output)]) == 2  # exists: never overwritten
    assert main([*again, "--output", str(plain_dir)]) == 2
    assert "exists and is the model itself" in capsys.readouterr().err
    assert main([*again[:-4], "--texts", str(tmp_path / "none.txt"), "--device", "cpu", "--output",
                 str(tmp_path / "x")]) == 2
    assert "--texts" in capsys.readouterr().err and not (tmp_path / "x").exists()
    with pytest.raises(SystemExit):
        main([*again, "--output", str(tmp_path / "y"), "--basis", "ica"])


def test_the_library_and_the_cli_give_the_same_truncated_vectors(truncatable, plain_dir, tmp_path, capsys):
    truncatable.save_pretrained(tmp_path / "model")
    expected = truncatable.encode(TEXTS, dimensions=SHORT, normalize=True)
    assert expected.shape == (len(TEXTS), SHORT)
    assert main(["encode", "--model", str(tmp_path / "model"), "--device", "cpu", *TEXTS, "--dimensions", str(SHORT),
                 "--normalize", "--output", str(tmp_path / "v.npy")]) == 0
    assert close(np.load(tmp_path / "v.npy"), expected)
    assert main(["encode", "--model", str(plain_dir), "--device", "cpu", TEXTS[0], "--dimensions", "4"]) == 2
    assert "not truncatable" in capsys.readouterr().err
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "x"}\n')
    assert main(["encode", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "corpus.jsonl"), "--output",
                 str(tmp_path / "shards"), "--dimensions", "4", "--device", "cpu"]) == 0  # bulk mode too
    assert close(read_shards(tmp_path / "shards")[1], truncatable.encode(["x"], dimensions=4))


def test_the_server_truncates_then_normalises_in_every_dialect(truncatable):
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx2")
    from test_serve import KEY, Server

    server = Server(truncatable, api_key=KEY)
    try:
        server.wait_ready()
        api = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        answer = api.embeddings.create(model="tiny-genvec", input=TEXTS, dimensions=SHORT)
        assert close([item.embedding for item in answer.data], truncatable.encode(TEXTS, dimensions=SHORT,
                                                                                   normalize=True))
        raw = httpx.post(server.url + "/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                         json={"input": TEXTS, "dimensions": SHORT, "normalize": False}).json()
        assert close([item["embedding"] for item in raw["data"]], truncatable.encode(TEXTS, dimensions=SHORT))
        auth = {"Authorization": f"Bearer {KEY}"}
        tei = httpx.post(server.url + "/embed", headers=auth, json={"inputs": TEXTS, "dimensions": SHORT}).json()
        assert close(tei, truncatable.encode(TEXTS, dimensions=SHORT, normalize=True))
        ollama = httpx.post(server.url + "/api/embed", headers=auth,
                            json={"model": "tiny-genvec", "input": TEXTS, "dimensions": SHORT}).json()
        assert close(ollama["embeddings"], truncatable.encode(TEXTS, dimensions=SHORT, normalize=True))
        for bad in (0, D + 1, -1, "4", 2.5):
            for path, body, status in (("/v1/embeddings", {"input": "x"}, 400), ("/embed", {"inputs": "x"}, 422),
                                       ("/api/embed", {"model": "tiny-genvec", "input": "x"}, 400)):
                response = httpx.post(server.url + path, headers=auth, json={**body, "dimensions": bad})
                assert response.status_code == status, (path, bad, response.text)
                assert "dimensions" in response.text
        assert httpx.get(server.url + "/info", headers=auth).json()["truncatable"] is True
    finally:
        server.close()


def test_a_server_of_a_model_that_is_not_truncatable_says_how_to_make_one(served_model):
    openai = pytest.importorskip("openai")
    httpx = pytest.importorskip("httpx2")
    from test_serve import KEY, Server

    server = Server(served_model, api_key=KEY)
    try:
        server.wait_ready()
        api = openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.BadRequestError, match="genvec make-truncatable") as refused:
            api.embeddings.create(model="tiny-genvec", input=TEXTS, dimensions=SHORT)
        assert refused.value.body["param"] == "dimensions"
        full = api.embeddings.create(model="tiny-genvec", input=TEXTS, dimensions=D)  # D itself is always fine
        assert close([item.embedding for item in full.data], served_model.encode(TEXTS, normalize=True))
        auth = {"Authorization": f"Bearer {KEY}"}
        tei = httpx.post(server.url + "/embed", headers=auth, json={"inputs": "x", "dimensions": SHORT})
        assert tei.status_code == 422 and "genvec make-truncatable" in tei.json()["error"]
    finally:
        server.close()


def test_the_adapters_take_dimensions(truncatable, plain_dir):
    pytest.importorskip("langchain_core")
    from genvec.integrations.langchain import GenVecEmbeddings

    embeddings = GenVecEmbeddings(truncatable, dimensions=SHORT, normalize=True)
    assert close(embeddings.embed_documents(TEXTS), truncatable.encode_document(TEXTS, dimensions=SHORT,
                                                                                 normalize=True))
    assert close(embeddings.embed_query(TEXTS[0]), truncatable.encode_query(TEXTS[:1], dimensions=SHORT,
                                                                             normalize=True)[0])
    with pytest.raises(InputError, match="not truncatable"):
        GenVecEmbeddings(str(plain_dir), device="cpu", dimensions=SHORT)

    pytest.importorskip("sentence_transformers")
    import genvec

    st = genvec.to_sentence_transformer(truncatable, truncate_dim=SHORT)
    assert close(st.encode_query(TEXTS, normalize_embeddings=True),
                 truncatable.encode_query(TEXTS, dimensions=SHORT, normalize=True))
    with pytest.raises(InputError, match="not truncatable"):
        genvec.to_sentence_transformer(load_model(plain_dir, device="cpu"), truncate_dim=SHORT)


def test_llamaindex_and_haystack_take_dimensions(truncatable, tmp_path):
    pytest.importorskip("llama_index.core")
    pytest.importorskip("haystack")
    from genvec.integrations.haystack import GenVecTextEmbedder
    from genvec.integrations.llamaindex import GenVecEmbedding

    expected = truncatable.encode_query(TEXTS[:1], dimensions=SHORT)[0]
    assert close(GenVecEmbedding(truncatable, dimensions=SHORT).get_query_embedding(TEXTS[0]), expected)
    truncatable.save_pretrained(tmp_path / "model")
    embedder = GenVecTextEmbedder(model=str(tmp_path / "model"), device="cpu", dimensions=SHORT)
    assert json.loads(json.dumps(embedder.to_dict()))["init_parameters"]["dimensions"] == SHORT
    assert close(embedder.run(TEXTS[0])["embedding"], expected)
