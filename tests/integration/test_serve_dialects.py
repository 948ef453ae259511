"""Issue 27's acceptance with the clients people already run: one real `genvec serve` app on 127.0.0.1 spoken to by
the `openai` SDK (model aliases bound to instructions), the `ollama` client (`/api/embed`, `/api/tags`), LlamaIndex's
and huggingface_hub's TEI clients (`/embed`, `/rerank`), Cohere's SDK and LangChain's `CohereRerank`
(`/v1/rerank`, `/v2/rerank`), plain requests for vLLM's `/v1/score` and TEI's `/tokenize`; then every new route's
bad requests, each answered with its dialect's 4xx in its dialect's shape, and /metrics counting them per route.

Every answer is compared with the library's own call on the same model (`encode_query`, `encode_document`,
`encode(instruction=...)`, `rerank`), within 1e-5.
"""

import json

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx2")

from test_serve import KEY, Server, _count, _server_errors

from genvec import inference
from genvec.config.sections import ServeConfig

NAME = "tiny-genvec"  # test_serve's Server serves the model under this name
REFUTE = "Generate text that refutes this claim"
AUTH = {"Authorization": f"Bearer {KEY}"}
TEXTS = ["where do polar bears live?", "How do rivers form?", "a third, longer text about the arctic sea ice"]
QUERY = "how do glaciers move?"
DOCUMENTS = ["Glaciers flow downhill under their own weight.", "Polar bears hunt seals on the sea ice.",
             "Rivers carve valleys over millions of years.", "The stock market closed higher today.",
             "Ice sheets slide on meltwater at their base.", "A recipe for lemon cake with poppy seeds."]
MAX_DOCUMENTS = 32
MAX_RERANK_TOKENS = 4000
CONFIG = ServeConfig(prompts={"refute": REFUTE}, max_rerank_documents=MAX_DOCUMENTS,
                     max_rerank_tokens=MAX_RERANK_TOKENS)


@pytest.fixture(scope="module")
def served(served_model):
    server = Server(served_model, CONFIG, api_key=KEY)
    server.wait_ready()
    yield server
    server.close()


def close(got, expected) -> bool:
    return np.abs(np.asarray(got, dtype=np.float32) - np.asarray(expected, dtype=np.float32)).max() < 1e-5


def cosines(model, query: str, documents: list[str], instruction: str | None = None) -> np.ndarray:
    """The relevance rerank answers, computed here from the library's embeddings: (len(documents),)."""
    asked = model.encode([query], instruction=instruction) if instruction else model.encode_query([query])
    return (inference.normalize_rows(asked) @ inference.normalize_rows(model.encode_document(documents)).T)[0]


def expected_ranking(model, query: str = QUERY, documents: list[str] = DOCUMENTS,
                     instruction: str | None = None) -> list[tuple[int, float]]:
    """(index, score) most relevant first: the library's `rerank`, checked against sorting the cosines."""
    scores = cosines(model, query, documents, instruction)
    hits = model.rerank(query, documents, instruction=instruction)
    assert [hit.index for hit in hits] == list(np.argsort(-scores, kind="stable"))
    assert close([hit.score for hit in hits], scores[[hit.index for hit in hits]])
    assert np.diff(sorted(scores)).min() > 1e-4, "near ties: the order would hang on rounding"
    return [(hit.index, hit.score) for hit in hits]


def post(server: Server, path: str, body: dict, headers: dict | None = None) -> "httpx.Response":
    return httpx.post(server.url + path, json=body, headers=AUTH if headers is None else headers, timeout=60)


# ------------------------------------------------------------------------------------------------- OpenAI


