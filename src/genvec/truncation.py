"""Truncatable checkpoints without retraining: rotate the embedding space so that its first coordinates carry the most.

An embedding is e = mean_k A(z_k) = W mean_k(z_k) + b (`projections.AlignmentProjection`, H -> D). For an orthogonal
D x D matrix Q, the model with W' = Q^T W and b' = Q^T b gives e' = Q^T e: every full-size dot product, norm and
cosine is the same (Q^T Q = I), but the coordinates of e' are e's in the basis Q. With Q the principal directions of
the model's own embeddings over a sample of texts, by decreasing variance, the first d coordinates of e' are the
best d-dimensional view of them that a linear projection gives (on the sample), and `encode(..., dimensions=d)`
keeps just those (`inference.check_dimensions` allows it only on a model carrying the record this module writes).

Bases: "pca" takes the eigenvectors of the sample's covariance (centred); "svd" those of its uncentred second moment
(the right singular vectors of the sample matrix). Either way the rotation itself is applied uncentred, so
similarities stay exact. Each text of the sample is embedded with the model's query and its document instruction
(the two ways a retrieval model reads text), so the basis serves both sides.

The record (`GenVecModel.truncation`, saved in `genvec_config.json` by `save_pretrained`) says: the basis, how many
texts and vectors the sample had, the SHA-256 of the sample, which instructions read it, and the retained share
(of the total variance for "pca", of the total second moment for "svd") of the first d coordinates for d = 1, 2, 4,
... and D.

It also calibrates the int8 ranges on the rotated sample (`genvec.calibration`), so a truncatable model quantizes.

What it does not do: train (a Matryoshka-style loss is not here), quantize, or choose a basis by retrieval quality
(the two are measured elsewhere, by `genvec evaluate`).

Shapes: S sample vectors, H hidden size, D embedding size.
"""

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from genvec.calibration import SIDES, derive_checkpoint, embed_sample, quantization_record, sample_sha256
from genvec.data.collate import check_texts
from genvec.errors import InputError

if TYPE_CHECKING:
    from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

Basis = Literal["pca", "svd"]
BASES = ("pca", "svd")
MEASURES = {"pca": "variance", "svd": "second_moment"}


def make_truncatable(
    model: "GenVecModel",
    texts: Sequence[str],
    *,
    basis: Basis = "pca",
    batch_size: int = 32,
    show_progress: bool | None = None,
) -> dict:
    """Rotate `model`'s alignment projection A in place so the first coordinates of its embeddings carry the most
    (full-size similarities unchanged), and mark the model truncatable; returns the record (`model.truncation`).

    Args:
        model: the model; its embeddings change by an orthogonal rotation (save it afterwards: `save_pretrained`).
        texts: a sample of the texts the model will embed (a few hundred to thousands; at least D is best), each
            read with the model's query and document instructions.
        basis: "pca" (directions of the most variance around the sample's mean) or "svd" (of the most second
            moment, uncentred).
        batch_size: texts per forward pass.
        show_progress: progress bars of the encoding (None: for long samples).

    Returns:
        The record: `basis`, `num_texts`, `num_vectors`, `sides`, `sample_sha256`, `measure` ("variance" or
        "second_moment") and `retained` ({d as a string: share of the measure kept by the first d coordinates}).

    Raises:
        InputError: an unknown basis, no texts or a non-string text, or a sample whose embeddings do not vary.

    Example:
        >>> record = genvec.truncation.make_truncatable(model, texts)
        >>> model.encode(["where do polar bears live?"], dimensions=64, normalize=True).shape
        (1, 64)
    """
    if basis not in BASES:
        raise InputError(f"basis must be one of {', '.join(BASES)}, got {basis!r:.40}: \"pca\" for the directions of "
                         "most variance, \"svd\" for those of most (uncentred) second moment.", param="basis")
    texts = check_texts(texts, "texts")
    _warn_if_small(len(texts), model)
    sides, sample = embed_sample(model, texts, batch_size, show_progress)  # (S, D)
    rotation, spectrum = principal_directions(sample, basis)  # (D, D), (D,)
    _rotate(model.alignment, rotation)
    record = {
        "basis": basis,
        "num_texts": len(texts),
        "num_vectors": int(sample.shape[0]),
        "sides": sides,
        "sample_sha256": sample_sha256(texts),
        "measure": MEASURES[basis],
        "retained": retained_shares(spectrum),
    }
    model.truncation = record
    # the int8 ranges of the rotated embeddings (e' = Q^T e, a row at a time: e Q), unit-length ones per prefix size
    rotated = (sample.astype(np.float64) @ rotation.numpy()).astype(np.float32)  # (S, D)
    model.quantization = quantization_record(texts, sides, rotated, [int(size) for size in record["retained"]])
    logger.info("rotated the embeddings of %d texts by %s: the first %s of %d coordinates keep %.3f of the %s",
                len(texts), basis, *_middle(record["retained"]), model.embedding_dim, record["measure"])
    return record


