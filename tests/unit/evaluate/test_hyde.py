"""The HyDE baselines of `genvec evaluate`: generate with the checkpoint's settings, embed with its teacher, scored
by mteb as a hand computation says; responses cached and resumed; hyde-target reads genvec's instructions; every
method of a task scored on the same samples."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

pytest.importorskip("mteb")

from genvec import GenVecModel
from genvec.config import DataConfig, EvalConfig, TeacherConfig
from genvec.data import engines
from genvec.data.prompts import PromptBuilder
from genvec.errors import InputError
from genvec.evaluate.hyde import RESPONSES_FILE, HydeBaseline, Responder, ResponseCache, parse_hyde, response_settings
from genvec.evaluate.mteb_encoder import baseline_encoder
from genvec.evaluate.run import evaluate_model, score_method, select_tasks
from genvec.teacher import LLM2VecTeacher

DOCUMENTS = ["Polar bears live on the Arctic sea ice.", "Rivers form where rain gathers.",
             "A vector has a length and a direction.", "Paris is the capital of France."]
QUERIES = ["where do polar bears live?", "how do rivers form?", "what is a vector?"]
PAIRS = [("A man plays.", "Someone plays.", 4.5), ("A dog runs.", "Stocks fell.", 0.5), ("Rain falls.", "It rains.", 4)]
QUERY_INSTRUCTION = "Generate a passage that answers this question:"
DOCUMENT_INSTRUCTION = "Summarize the following passage:"
STS_INSTRUCTION = "Generate text that is semantically similar to this text:"
MAX_NEW_TOKENS = 5


class Killed(Exception):
    """What the test's generation raises to stand for a kill."""


def write_benchmark(root, sts: bool = False):
    (root / "R").mkdir(parents=True)
    (root / "R" / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "text": text}) + "\n" for i, text in enumerate(DOCUMENTS)))
    (root / "R" / "queries.jsonl").write_text("".join(
        json.dumps({"_id": f"q{i}", "text": text}) + "\n" for i, text in enumerate(QUERIES)))
    (root / "R" / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(len(QUERIES))))
    instructions = f'R:\n  query: "{QUERY_INSTRUCTION}"\n  document: "{DOCUMENT_INSTRUCTION}"\n'
    if sts:
        (root / "S").mkdir()
        (root / "S" / "sts.tsv").write_text("sentence1\tsentence2\tscore\n" + "".join(
            f"{a}\t{b}\t{score}\n" for a, b, score in PAIRS))
        instructions += f'S: "{STS_INSTRUCTION}"\n'
    (root / "instructions.yaml").write_text(instructions)
    return root


@pytest.fixture
def model(backbone_dirs):
    """A tiny Qwen3 model as a trained checkpoint records it: greedy responses of MAX_NEW_TOKENS, an LLM2Vec teacher
    (the tiny Llama, bidirectional, mean-pooled, D = 64) and embeddings of the teacher's size."""
    torch.manual_seed(0)
    model = GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                      embedding_dim=64, dtype="fp32", device="cpu")
    model.config = dataclasses.replace(
        model.config, data=DataConfig(max_new_tokens=MAX_NEW_TOKENS, decoding="greedy", prompt_max_length=256),
        teacher=TeacherConfig(name=str(backbone_dirs["llama"]), kind="llm2vec", device="cpu", dtype="fp32"))
    return model


def evaluate(model, bench, output, baselines, **eval_options):
    tasks, table = select_tasks(local=bench)
    evaluate_model(model, tasks, output, instructions=table, baselines=baselines, show_progress=False,
                   config=EvalConfig(hyde_batch_size=1, **eval_options))
    return json.loads((output / "scores.json").read_text())


def respond(model, text: str) -> str:
    """The backbone's greedy response to `text` by hand: one user turn of its chat template (thinking off), plain
    `generate` with the checkpoint's max_new_tokens, cut at its first end-of-sequence token."""
    tokenizer, backbone = model.tokenizer, model.backbone
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                           tokenize=False, enable_thinking=False)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    eos = list(backbone.generation_config.eos_token_id)
    with torch.no_grad():
        output = backbone.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                   max_new_tokens=MAX_NEW_TOKENS, eos_token_id=eos,
                                   pad_token_id=tokenizer.pad_token_id)
    tokens = output[0, ids.shape[1]:].tolist()
    tokens = tokens[:next((i for i, token in enumerate(tokens) if token in eos), len(tokens))]
    return tokenizer.decode(tokens, skip_special_tokens=True).strip()


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def ndcg_at_10(similarity: np.ndarray) -> float:
    """nDCG@10 with query i's one relevant document i and binary gains, by hand."""
    ranks = [int((row > row[i]).sum()) + 1 for i, row in enumerate(similarity)]
    return float(np.mean([1 / np.log2(rank + 1) if rank <= 10 else 0.0 for rank in ranks]))