def test_the_openai_sdk_picks_the_instruction_by_model_alias(served, served_model):
    api = openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0)

    def embeddings(model: str, **extra) -> np.ndarray:
        answer = api.embeddings.create(model=model, input=TEXTS, encoding_format="float", extra_body=extra or None)
        return np.array([item.embedding for item in answer.data])

    query = served_model.encode_query(TEXTS, normalize=True)
    document = served_model.encode_document(TEXTS, normalize=True)
    assert close(embeddings(f"{NAME}-query"), query)
    assert close(embeddings(f"{NAME}-document"), document)
    assert close(embeddings(f"{NAME}-refute"), served_model.encode(TEXTS, instruction=REFUTE, normalize=True))
    assert close(embeddings(NAME), served_model.encode(TEXTS, normalize=True))  # the bare name: no instruction
    assert not close(query, document)  # else the aliases above prove nothing
    base64 = api.embeddings.create(model=f"{NAME}-document", input=TEXTS)  # the SDK's default: base64, decoded
    assert close([item.embedding for item in base64.data], document)
    # An alias with an input_type, instruction or prompt_name that agrees is fine; the synonyms pick their side.
    assert close(embeddings(f"{NAME}-query", input_type="search_query"), query)
    assert close(embeddings(f"{NAME}-refute", instruction=REFUTE), embeddings(f"{NAME}-refute"))
    assert close(embeddings(NAME, prompt_name="document"), document)
    for synonym, side in inference_sides().items():
        assert close(embeddings(NAME, input_type=synonym), query if side == "query" else document), synonym


def inference_sides() -> dict[str, str]:
    from genvec.serve.protocol import SIDES

    assert {"search_query", "search_document", "passage", "retrieval.query", "retrieval.passage"} <= set(SIDES)
    return SIDES


def test_an_alias_and_a_contradicting_input_type_or_instruction_is_a_400_naming_both(served):
    api = openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0)
    for extra, named in (({"input_type": "passage"}, "input_type"), ({"instruction": REFUTE}, "instruction"),
                         ({"prompt_name": "refute"}, "prompt_name 'refute'")):
        with pytest.raises(openai.BadRequestError) as refused:
            api.embeddings.create(model=f"{NAME}-query", input="x", extra_body=extra)
        error = refused.value.body
        assert error["code"] == "conflicting_instructions" and error["param"] == "model", error
        assert f"model '{NAME}-query'" in error["message"] and named in error["message"], error["message"]
    with pytest.raises(openai.NotFoundError, match=f"{NAME}-qeury"):  # a typo never embeds without its instruction
        api.embeddings.create(model=f"{NAME}-qeury", input="x")


def test_langchain_and_llamaindex_openai_embedders_need_only_the_alias(served, served_model):
    pytest.importorskip("langchain_openai")
    from langchain_openai import OpenAIEmbeddings

    def langchain(model: str):  # without check_embedding_ctx_length=False it sends tiktoken ids, which genvec refuses
        return OpenAIEmbeddings(base_url=served.url + "/v1", api_key=KEY, model=model, check_embedding_ctx_length=False)

    documents, query = langchain(f"{NAME}-document"), langchain(f"{NAME}-query")
    assert close(documents.embed_documents(TEXTS), served_model.encode_document(TEXTS, normalize=True))
    assert close([query.embed_query(TEXTS[0])], served_model.encode_query(TEXTS[:1], normalize=True))
    pytest.importorskip("llama_index.embeddings.openai_like")
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    embed = OpenAILikeEmbedding(model_name=f"{NAME}-document", api_base=served.url + "/v1", api_key=KEY)
    assert close(embed.get_text_embedding_batch(TEXTS), served_model.encode_document(TEXTS, normalize=True))


def test_the_models_list_names_each_alias_with_its_instruction(served, served_model):
    api = openai.OpenAI(base_url=served.url + "/v1", api_key=KEY, max_retries=0)
    cards = {card.id: card for card in api.models.list().data}
    instructions = served_model.config.model.instructions
    assert list(cards) == [NAME, f"{NAME}-query", f"{NAME}-document", f"{NAME}-refute"]
    assert {name: card.instruction for name, card in cards.items() if name != NAME} == {
        f"{NAME}-query": instructions["query"], f"{NAME}-document": instructions["document"], f"{NAME}-refute": REFUTE}
    assert api.models.retrieve(f"{NAME}-refute").instruction == REFUTE


