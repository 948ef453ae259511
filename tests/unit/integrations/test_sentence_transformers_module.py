"""The sentence-transformers module reads texts through the front door: sentence-transformers' `task` becomes the
model's side, a `prompt` replaces it, and an over-long text is cut with the library's warning."""

import numpy as np
import pytest

from genvec import inference

pytest.importorskip("sentence_transformers")

from genvec.integrations.sentence_transformers import GenVecModule


def test_the_task_is_the_side_and_a_prompt_replaces_it(qwen3_model):
    module = GenVecModule(qwen3_model)
    saved = qwen3_model.config.model.instructions
    assert module.preprocess(["a"], task="query")["genvec_inputs"].instruction == saved["query"]
    assert module.preprocess(["a"], task="document")["genvec_inputs"].instruction == saved["document"]
    assert module.preprocess(["a"], prompt="Say:", task="query")["genvec_inputs"].instruction == "Say:"
    assert module.preprocess(["a"])["genvec_inputs"].instruction is None
    assert module.max_seq_length == inference.text_limit(qwen3_model)


def test_forward_gives_the_library_vectors_and_cuts_as_the_library_does(qwen3_model):
    module = GenVecModule(qwen3_model)
    texts = ["polar bears", "ice " * (inference.text_limit(qwen3_model) + 5)]
    with pytest.warns(UserWarning, match="1 of 2 texts were longer than the model reads and were cut"):
        features = module.preprocess(texts, task="document")
    assert features["genvec_inputs"].cut == (1,)
    vectors = module.forward(features)["sentence_embedding"].numpy()
    with pytest.warns(UserWarning, match="were cut"):
        expected = qwen3_model.encode_document(texts)
    assert np.abs(vectors - expected).max() < 1e-5