def make_truncatable_checkpoint(
    source: str | Path, texts: Sequence[str], output: str | Path, *, basis: Basis = "pca", batch_size: int = 32,
    backbone: str | None = None, device: str = "auto", dtype: str | None = None,
) -> dict:
    """`make_truncatable` on the checkpoint `source`, written as a new checkpoint directory `output` (built beside
    it, then renamed: a crash leaves no half checkpoint); `source` is never modified. Returns the record.

    Raises:
        InputError: `output` exists, or is `source`; as `make_truncatable`.
    """
    return derive_checkpoint(source, output, lambda model: make_truncatable(model, texts, basis=basis,
                                                                             batch_size=batch_size),
                             verb="make-truncatable", backbone=backbone, device=device, dtype=dtype)


def principal_directions(vectors: np.ndarray, basis: Basis) -> tuple[torch.Tensor, torch.Tensor]:
    """The orthonormal directions of (S, D) `vectors`, most variance ("pca") or second moment ("svd") first.

    Returns:
        (D, D) float64: column j is direction j, its sign chosen so its largest entry is positive (the same sample
        gives the same basis); (D,) float64: the variance (or second moment) along each direction, decreasing.
    """
    sample = torch.as_tensor(np.asarray(vectors), dtype=torch.float64)  # (S, D)
    if basis == "pca":
        sample = sample - sample.mean(0)
    moment = sample.T @ sample / sample.shape[0]  # (D, D)
    values, directions = torch.linalg.eigh(moment)  # ascending
    values, directions = values.flip(0).clamp(min=0), directions.flip(1)
    peaks = directions.abs().argmax(0)  # (D,)
    signs = torch.sign(directions[peaks, torch.arange(directions.shape[1])])
    return directions * torch.where(signs == 0, 1.0, signs), values


def retained_shares(spectrum: torch.Tensor) -> dict[str, float]:
    """{d: share of the total in the first d directions} for d = 1, 2, 4, ... < D, and D (JSON keys: strings)."""
    size = spectrum.shape[0]
    total = float(spectrum.sum())
    if not total > 0:
        raise InputError("the sample's embeddings do not vary (every text gives the same vector), so they show no "
                         "direction to keep; pass more, and more varied, texts.", param="texts")
    cumulative = spectrum.cumsum(0) / total  # (D,)
    sizes = [1 << power for power in range(size.bit_length()) if 1 << power < size] + [size]
    return {str(d): round(float(cumulative[d - 1]), 6) for d in sizes}


def _warn_if_small(num_texts: int, model: "GenVecModel") -> None:
    """Warn when the sample has fewer vectors than the embedding has coordinates."""
    size = model.embedding_dim
    sides = [side for side in SIDES if model.config.model.instructions.get(side)]
    if num_texts * max(len(sides), 1) <= size:
        warnings.warn(f"make_truncatable: {num_texts} texts give fewer vectors than the {size} coordinates, so the "
                      "order of the later directions is arbitrary; a sample of at least as many texts as the "
                      "embedding has coordinates orders them all.", stacklevel=3)


@torch.no_grad()
def _rotate(alignment: torch.nn.Linear, rotation: torch.Tensor) -> None:
    """A's weight (D, H) and bias (D,) become Q^T W and Q^T b, computed in float64, stored in their own dtype."""
    turn = rotation.T.to(alignment.weight.device)  # (D, D)
    alignment.weight.copy_((turn @ alignment.weight.double()).to(alignment.weight.dtype))
    alignment.bias.copy_((turn @ alignment.bias.double()).to(alignment.bias.dtype))


def _middle(retained: dict[str, float]) -> tuple[str, float]:
    """A prefix size near D/4 and its share, for the log line."""
    sizes = list(retained)
    key = sizes[max(len(sizes) - 3, 0)]
    return key, retained[key]