# ------------------------------------------------------------------------------------------------- Ollama


def test_the_ollama_client_embeds_like_the_library(served, served_model):
    ollama = pytest.importorskip("ollama")
    client = ollama.Client(host=served.url, headers=AUTH)
    answer = client.embed(model=f"{NAME}-document", input=TEXTS)
    assert not close(np.linalg.norm(served_model.encode_document(TEXTS), axis=1), np.ones(len(TEXTS)))
    assert close(answer.embeddings, served_model.encode_document(TEXTS, normalize=True))
    assert answer.prompt_eval_count == served_model.prepare(TEXTS, side="document").num_tokens
    assert answer.model == f"{NAME}-document" and answer.total_duration > 0
    tagged = client.embed(model=f"{NAME}-query:latest", input=TEXTS[0], truncate=True, keep_alive="5m",
                          dimensions=served_model.embedding_dim)
    assert close(tagged.embeddings, served_model.encode_query(TEXTS[:1], normalize=True))
    with pytest.raises(ollama.ResponseError) as missing:
        client.embed(model="nomic-embed-text", input="x")
    assert missing.value.status_code == 404 and "nomic-embed-text" in missing.value.error
    raw = post(served, "/api/embed", {"model": "nomic-embed-text", "input": "x"})
    assert raw.status_code == 404 and set(raw.json()) == {"error"}  # Ollama's shape
    with pytest.raises(ollama.ResponseError) as unserved:  # a route genvec does not serve: 404, Ollama's shape too
        client.show(f"{NAME}-document")
    assert unserved.value.status_code == 404 and isinstance(unserved.value.error, str)
    listed = client.list()
    assert [model.model for model in listed.models] == [f"{name}:latest" for name in (
        NAME, f"{NAME}-query", f"{NAME}-document", f"{NAME}-refute")]
    assert all(model.details.family == served_model.backbone.config.model_type for model in listed.models)
    assert httpx.get(served.url + "/api/version", headers=AUTH).json()["version"]


# ------------------------------------------------------------------------------------------------- TEI


def test_llamaindex_text_embeddings_inference_gets_the_librarys_embeddings(served, served_model):
    pytest.importorskip("llama_index.embeddings.text_embeddings_inference")
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    # LlamaIndex prepends its own instructions as text (none for an unknown model name) and sends no prompt_name:
    # the bare /embed embeds without genvec's instructions.
    embedder = TextEmbeddingsInference(model_name=NAME, base_url=served.url, auth_token=KEY)
    plain = served_model.encode(TEXTS, normalize=True)
    assert close(embedder.get_text_embedding_batch(TEXTS), plain)
    assert close([embedder.get_query_embedding(TEXTS[0])], plain[:1])


def test_huggingface_hub_feature_extraction_against_embed_with_prompt_name(served, served_model, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)  # conftest's offline mode blocks even loopback URLs
    client = hub.InferenceClient(model=served.url + "/embed", token=KEY)
    assert close(client.feature_extraction(TEXTS[0], prompt_name="query"),
                 served_model.encode_query(TEXTS[:1], normalize=True))
    assert close(client.feature_extraction(TEXTS[1], prompt_name="refute", normalize=False, truncate=True),
                 served_model.encode(TEXTS[1:2], instruction=REFUTE))


def test_tei_embed_and_tokenize_bodies(served, served_model):
    answer = post(served, "/embed", {"inputs": TEXTS, "prompt_name": "document", "normalize": False})
    assert answer.status_code == 200 and close(answer.json(), served_model.encode_document(TEXTS))
    one = post(served, "/embed", {"inputs": TEXTS[0], "truncation_direction": "Right"})
    assert close(one.json(), served_model.encode(TEXTS[:1], normalize=True))
    prepared = served_model.prepare(TEXTS, side="query")
    tokens = post(served, "/tokenize", {"inputs": TEXTS, "prompt_name": "query"}).json()
    assert [[token["id"] for token in text] for text in tokens] == prepared.ids
    specials = set(served_model.tokenizer.all_special_ids)
    bare = post(served, "/tokenize", {"inputs": TEXTS, "prompt_name": "query", "add_special_tokens": False}).json()
    assert [[token["id"] for token in text] for text in bare] == [
        [token for token in ids if token not in specials] for ids in prepared.ids]
    assert all(token["special"] == (token["id"] in specials) for text in tokens for token in text)
    assert tokens[0][-1]["text"] == served_model.tokenizer.decode([prepared.ids[0][-1]])