def test_hyde_is_generate_then_teacher_then_ndcg_by_hand(model, backbone_dirs, tmp_path):
    scores = evaluate(model, write_benchmark(tmp_path / "bench"), tmp_path / "out", ["hyde"])
    teacher = LLM2VecTeacher(backbone_dirs["llama"], device="cpu", dtype="fp32")
    responses = [respond(model, query) for query in QUERIES]
    expected = ndcg_at_10(unit(teacher.embed(responses)) @ unit(teacher.embed(DOCUMENTS)).T)
    assert scores["methods"]["baseline/hyde"]["R"]["main_score"] == pytest.approx(expected, abs=1e-5)
    cached = [json.loads(line) for line in (tmp_path / "out" / RESPONSES_FILE).read_text().splitlines()]
    assert sorted(record["response"] for record in cached) == sorted(responses)
    # the summary: each method's cost per query, and genvec's share of the HyDE ceiling
    genvec = scores["methods"]["genvec/model"]["R"]["main_score"]
    assert scores["share_of_hyde"]["baseline/hyde"]["R"] == pytest.approx(genvec / expected, rel=1e-4)
    assert set(scores["seconds_per_query"]) == {"genvec/model", "baseline/hyde"}
    assert all(method["R"] > 0 for method in scores["seconds_per_query"].values())
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Cost per query" in summary and "| genvec/model / baseline/hyde |" in summary


def test_hyde_target_reads_genvecs_instructions_and_reports_the_held_out_distillation_cosine(
        model, backbone_dirs, tmp_path, monkeypatch):
    prompted = []  # every text the backbone was asked to answer, before its chat template
    original = PromptBuilder.__call__
    monkeypatch.setattr(PromptBuilder, "__call__", lambda self, text: prompted.append(text) or original(self, text))
    scores = evaluate(model, write_benchmark(tmp_path / "bench", sts=True), tmp_path / "out", ["hyde", "hyde-target"])
    sentences = [text for a, b, _ in PAIRS for text in (a, b)]
    hyde = set(QUERIES) | set(sentences)  # the raw queries, and every text of the symmetric task
    target = ({f"{QUERY_INSTRUCTION} {query}" for query in QUERIES} | {f"{DOCUMENT_INSTRUCTION} {document}"
              for document in DOCUMENTS} | {f"{STS_INSTRUCTION} {sentence}" for sentence in sentences})
    assert set(prompted) == hyde | target
    # the held-out distillation cosine: genvec's embedding of each query against the teacher's of its response
    teacher = LLM2VecTeacher(backbone_dirs["llama"], device="cpu", dtype="fp32")
    targets = teacher.embed([respond(model, f"{QUERY_INSTRUCTION} {query}") for query in QUERIES])
    embeddings = model.encode(QUERIES, instruction=QUERY_INSTRUCTION)
    expected = float(np.mean((unit(embeddings) * unit(targets)).sum(axis=1)))
    assert scores["distillation_cosine"]["baseline/hyde-target"]["R"] == pytest.approx(expected, abs=1e-5)
    assert set(scores["distillation_cosine"]["baseline/hyde-target"]) == {"R", "S"}
    assert "distillation cosine (baseline/hyde-target)" in (tmp_path / "out" / "summary.md").read_text()


def test_a_killed_hyde_evaluation_resumes_without_generating_cached_responses(model, tmp_path, monkeypatch):
    bench, output = write_benchmark(tmp_path / "bench"), tmp_path / "out"
    original = engines.TransformersEngine.generate
    generated = []

    def generate(self, prompts, seeds, *, fail_after=None):
        if fail_after is not None and len(generated) >= fail_after:
            raise Killed("killed during generation")
        generated.extend(prompts)
        return original(self, prompts, seeds)

    monkeypatch.setattr(engines.TransformersEngine, "generate", lambda *a: generate(*a, fail_after=2))
    with pytest.raises(Exception) as caught:
        evaluate(model, bench, output, ["hyde"], hyde_max_new_tokens=3)
    assert any(isinstance(error, Killed) for error in _chain(caught.value))
    cache = output / RESPONSES_FILE
    assert len(cache.read_text().splitlines()) == 2  # the two batches (of one) done before the kill
    with open(cache, "a") as file:
        file.write('{"key": "torn')  # and a line the kill tore
    generated.clear()
    monkeypatch.setattr(engines.TransformersEngine, "generate", generate)
    resumed = evaluate(model, bench, output, ["hyde"], hyde_max_new_tokens=3)
    assert len(generated) == 1  # only the third query's response
    records = [json.loads(line) for line in cache.read_text().splitlines()]
    assert len(records) == 3 and max(record["response_tokens"] for record in records) == 3  # the override holds
    generated.clear()
    rescored = evaluate(model, bench, output, ["hyde"], hyde_max_new_tokens=3, similarity="dot")  # scored again
    assert generated == [] and rescored["similarity"] == "dot"
    fresh = evaluate(model, bench, tmp_path / "fresh", ["hyde"], hyde_max_new_tokens=3)
    assert resumed["methods"]["baseline/hyde"] == fresh["methods"]["baseline/hyde"]


