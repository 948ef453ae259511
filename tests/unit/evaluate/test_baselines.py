"""The input-centric baselines of an evaluation."""

import numpy as np
from transformers import AutoModelForCausalLM, AutoTokenizer

from genvec.evaluate.baselines import mean_pooled_encoder


def test_mean_pooling_excludes_pads(backbone_dirs):
    directory = backbone_dirs["qwen3"]
    backbone = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encode = mean_pooled_encoder(backbone, tokenizer)
    texts = ["the river", "a much longer text about the river and the city"]
    together = encode(texts)
    alone = np.concatenate([encode([text]) for text in texts])
    assert together.shape == (2, backbone.config.hidden_size)
    np.testing.assert_allclose(together, alone, atol=1e-4)