def test_tei_rerank_and_llamaindex_tei_reranker_order_as_the_library(served, served_model):
    expected = expected_ranking(served_model)
    answer = post(served, "/rerank", {"query": QUERY, "texts": DOCUMENTS, "return_text": True, "raw_scores": False})
    assert [item["index"] for item in answer.json()] == [index for index, _ in expected]
    assert close([item["score"] for item in answer.json()], [score for _, score in expected])
    assert [item["text"] for item in answer.json()] == [DOCUMENTS[index] for index, _ in expected]
    assert "text" not in post(served, "/rerank", {"query": QUERY, "texts": DOCUMENTS}).json()[0]
    pytest.importorskip("llama_index.postprocessor.tei_rerank")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    reranker = TextEmbeddingInference(base_url=served.url, top_n=3, auth_token=f"Bearer {KEY}")  # sent as is
    nodes = reranker.postprocess_nodes([NodeWithScore(node=TextNode(text=text), score=0.0) for text in DOCUMENTS],
                                       QueryBundle(QUERY))
    assert [node.text for node in nodes] == [DOCUMENTS[index] for index, _ in expected[:3]]
    assert close([node.score for node in nodes], [score for _, score in expected[:3]])


# ------------------------------------------------------------------------------------------------- rerank, score


def test_cohere_clients_rerank_as_the_library(served, served_model):
    cohere = pytest.importorskip("cohere")
    expected = expected_ranking(served_model)
    v2 = cohere.ClientV2(api_key=KEY, base_url=served.url).rerank(model=NAME, query=QUERY, documents=DOCUMENTS)
    assert [hit.index for hit in v2.results] == [index for index, _ in expected]
    assert close([hit.relevance_score for hit in v2.results], [score for _, score in expected])
    top = cohere.ClientV2(api_key=KEY, base_url=served.url).rerank(model=NAME, query=QUERY, documents=DOCUMENTS,
                                                                  top_n=2, max_tokens_per_doc=512)
    assert [hit.index for hit in top.results] == [index for index, _ in expected[:2]]
    v1 = cohere.Client(api_key=KEY, base_url=served.url).rerank(model=NAME, query=QUERY, documents=DOCUMENTS,
                                                              top_n=4, return_documents=True)
    assert [(hit.index, hit.document.text) for hit in v1.results] == [(i, DOCUMENTS[i]) for i, _ in expected[:4]]
    # an alias binds the query's instruction; documents are always the document side
    refuted = expected_ranking(served_model, instruction=REFUTE)
    aliased = cohere.ClientV2(api_key=KEY, base_url=served.url).rerank(model=f"{NAME}-refute", query=QUERY,
                                                                      documents=DOCUMENTS)
    assert [hit.index for hit in aliased.results] == [index for index, _ in refuted]
    assert close([hit.relevance_score for hit in aliased.results], [score for _, score in refuted])
    # Cohere cuts long documents unless told not to; so does genvec, whatever serve.truncate says ("error" here)
    assert CONFIG.truncate == "error"
    documents = [*DOCUMENTS[:3], "glacier " * (inference.text_limit(served_model) + 50)]
    with pytest.warns(UserWarning, match="cut"):
        library = served_model.rerank(QUERY, documents)
    cut = cohere.ClientV2(api_key=KEY, base_url=served.url).rerank(model=NAME, query=QUERY, documents=documents)
    assert [(hit.index, round(hit.relevance_score, 5)) for hit in cut.results] == [
        (hit.index, round(hit.score, 5)) for hit in library]


