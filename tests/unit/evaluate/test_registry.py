"""The official releases in mteb's registry: metadata, the loader on a tiny official-layout release (no hub), and
moving `genvec evaluate`'s results into a `ResultCache` for submission."""

import json

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")

import genvec
from genvec.checkpoint.official import RELEASES
from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable
from genvec.evaluate.local import retrieval_task
from genvec.evaluate.registry import RELEASE_FACTS, export_results, load_release, register, release_metas
from genvec.testing import save_official_release

SMALL = "McGill-NLP/LLM2Vec-Gen-Qwen3-06B"
CORPUS = {"d0": ("", "Polar bears live on the Arctic sea ice."), "d1": ("", "Rivers form where rain gathers."),
          "d2": ("", "Bread is baked from flour and water.")}
QUERIES = {"q0": "Polar bears live in deserts.", "q1": "Rivers come from nowhere.", "q2": "Bread needs no flour."}
QRELS = {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}}


@pytest.fixture
def registry():
    """mteb's registry, restored after the test."""
    from mteb.models.model_implementations import MODEL_REGISTRY

    before = dict(MODEL_REGISTRY)
    yield MODEL_REGISTRY
    MODEL_REGISTRY.clear()
    MODEL_REGISTRY.update(before)


@pytest.fixture
def release(backbone_dirs, tmp_path):
    """A tiny release in the official layout, in a directory named as the hub release (genvec names results by it)."""
    return save_official_release(tmp_path / SMALL.split("/")[1], backbone_dirs["qwen3"])


def test_each_release_has_a_meta_in_the_form_mteb_asks_for(registry):
    assert not set(RELEASES) & set(registry)  # importing genvec's module registered nothing
    metas = release_metas()
    assert [meta.name for meta in metas] == list(RELEASES)
    dims = {meta.name: meta.embed_dim for meta in metas}
    assert dims == {SMALL: 1024, "McGill-NLP/LLM2Vec-Gen-Qwen3-17B": 2048, "McGill-NLP/LLM2Vec-Gen-Qwen3-4B": 2560,
                    "McGill-NLP/LLM2Vec-Gen-Qwen3-8B": 4096, "McGill-NLP/LLM2Vec-Gen-Qwen25-05B": 896}
    for meta in metas:
        facts = RELEASE_FACTS[meta.name]
        # The fields mteb's contribution guide fills: all known but the hub commit and the memory footprint.
        known = meta.to_dict()
        missing = sorted(key for key in ("loader", "languages", "open_weights", "release_date", "n_parameters",
                                         "embed_dim", "license", "max_tokens", "reference", "similarity_fn_name",
                                         "framework", "use_instructions", "public_training_code",
                                         "public_training_data", "training_datasets", "adapted_from", "citation")
                         if known[key] is None)
        assert missing == [] and meta.revision is None and meta.memory_usage_mb is None
        assert known["loader"] == "load_release" and json.dumps(known, default=str)  # as mteb writes model_meta.json
        assert meta.adapted_from == facts.base_model and meta.n_parameters > facts.backbone_parameters
        assert meta.similarity_fn_name.value == "cosine" and meta.use_instructions and meta.open_weights
        assert meta.training_datasets == set() and meta.is_zero_shot_on(["ArguAna", "SciFact"])
    assert metas[0].n_parameters < metas[1].n_parameters < metas[2].n_parameters < metas[3].n_parameters
    with pytest.raises(KeyError):
        mteb.get_model_meta(SMALL)
    register(revisions={SMALL: "abc123"})
    assert mteb.get_model_meta(SMALL).revision == "abc123"
    assert mteb.get_model_meta("McGill-NLP/LLM2Vec-Gen-Qwen3-8B").revision is None
    assert {meta.name for meta in mteb.get_model_metas()} >= set(RELEASES)
    with pytest.raises(InputError, match=r"revisions names \['McGill-NLP/LLM2Vec-Gen-Qwen3-0.6B'\], which are not "
                                         r"official LLM2Vec-Gen releases") as caught:
        release_metas(revisions={"McGill-NLP/LLM2Vec-Gen-Qwen3-0.6B": "abc"})
    assert caught.value.param == "revisions"


