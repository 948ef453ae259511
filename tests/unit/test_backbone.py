"""Hub models are pinned to the commit their revision points to: backbones (recorded by models, checkpoints and
response files) and teachers (named by it, so target stores never mix two versions).

The hub cannot be reached here, so the tests fill an offline Hugging Face cache (the layout `from_pretrained` and
`huggingface_hub` read under `HF_HUB_OFFLINE=1`) with the tiny Qwen3 backbone as repository `genvec-test/tiny`.
"""

import dataclasses
import json
import shutil

import huggingface_hub.constants
import numpy as np
import pytest

import genvec
from genvec import GenVecModel
from genvec import backbone as backbones
from genvec.config import DataConfig, ModelConfig, TeacherConfig
from genvec.data.responses import generate_responses
from genvec.errors import InputError
from genvec.targets import TargetStore, compute_targets
from genvec.teacher import LLM2VecTeacher, load_teacher, teacher_name
from genvec.testing import save_lora_adapter, save_tiny_backbone

REPO = "genvec-test/tiny"
QUERIES = ["Where do polar bears live?", "What is a vector?", "Name three cities by a river.", "Why is ice white?",
           "Train a model.", "How do rivers form?", "What is the first question?"]
GREEDY = DataConfig(max_new_tokens=6, decoding="greedy", generation_batch_size=3)


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """The cache folder of `genvec-test/tiny` holding two commits with different weights; `main` names the first."""
    folder = tmp_path / "hub" / "models--genvec-test--tiny"
    commits = ("1" * 40, "2" * 40)
    for seed, commit in enumerate(commits):
        save_tiny_backbone(folder / "snapshots" / commit, "qwen3", seed=seed)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commits[0])
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return folder, commits


def move_main(folder, commit):
    """What a push to the repository does to the cache's view of the default branch."""
    (folder / "refs" / "main").write_text(commit)


def tiny_model(revision=None) -> GenVecModel:
    return GenVecModel.from_backbone(REPO, revision=revision, num_special_tokens=4, num_compression_tokens=2,
                                     embedding_dim=16, dtype="fp32", device="cpu")


def test_revisions_resolve_to_commits_and_directories_stay_as_given(hub_cache):
    folder, (first, second) = hub_cache
    assert backbones.resolve_revision(REPO) == first
    assert backbones.resolve_revision(REPO, "main") == first
    assert backbones.resolve_revision(REPO, second) == second  # a commit is already pinned
    assert backbones.resolve_revision(str(folder / "snapshots" / first)) is None  # a directory has no commit
    assert backbones.resolve_revision("genvec-test/not-cached", "v1") == "v1"  # unresolvable: the load will say why


def test_a_saved_model_reloads_the_commit_it_was_built_on(hub_cache, tmp_path):
    folder, (first, second) = hub_cache
    model = tiny_model()
    assert model.config.model.revision == first
    model.save_pretrained(tmp_path / "saved")
    assert json.loads((tmp_path / "saved" / "genvec_config.json").read_text())["backbone"]["revision"] == first
    texts = QUERIES[:2]
    expected = model.encode(texts)
    move_main(folder, second)
    assert not np.allclose(tiny_model().encode(texts), expected)  # the new head of main has other weights
    reloaded = genvec.load_model(tmp_path / "saved", device="cpu")
    assert reloaded.config.model.revision == first
    np.testing.assert_allclose(reloaded.encode(texts), expected, atol=1e-6)


def test_responses_resume_across_entry_points_and_refuse_a_moved_repository(hub_cache, tmp_path):
    folder, (first, second) = hub_cache
    # A loaded model, as `genvec train` passes it.
    generate_responses(QUERIES, tmp_path / "full.jsonl", tiny_model().loaded_backbone, GREEDY)
    assert json.loads((tmp_path / "full.meta.json").read_text())["backbone"]["revision"] == first

    def interrupted_copy():
        lines = (tmp_path / "full.jsonl").read_text().splitlines(keepends=True)
        (tmp_path / "part.jsonl").write_text("".join(lines[:3]))
        shutil.copy(tmp_path / "full.meta.json", tmp_path / "part.meta.json")

    interrupted_copy()
    summary = generate_responses(QUERIES, tmp_path / "part.jsonl", REPO, GREEDY)  # a hub id, as the CLI
    assert (summary.resumed, summary.generated) == (3, 4)
    assert (tmp_path / "part.jsonl").read_bytes() == (tmp_path / "full.jsonl").read_bytes()

    move_main(folder, second)
    interrupted_copy()
    with pytest.raises(InputError, match=f"backbone revision: recorded '{first}', now '{second}'"):
        generate_responses(QUERIES, tmp_path / "part.jsonl", REPO, GREEDY)
    summary = generate_responses(QUERIES, tmp_path / "part.jsonl", ModelConfig(backbone=REPO, revision=first), GREEDY)
    assert (summary.resumed, summary.generated) == (3, 4)
    assert (tmp_path / "part.jsonl").read_bytes() == (tmp_path / "full.jsonl").read_bytes()


