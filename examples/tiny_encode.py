"""Encode a few texts with genvec on a tiny random backbone built in code (offline, CPU, seconds).

The backbone is random, so the similarities mean nothing yet; the run shows the whole path a real model takes:
`from_pretrained` loading, special tokens appended, compression states, embeddings, a checkpoint round trip.
"""

import tempfile
from pathlib import Path

import numpy as np
from transformers.utils import logging as transformers_logging

import genvec
from genvec.testing import save_tiny_backbone

TEXTS = ["Where do polar bears live?", "What is the habitat of the polar bear?", "How do I train a vector model?"]


def main() -> None:
    transformers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as directory:
        backbone = save_tiny_backbone(Path(directory) / "backbone", "qwen3", hidden_size=64, num_layers=2)
        model = genvec.GenVecModel.from_backbone(str(backbone), embedding_dim=32, device="cpu")
        print(model.extra_repr())
        states = model.compress(TEXTS)
        print(f"compression states: {tuple(states.shape)} {states.dtype}")
        embeddings = model.encode(TEXTS, normalize=True)
        print(f"embeddings: {embeddings.shape} {embeddings.dtype}")
        print("cosine similarities:")
        print(np.array2string(embeddings @ embeddings.T, precision=3))
        model.save_pretrained(Path(directory) / "checkpoint")
        reloaded = genvec.load_model(Path(directory) / "checkpoint", device="cpu")
        same = np.array_equal(reloaded.encode(TEXTS, normalize=True), embeddings)
        print(f"checkpoint round trip bit-exact: {same}")


if __name__ == "__main__":
    main()