def test_hyde_n_averages_the_teacher_embeddings_of_n_sampled_responses(model, backbone_dirs, tmp_path, monkeypatch):
    scores = evaluate(model, write_benchmark(tmp_path / "bench"), tmp_path / "out", ["hyde:2"], hyde_decoding="sample")
    settings = response_settings(model.config.data, EvalConfig(hyde_batch_size=1, hyde_decoding="sample"))
    monkeypatch.setattr(engines.TransformersEngine, "generate", None)  # every response must come from the cache
    responder = Responder(model, settings, ResponseCache(tmp_path / "out" / RESPONSES_FILE))
    records = responder.respond(QUERIES, 2)
    assert len(responder.cache.records) == 6
    assert any(first["response"] != second["response"] for first, second in records)
    teacher = LLM2VecTeacher(backbone_dirs["llama"], device="cpu", dtype="fp32")
    queries = np.stack([teacher.embed([record["response"] for record in row]).mean(axis=0) for row in records])
    expected = ndcg_at_10(unit(queries) @ unit(teacher.embed(DOCUMENTS)).T)
    assert scores["methods"]["baseline/hyde-2"]["R"]["main_score"] == pytest.approx(expected, abs=1e-5)


def test_every_method_of_a_task_is_scored_on_the_same_samples(tmp_path):
    root = tmp_path / "bench"
    (root / "C").mkdir(parents=True)
    (root / "C" / "clustering.jsonl").write_text("".join(
        json.dumps({"text": f"{topic} item {i}", "label": topic}) + "\n" for topic in ("a", "b", "c")
        for i in range(8)))
    (root / "K").mkdir()
    (root / "K" / "classification.jsonl").write_text("".join(
        json.dumps({"text": f"{topic} note {i}", "label": topic, "split": "train" if i < 10 else "test"}) + "\n"
        for topic in ("a", "b") for i in range(14)))
    tasks, _ = select_tasks(local=root)

    def encode(texts):  # the same vectors under two names: arbitrary, so bootstraps and draws change the scores
        seeds = [int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) for text in texts]
        return np.stack([np.random.default_rng(seed).normal(size=8) for seed in seeds]).astype(np.float32)

    first, second = (score_method(baseline_encoder(name, encode, embed_dim=8, revision="same"), tasks)
                     for name in ("baseline/one", "baseline/two"))
    assert first == second and set(first) == {"C", "K"}


def test_hyde_names_and_their_errors(model, qwen3_model, tmp_path):
    assert parse_hyde("hyde") == HydeBaseline() and parse_hyde("mean-pool") is None
    assert parse_hyde("hyde-target:3") == HydeBaseline(target=True, samples=3)
    assert HydeBaseline(samples=4).name == "baseline/hyde-4" and HydeBaseline(True).name == "baseline/hyde-target"
    for bad in ("hyde:0", "hyde:two", "hyde:"):
        with pytest.raises(InputError, match="whole number >= 1"):
            parse_hyde(bad)
    with pytest.raises(InputError, match="set eval.hyde_decoding to sample"):
        evaluate_model(model, [], tmp_path / "out", baselines=["hyde:2"], show_progress=False)
    qwen3_model.config = dataclasses.replace(qwen3_model.config, teacher=model.config.teacher)  # D = 16, not 64
    with pytest.raises(InputError, match="their sizes differ"):
        evaluate_model(qwen3_model, [], tmp_path / "out", baselines=["hyde-target"], show_progress=False)
    model.config = dataclasses.replace(model.config, teacher=TeacherConfig())
    with pytest.raises(InputError, match="names none"):
        evaluate_model(model, [], tmp_path / "out", baselines=["hyde"], show_progress=False)


def _chain(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__