def test_a_hub_teacher_is_named_by_its_commit_so_a_moved_one_reuses_no_vectors(hub_cache, tmp_path):
    folder, (first, second) = hub_cache
    config = TeacherConfig(name=REPO, kind="hf-encoder", pooling="mean", device="cpu")
    assert teacher_name(config) == load_teacher(config).name == f"{REPO}@{first}"
    assert compute_targets(QUERIES, config, tmp_path / "targets").embedded == len(QUERIES)
    move_main(folder, second)
    assert teacher_name(config) == f"{REPO}@{second}"
    with pytest.raises(InputError, match=f"holds teacher '{REPO}@{first}', not '{REPO}@{second}'"):
        compute_targets(QUERIES, config, tmp_path / "targets")
    assert compute_targets(QUERIES, dataclasses.replace(config, revision=first), tmp_path / "targets").embedded == 0


ADAPTER = "genvec-test/adapter"


@pytest.fixture
def hub_adapter(hub_cache, tmp_path):
    """The cache folder of `genvec-test/adapter`, a LoRA adapter on `genvec-test/tiny` (as LLM2Vec adapters name
    their base) at two commits with different weights; `main` names the first."""
    folder, (first, _) = hub_cache
    adapter_folder = tmp_path / "hub" / "models--genvec-test--adapter"
    commits = ("a" * 40, "b" * 40)
    for seed, commit in enumerate(commits, start=1):
        save_lora_adapter(folder / "snapshots" / first, adapter_folder / "snapshots" / commit, seed=seed,
                          base_model_name_or_path=REPO)
    (adapter_folder / "refs").mkdir()
    move_main(adapter_folder, commits[0])
    return adapter_folder, commits


def test_every_model_of_an_llm2vec_teacher_is_pinned(hub_cache, hub_adapter, tmp_path):
    """Base model and adapters, followed or given, are loaded at the commit their branch points to and named by it,
    so a store never mixes vectors from before and after any of them moved on."""
    folder, (first, second) = hub_cache
    adapter_folder, adapter_commits = hub_adapter
    given = TeacherConfig(name=REPO, kind="llm2vec", adapters=[ADAPTER], device="cpu")
    followed = TeacherConfig(name=ADAPTER, kind="llm2vec", device="cpu")  # its base is followed to REPO
    pinned = f"{REPO}@{first}+{ADAPTER}@{adapter_commits[0]}"
    teacher = load_teacher(followed)
    assert teacher_name(given) == teacher_name(followed) == teacher.name == load_teacher(given).name == pinned
    vectors = teacher.embed(QUERIES)
    assert compute_targets(QUERIES, followed, tmp_path / "targets").embedded == len(QUERIES)

    move_main(adapter_folder, adapter_commits[1])  # the adapter moved on
    assert teacher_name(followed) == f"{REPO}@{first}+{ADAPTER}@{adapter_commits[1]}"
    assert np.abs(load_teacher(followed).embed(QUERIES) - vectors).max() > 1e-3  # other weights, other vectors
    with pytest.raises(InputError, match="holds teacher"):
        compute_targets(QUERIES, followed, tmp_path / "targets")
    move_main(adapter_folder, adapter_commits[0])
    move_main(folder, second)  # the base model moved on
    assert teacher_name(given) == f"{REPO}@{second}+{ADAPTER}@{adapter_commits[0]}"
    # The weights are those of the named commits: the same as the two snapshots merged from their directories.
    snapshots = LLM2VecTeacher(folder / "snapshots" / second, adapters=[adapter_folder / "snapshots" /
                                                                       adapter_commits[0]], device="cpu")
    np.testing.assert_allclose(load_teacher(given).embed(QUERIES), snapshots.embed(QUERIES), atol=1e-6)
    with pytest.raises(InputError, match="holds teacher"):
        compute_targets(QUERIES, given, tmp_path / "targets")


def test_a_teacher_that_moves_between_the_check_and_the_load_is_loaded_as_checked(hub_cache, hub_adapter, tmp_path,
                                                                                monkeypatch):
    """The commits are resolved once: a push that lands while the run starts changes neither the name the store is
    checked and keyed with nor the weights that compute its vectors."""
    import genvec.targets

    folder, (first, second) = hub_cache
    _, adapter_commits = hub_adapter

    def load_after_a_push(config):
        move_main(folder, second)  # the adapter's base gets a push while the run starts
        return load_teacher(config)

    monkeypatch.setattr(genvec.targets, "load_teacher", load_after_a_push)
    config = TeacherConfig(name=ADAPTER, kind="llm2vec", device="cpu")
    assert compute_targets(QUERIES, config, tmp_path / "targets").embedded == len(QUERIES)
    store = TargetStore.open(tmp_path / "targets")
    assert store.teacher_name == f"{REPO}@{first}+{ADAPTER}@{adapter_commits[0]}"
    move_main(folder, first)
    np.testing.assert_allclose(store.lookup(QUERIES), load_teacher(config).embed(QUERIES), atol=1e-6)