def test_langchain_cohere_rerank_orders_documents_as_the_library(served, served_model):
    pytest.importorskip("langchain_cohere")
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document

    expected = expected_ranking(served_model)
    reranker = CohereRerank(model=NAME, base_url=served.url, cohere_api_key=KEY, top_n=3)
    ranked = reranker.compress_documents([Document(page_content=text) for text in DOCUMENTS], QUERY)
    assert [document.page_content for document in ranked] == [DOCUMENTS[index] for index, _ in expected[:3]]
    assert close([document.metadata["relevance_score"] for document in ranked], [score for _, score in expected[:3]])


def test_jina_style_objects_and_return_documents_on_v1_rerank(served, served_model):
    expected = expected_ranking(served_model)
    answer = post(served, "/v1/rerank", {"model": NAME, "query": QUERY, "documents": [{"text": t} for t in DOCUMENTS],
                                         "top_n": 2, "return_documents": False}).json()
    assert [item["index"] for item in answer["results"]] == [index for index, _ in expected[:2]]
    assert "document" not in answer["results"][0] and answer["usage"]["total_tokens"] > 0
    bare = post(served, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS}).json()
    assert [set(item) for item in bare["results"]] == [{"index", "relevance_score"}] * len(DOCUMENTS)  # v2: no text
    returned = post(served, "/v2/rerank", {"query": QUERY, "documents": DOCUMENTS, "return_documents": True}).json()
    assert [item["document"]["text"] for item in returned["results"]] == [DOCUMENTS[i] for i, _ in expected]


def test_v1_score_is_the_cosine_of_query_and_document_sides(served, served_model):
    expected = cosines(served_model, QUERY, DOCUMENTS)
    for path in ("/v1/score", "/score"):
        answer = post(served, path, {"model": NAME, "text_1": QUERY, "text_2": DOCUMENTS}).json()
        assert [item["index"] for item in answer["data"]] == list(range(len(DOCUMENTS)))
        assert close([item["score"] for item in answer["data"]], expected), path
    long_text = "glacier " * (inference.text_limit(served_model) + 50)
    refused = post(served, "/v1/score", {"text_1": QUERY, "text_2": [long_text]})  # vLLM refuses too, unless...
    assert refused.status_code == 422 and refused.json()["error"]["param"] == "text_2"
    cut = post(served, "/v1/score", {"text_1": QUERY, "text_2": [long_text], "truncate_prompt_tokens": -1})
    with pytest.warns(UserWarning, match="cut"):
        assert close([cut.json()["data"][0]["score"]], cosines(served_model, QUERY, [long_text]))
    pairs = post(served, "/v1/score", {"text_1": DOCUMENTS[:2], "text_2": DOCUMENTS[2:4]}).json()  # one per text_2
    assert close([item["score"] for item in pairs["data"]],
                 [cosines(served_model, DOCUMENTS[i], [DOCUMENTS[i + 2]])[0] for i in range(2)])


# ------------------------------------------------------------------------------------------------- bad requests