def test_get_model_builds_genvecs_encoder_with_the_papers_instructions(release, registry):
    register(paths={SMALL: release})
    encoder = mteb.get_model(SMALL, device="cpu")
    meta = encoder.mteb_model_meta
    assert (meta.name, meta.revision, meta.experiment_name) == (SMALL, None, None)  # a local copy is no experiment
    task = retrieval_task("ArguAna", CORPUS, QUERIES, QRELS)  # local data under a paper task's name
    result = mteb.evaluate(encoder, [task], cache=None, show_progress_bar=False, raise_error=True)
    paper = InstructionTable()
    assert sorted(encoder.calls) == [("ArguAna", "document", paper.instruction("ArguAna", "document")),
                                     ("ArguAna", "query", paper.instruction("ArguAna", "query"))]
    # The encoder's vectors are genvec's own model's: nDCG@10 by hand from load_model's embeddings, cosine ranking.
    model = genvec.load_model(release, device="cpu")
    queries = model.encode(list(QUERIES.values()), instruction=paper.instruction("ArguAna", "query"), normalize=True)
    documents = model.encode([text for _, text in CORPUS.values()], instruction=paper.instruction("ArguAna",
                                                                                                   "document"),
                             normalize=True)
    order = np.argsort(-(queries @ documents.T), axis=1, kind="stable")
    ranks = [int(np.where(order[q] == q)[0][0]) for q in range(len(QUERIES))]
    expected = float(np.mean([1 / np.log2(rank + 2) for rank in ranks]))
    assert result.task_results[0].scores["test"][0]["ndcg_at_10"] == pytest.approx(expected, abs=1e-5)
    # Through get_model's own keyword arguments (mteb then files the results as an experiment).
    assert mteb.get_model(SMALL, device="cpu", path=str(release)).mteb_model_meta.experiment_name is not None


def test_the_loader_refuses_what_a_release_cannot_be(release):
    with pytest.raises(InputError, match=r"embed_dim=99, but McGill-NLP/LLM2Vec-Gen-Qwen3-06B gives 16-dimensional "
                                         r"embeddings"):
        load_release(SMALL, path=release, device="cpu", embed_dim=99)
    with pytest.raises(InputError, match=r"model_name='someone/model' is not an official LLM2Vec-Gen release"):
        load_release("someone/model", path=release, device="cpu")
    encoder = load_release(SMALL, path=release, device="cpu", embed_dim=16)
    assert encoder.mteb_model_meta.name == SMALL and encoder.mteb_model_meta.embed_dim == 16


def arguana_stand_in():
    """mteb's ArguAna task (its metadata and dataset revision) holding a few local documents: the hub is not reached."""
    task = mteb.get_task("ArguAna")
    local = retrieval_task("ArguAna", CORPUS, QUERIES, QRELS)
    local.load_data()
    task.dataset, task.data_loaded = local.dataset, True
    return task


def test_genvec_evaluate_results_go_to_a_result_cache_under_the_release(release, registry, tmp_path):
    from genvec.evaluate.run import evaluate_model

    model = genvec.load_model(release, device="cpu")
    evaluated = evaluate_model(model, [arguana_stand_in()], tmp_path / "out", checkpoint=release, show_progress=False)
    [meta] = [meta for meta in register(revisions={SMALL: "abc123"}) if meta.name == SMALL]
    cache = mteb.ResultCache(tmp_path / "cache")
    written = export_results(tmp_path / "out", meta, cache)
    assert written == [tmp_path / "cache" / "results" / "McGill-NLP__LLM2Vec-Gen-Qwen3-06B" / "abc123" / "ArguAna.json"]
    assert mteb.TaskResult.from_disk(written[0]).get_score() == pytest.approx(evaluated.main_scores["ArguAna"])
    assert json.loads((written[0].parent / "model_meta.json").read_text())["name"] == SMALL
    assert cache.load_task_result("ArguAna", meta) is not None  # where submit_results looks
    # Without a revision mteb cannot submit; other instructions are not the registered model's.
    with pytest.raises(InputError, match=r"has no revision; mteb submits results by revision"):
        export_results(tmp_path / "out", meta.model_copy(update={"revision": None}), cache)
    table = tmp_path / "table.yaml"
    table.write_text('ArguAna: {query: "Say it again:", document: "Summarize the following passage:"}\n')
    evaluate_model(model, [arguana_stand_in()], tmp_path / "other", checkpoint=release,
                   instructions=InstructionTable.from_file(table), show_progress=False)
    with pytest.raises(InputError, match=r"1 result\(s\) under .* were not scored as McGill-NLP/LLM2Vec-Gen-Qwen3-06B "
                                         r"is registered: ArguAna: other instructions than the paper's"):
        export_results(tmp_path / "other", meta, cache)
    # A local task under an mteb task's name is not mteb's data.
    evaluate_model(model, [retrieval_task("ArguAna", CORPUS, QUERIES, QRELS)], tmp_path / "local", checkpoint=release,
                   show_progress=False)
    with pytest.raises(InputError, match=r"ArguAna: data local, not mteb's \(revision "):
        export_results(tmp_path / "local", meta, cache)
    with pytest.raises(InputError, match=r"holds no results; pass the output of one evaluation"):
        export_results(tmp_path / "nowhere", meta, cache)
