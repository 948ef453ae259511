"""Input-centric baselines an evaluation compares genvec with: the backbone's mean-pooled hidden states, and a
sentence-transformers model on the raw text.

An encoder is any `Callable[[list[str]], np.ndarray]` returning one row per text.
"""

from collections.abc import Callable

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from genvec.data.collate import batch_token_budget, length_batches
from genvec.pooling import pool_states

Encoder = Callable[[list[str]], np.ndarray]


def mean_pooled_encoder(
    backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, batch_size: int = 32
) -> Encoder:
    """The input-centric baseline of the same LM: final hidden states (after the final norm) averaged over the text's
    tokens, pads excluded. Texts are fed raw (no chat template, no instruction), as an encoder of the input sees them.
    Batched as `GenVecModel.encode` batches (similar lengths together, bounded in texts and padded tokens).
    """
    @torch.inference_mode()
    def encode(texts: list[str]) -> np.ndarray:
        device = backbone.get_input_embeddings().weight.device
        token_ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
        budget = batch_token_budget(device)
        embeddings = np.empty((len(texts), backbone.config.get_text_config().hidden_size), dtype=np.float32)
        for indices in length_batches([len(ids) for ids in token_ids], batch_size, budget):
            batch = tokenizer.pad({"input_ids": [token_ids[i] for i in indices]}, return_tensors="pt").to(device)
            hidden = backbone.base_model(**batch).last_hidden_state  # (B, L, H)
            embeddings[indices] = pool_states(hidden, batch["attention_mask"]).float().cpu().numpy()
        return embeddings

    return encode


def sentence_transformer_encoder(model) -> Encoder:
    """A sentence-transformers model on the raw text (the MiniLM baseline), L2-normalised."""
    return lambda texts: model.encode(texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)