def bad_requests(model) -> list[tuple[str, str, object, dict, int]]:
    """(name, path, body (bytes or JSON), headers, expected status) for every new route and the aliases."""
    long_text = "river " * (inference.text_limit(model) + 50)
    heavy = ["river " * inference.text_limit(model)] * MAX_DOCUMENTS  # more tokens than MAX_RERANK_TOKENS
    assert inference.text_limit(model) * MAX_DOCUMENTS > MAX_RERANK_TOKENS
    none = {}  # no Authorization header
    cases = [
        # TEI /embed: 422 for a client's mistake
        ("embed: malformed JSON", "/embed", b'{"inputs": ', AUTH, 422),
        ("embed: missing inputs", "/embed", {"normalize": True}, AUTH, 422),
        ("embed: inputs a number", "/embed", {"inputs": 3}, AUTH, 422),
        ("embed: empty list", "/embed", {"inputs": []}, AUTH, 422),
        ("embed: unknown prompt_name", "/embed", {"inputs": "x", "prompt_name": "summarize"}, AUTH, 422),
        ("embed: normalize a string", "/embed", {"inputs": "x", "normalize": "yes"}, AUTH, 422),
        ("embed: truncation from the left", "/embed", {"inputs": "x", "truncation_direction": "Left"}, AUTH, 422),
        ("embed: other dimensions", "/embed", {"inputs": "x", "dimensions": 8}, AUTH, 422),
        ("embed: unknown field", "/embed", {"inputs": "x", "model": NAME}, AUTH, 422),
        ("embed: too long, truncate false", "/embed", {"inputs": long_text, "truncate": False}, AUTH, 422),
        ("embed: no key", "/embed", {"inputs": "x"}, none, 401),
        ("embed: text/plain", "/embed", {"inputs": "x"}, {**AUTH, "Content-Type": "text/plain"}, 415),
        # TEI /tokenize
        ("tokenize: missing inputs", "/tokenize", {}, AUTH, 422),
        ("tokenize: token ids", "/tokenize", {"inputs": [101, 102]}, AUTH, 422),
        ("tokenize: blank text", "/tokenize", {"inputs": ["ok", " "]}, AUTH, 422),
        ("tokenize: add_special_tokens a number", "/tokenize", {"inputs": "x", "add_special_tokens": 0}, AUTH, 422),
        ("tokenize: unknown prompt_name", "/tokenize", {"inputs": "x", "prompt_name": "nope"}, AUTH, 422),
        ("tokenize: unknown field", "/tokenize", {"inputs": "x", "truncate": True}, AUTH, 422),
        ("tokenize: not an object", "/tokenize", ["x"], AUTH, 422),
        # TEI /rerank
        ("tei rerank: missing query", "/rerank", {"texts": ["a"]}, AUTH, 422),
        ("tei rerank: blank query", "/rerank", {"query": " ", "texts": ["a"]}, AUTH, 422),
        ("tei rerank: texts a string", "/rerank", {"query": "q", "texts": "a"}, AUTH, 422),
        ("tei rerank: no texts", "/rerank", {"query": "q", "texts": []}, AUTH, 422),
        ("tei rerank: Cohere's documents field", "/rerank", {"query": "q", "documents": ["a"]}, AUTH, 422),
        ("tei rerank: return_text a string", "/rerank", {"query": "q", "texts": ["a"], "return_text": "yes"}, AUTH,
         422),
        ("tei rerank: too many texts", "/rerank", {"query": "q", "texts": ["a"] * (MAX_DOCUMENTS + 1)}, AUTH, 422),
        ("tei rerank: too many tokens", "/rerank", {"query": "q", "texts": heavy}, AUTH, 422),
        # Cohere / Jina /v1/rerank
        ("v1 rerank: missing documents", "/v1/rerank", {"query": "q"}, AUTH, 400),
        ("v1 rerank: object without text", "/v1/rerank", {"query": "q", "documents": [{"title": "a"}]}, AUTH, 400),
        ("v1 rerank: top_n 0", "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, AUTH, 400),
        ("v1 rerank: top_n a string", "/v1/rerank", {"query": "q", "documents": ["a"], "top_n": "3"}, AUTH, 400),
        ("v1 rerank: max_tokens_per_doc 0", "/v1/rerank", {"query": "q", "documents": ["a"], "max_tokens_per_doc": 0},
         AUTH, 400),
        ("v1 rerank: alias typo", "/v1/rerank", {"model": f"{NAME}-refuet", "query": "q", "documents": ["a"]}, AUTH,
         404),
        ("v1 rerank: alias against input_type", "/v1/rerank",
         {"model": f"{NAME}-refute", "query": "q", "documents": ["a"], "input_type": "query"}, AUTH, 400),
        ("v1 rerank: too many documents", "/v1/rerank", {"query": "q", "documents": ["a"] * (MAX_DOCUMENTS + 1)},
         AUTH, 422),
        ("v1 rerank: too many tokens", "/v1/rerank", {"query": "q", "documents": heavy}, AUTH, 422),
        ("v1 rerank: too long, truncate false", "/v1/rerank", {"query": "q", "documents": [long_text],
                                                               "truncate": False}, AUTH, 422),
        ("v1 rerank: no key", "/v1/rerank", {"query": "q", "documents": ["a"]}, none, 401),
        # /v2/rerank
        ("v2 rerank: query a list", "/v2/rerank", {"query": ["q"], "documents": ["a"]}, AUTH, 400),
        ("v2 rerank: documents a string", "/v2/rerank", {"query": "q", "documents": "a"}, AUTH, 400),
        ("v2 rerank: a number among documents", "/v2/rerank", {"query": "q", "documents": ["a", 2]}, AUTH, 400),
        ("v2 rerank: return_documents a string", "/v2/rerank",
         {"query": "q", "documents": ["a"], "return_documents": "no"}, AUTH, 400),
        ("v2 rerank: unknown field", "/v2/rerank", {"query": "q", "documents": ["a"], "texts": ["a"]}, AUTH, 400),
        ("v2 rerank: empty documents", "/v2/rerank", {"query": "q", "documents": []}, AUTH, 400),
        # vLLM /v1/score
        ("score: missing text_1", "/v1/score", {"text_2": ["a"]}, AUTH, 400),
        ("score: uneven lists", "/v1/score", {"text_1": ["a", "b"], "text_2": ["a", "b", "c"]}, AUTH, 400),
        ("score: empty text_2", "/v1/score", {"text_1": "a", "text_2": []}, AUTH, 400),
        ("score: numbers", "/v1/score", {"text_1": "a", "text_2": [1, 2]}, AUTH, 400),
        ("score: unknown input_type", "/v1/score", {"text_1": "a", "text_2": "b", "input_type": "clustering"}, AUTH,
         400),
        ("score: truncate_prompt_tokens below the limit", "/v1/score",
         {"text_1": "a", "text_2": "b", "truncate_prompt_tokens": 8}, AUTH, 400),
        ("score: unknown field", "/v1/score", {"text_1": "a", "text_2": "b", "query": "a"}, AUTH, 400),
        ("score: too long, truncate false", "/score", {"text_1": "a", "text_2": long_text, "truncate": False}, AUTH,
         422),
        # Ollama /api/embed
        ("ollama: missing model", "/api/embed", {"input": "x"}, AUTH, 400),
        ("ollama: unknown model", "/api/embed", {"model": "all-minilm", "input": "x"}, AUTH, 404),
        ("ollama: missing input", "/api/embed", {"model": NAME}, AUTH, 400),
        ("ollama: empty input", "/api/embed", {"model": NAME, "input": []}, AUTH, 400),
        ("ollama: other dimensions", "/api/embed", {"model": NAME, "input": "x", "dimensions": 4}, AUTH, 400),
        ("ollama: options a string", "/api/embed", {"model": NAME, "input": "x", "options": "fast"}, AUTH, 400),
        ("ollama: truncate a string", "/api/embed", {"model": NAME, "input": "x", "truncate": "false"}, AUTH, 400),
        ("ollama: legacy prompt field", "/api/embed", {"model": NAME, "prompt": "x"}, AUTH, 400),
        ("ollama: too long, truncate false", "/api/embed", {"model": NAME, "input": long_text, "truncate": False},
         AUTH, 422),
        ("ollama: malformed JSON", "/api/embed", b"{", AUTH, 400),
        ("ollama: no key", "/api/embed", {"model": NAME, "input": "x"}, none, 401),
        # /v1/embeddings through aliases
        ("alias typo", "/v1/embeddings", {"model": f"{NAME}-documnet", "input": "x"}, AUTH, 404),
        ("alias against input_type", "/v1/embeddings", {"model": f"{NAME}-query", "input": "x",
                                                        "input_type": "search_document"}, AUTH, 400),
        ("alias against instruction", "/v1/embeddings", {"model": f"{NAME}-document", "input": "x",
                                                         "instruction": REFUTE}, AUTH, 400),
        ("alias against prompt_name", "/v1/embeddings", {"model": f"{NAME}-refute", "input": "x",
                                                         "prompt_name": "query"}, AUTH, 400),
        ("unknown prompt_name", "/v1/embeddings", {"model": NAME, "input": "x", "prompt_name": "arguana"}, AUTH, 400),
        ("prompt_name a number", "/v1/embeddings", {"input": "x", "prompt_name": 3}, AUTH, 400),
    ]
    return cases


def test_bad_requests_get_their_dialects_4xx_in_its_shape_and_the_server_serves_on(served, served_model):
    cases = bad_requests(served_model)
    for route in ("/embed", "/tokenize", "/rerank", "/v1/rerank", "/v2/rerank", "/api/embed", "/v1/embeddings"):
        assert sum(path == route for _, path, *_ in cases) >= 5, route
    assert sum(path in ("/v1/score", "/score") for _, path, *_ in cases) >= 5
    before = _server_errors(httpx.get(served.url + "/metrics").text)
    for name, path, body, headers, status in cases:
        sent = {"Content-Type": "application/json", **headers}
        response = httpx.post(served.url + path, content=body if isinstance(body, bytes) else json.dumps(body),
                              headers=sent, timeout=60)
        assert response.status_code == status, (name, response.status_code, response.text[:300])
        assert response.headers["content-type"] == "application/json", name
        error = response.json()
        if path in ("/embed", "/tokenize", "/rerank"):  # TEI's ErrorResponse
            kind = "Unauthorized" if status == 401 else "Validation"
            assert set(error) == {"error", "error_type"} and error["error_type"] == kind, (name, error)
            assert isinstance(error["error"], str) and error["error"], name
        elif path == "/api/embed":  # Ollama's
            assert set(error) == {"error"} and isinstance(error["error"], str) and error["error"], (name, error)
        else:  # OpenAI's, which Cohere's, Jina's and vLLM's clients read
            assert set(error["error"]) == {"message", "type", "param", "code"} and error["error"]["message"], name
    metrics = httpx.get(served.url + "/metrics").text
    assert _server_errors(metrics) == before
    assert post(served, "/embed", {"inputs": "still serving"}).status_code == 200
    assert post(served, "/v1/rerank", {"query": "q", "documents": ["still", "serving"]}).status_code == 200
    assert post(served, "/api/embed", {"model": NAME, "input": "still serving"}).status_code == 200


def test_metrics_count_requests_per_new_route(served):
    def counts() -> dict:
        metrics = httpx.get(served.url + "/metrics").text
        return {(route, status): _count(metrics, route, status) for route, status in expected}

    calls = [("/embed", {"inputs": "x"}), ("/embed", {"inputs": []}), ("/tokenize", {"inputs": "x"}),
             ("/rerank", {"query": "q", "texts": ["a", "b"]}), ("/v1/rerank", {"query": "q", "documents": ["a"]}),
             ("/v2/rerank", {"query": "q", "documents": ["a"]}), ("/v1/score", {"text_1": "q", "text_2": "a"}),
             ("/score", {"text_1": "q", "text_2": "a"}), ("/api/embed", {"model": NAME, "input": "x"}),
             ("/api/embed", {"model": "other", "input": "x"})]
    expected = {("/embed", 200): 1, ("/embed", 422): 1, ("/tokenize", 200): 1, ("/rerank", 200): 1,
                ("/v1/rerank", 200): 1, ("/v2/rerank", 200): 1, ("/v1/score", 200): 1, ("/score", 200): 1,
                ("/api/embed", 200): 1, ("/api/embed", 404): 1, ("/api/tags", 200): 1, ("/api/version", 200): 1}
    before = counts()
    for path, body in calls:
        post(served, path, body)
    for path in ("/api/tags", "/api/version"):
        httpx.get(served.url + path, headers=AUTH)
    after = counts()
    assert {key: after[key] - before[key] for key in expected} == expected
