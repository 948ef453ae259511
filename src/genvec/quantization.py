"""Quantized embeddings: int8 / uint8 codes by calibrated ranges, binary / ubinary sign bits packed 8 per byte.

The semantics are sentence-transformers' `quantize_embeddings`, so codes from genvec and from it agree:
- "int8" / "uint8": coordinate j of a vector x becomes floor((x_j - lo_j) / step_j), clipped to 0..255, with
  step_j = (hi_j - lo_j) / 255 (1 where hi_j = lo_j); "int8" shifts it by -128. The ranges (lo, hi), shape (2, D),
  come from a calibration sample (`calibrate`: its smallest and largest value, the same for every coordinate).
- "ubinary": the bits x_j > 0, packed 8 per byte, most significant first (numpy's `packbits`): D/8 bytes per
  vector; "binary" is the same bytes shifted by -128 as int8.
- "float32": the vectors as they are.

Ranges computed on each call's own vectors would quantize every call differently, so a model carries them: the
`quantization` record of its checkpoint (`genvec calibrate`, and `genvec make-truncatable`, which calibrates on its
rotated sample) holds the ranges of the raw embeddings and those of the unit-length ones for some prefix sizes
(`ranges_for` picks the ones that fit a call's `dimensions` and `normalize`). Computing that record from a model is
`genvec.calibration`'s job; this module is numpy only and knows no model.

Shapes: B vectors, D coordinates (of the vectors quantized, after any truncation).
"""

from collections.abc import Sequence

import numpy as np

from genvec.errors import InputError

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
DTYPES = {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "binary": np.int8, "ubinary": np.uint8}
CALIBRATED = ("int8", "uint8")
PACKED = ("binary", "ubinary")


def check_precision(precision: object) -> str:
    """`precision` if it is one of `PRECISIONS`, else an InputError (`param="precision"`) listing them."""
    if not isinstance(precision, str) or precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r:.40}: \"float32\" for "
                         "the embeddings as they are, \"int8\"/\"uint8\" for a byte per coordinate (calibrated "
                         "ranges), \"binary\"/\"ubinary\" for a sign bit per coordinate.", param="precision")
    return precision


def calibrate(embeddings: np.ndarray) -> np.ndarray:
    """The int8/uint8 ranges of a calibration sample: (2, D) float32 in sentence-transformers' `ranges` layout, every
    coordinate given the same range, the sample's smallest and largest value.

    One range for every coordinate keeps the codes' dot products and cosines close to the vectors' own. Per-coordinate
    ranges (sentence-transformers' default when it calibrates) stretch each coordinate to all 256 levels, which
    reweights the coordinates: harmless when they have similar spreads, ruinous after `genvec make-truncatable`, whose
    last coordinates hold little variance (measured on the quickstart model, WorldAnswers nDCG@10 of int8 codes at
    d = 384: 0.149 per coordinate, 0.765 shared, 0.767 in float32; on the model before its rotation 0.760 and 0.769).

    Raises:
        InputError: not a (S, D) float array with S >= 2 rows, or not finite.
    """
    sample = np.asarray(embeddings)
    if sample.ndim != 2 or sample.shape[0] < 2 or sample.shape[1] == 0 or sample.dtype.kind != "f":
        raise InputError(f"calibrate needs a (vectors, dimensions) float array of at least 2 vectors, got shape "
                         f"{sample.shape} of {sample.dtype}; embed a sample of a few hundred texts or more.",
                         param="embeddings")
    if not np.isfinite(sample).all():
        raise InputError("the calibration sample holds NaN or infinite values; check the model and the texts.",
                         param="embeddings")
    return np.stack([np.full(sample.shape[1], sample.min()), np.full(sample.shape[1], sample.max())]).astype(
        np.float32)


def quantize(embeddings: np.ndarray, precision: str, ranges: np.ndarray | None = None) -> np.ndarray:
    """Embeddings (B, D) at `precision`: float32 (B, D); int8/uint8 (B, D) by `ranges`; binary (int8) /
    ubinary (uint8) (B, D/8), packed sign bits. Equal to sentence-transformers'
    `quantize_embeddings(embeddings, precision, ranges=ranges)` on float32 input.

    Args:
        embeddings: (B, D) float vectors (as returned, after any truncation and normalisation).
        precision: one of `PRECISIONS`.
        ranges: (2, D) for int8/uint8 (`calibrate`, or `ranges_for` a model's record); unused otherwise.

    Raises:
        InputError: an unknown precision; int8/uint8 without ranges or with ranges of another size; binary or
            ubinary of a D that is not a multiple of 8; non-float embeddings.
    """
    precision = check_precision(precision)
    vectors = np.asarray(embeddings)
    if vectors.dtype.kind != "f":
        raise InputError(f"quantize takes float embeddings, got {vectors.dtype}; quantize the float vectors once.",
                         param="embeddings")
    vectors = vectors.astype(np.float32, copy=False)
    if precision == "float32":
        return vectors
    size = vectors.shape[-1]
    if precision in PACKED:
        check_packable(size)
        bits = np.packbits(vectors > 0, axis=-1)  # (B, D/8) uint8
        return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)
    if ranges is None:
        raise InputError(f"{precision} needs ranges, the minimum and maximum of a calibration sample: "
                         "calibrate the model once (`genvec calibrate MODEL --texts FILE --output DIR`, or `genvec "
                         "make-truncatable`) or pass ranges=genvec.quantization.calibrate(sample_embeddings).",
                         param="precision")
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, size):
        raise InputError(f"ranges must have shape (2, {size}) for vectors of {size} coordinates, got {ranges.shape}.",
                         param="ranges")
    steps = (ranges[1] - ranges[0]) / 255
    steps = np.where(steps == 0, 1, steps)
    codes = np.clip(np.floor((vectors - ranges[0]) / steps), 0, 255)
    return codes.astype(np.uint8) if precision == "uint8" else (codes - 128).astype(np.int8)


def bytes_per_vector(dimensions: int, precision: str) -> int:
    """The bytes one vector of `dimensions` coordinates takes at `precision` (4 per coordinate for float32, 1 for
    int8/uint8, 1/8 for binary/ubinary)."""
    precision = check_precision(precision)
    if precision in PACKED:
        check_packable(dimensions)
        return dimensions // 8
    return dimensions * (4 if precision == "float32" else 1)


def check_packable(dimensions: int) -> None:
    """Binary precisions pack 8 coordinates per byte: refuse a size that is not a multiple of 8."""
    if dimensions % 8:
        raise InputError(f"binary and ubinary pack 8 coordinates per byte, so they need a multiple of 8 coordinates, "
                         f"got {dimensions}; ask for dimensions of a multiple of 8 (e.g. {max(dimensions // 8, 1) * 8})"
                         ", or another precision.", param="dimensions")


def calibration_record(sample: np.ndarray, prefix_sizes: Sequence[int]) -> dict:
    """The ranges part of a `quantization` record from a (S, D) sample of raw embeddings: `ranges` (2, D) of the raw
    vectors (their first d columns serve `dimensions=d`: the coordinates do not depend on d), and
    `normalized_ranges` {d: (2, d)} of the unit-length first d coordinates for each d of `prefix_sizes` (D among
    them), as JSON lists."""
    sample = np.asarray(sample, dtype=np.float32)
    normalized = {}
    for size in sorted(set(prefix_sizes)):
        prefix = sample[:, :size]
        norms = np.linalg.norm(prefix, axis=1, keepdims=True)
        normalized[str(size)] = calibrate(prefix / np.where(norms == 0, 1, norms)).tolist()
    return {"ranges": calibrate(sample).tolist(), "normalized_ranges": normalized}


def ranges_for(record: dict | None, embedding_dim: int, dimensions: int | None, normalize: bool) -> np.ndarray:
    """The int8/uint8 ranges of a model's `quantization` record for vectors of its first `dimensions` coordinates
    (None: all `embedding_dim`), unit length with `normalize`: (2, d) float32.

    Raises:
        InputError: the model has no record (it was never calibrated), or no normalised ranges for this d.
    """
    if record is None:
        raise InputError("int8 and uint8 need ranges calibrated for this model, and it has none: run `genvec "
                         "calibrate MODEL --texts FILE --output DIR` (or `genvec make-truncatable`) once and load the "
                         "new checkpoint; or ask for binary, ubinary or float32.", param="precision")
    size = embedding_dim if dimensions is None else dimensions
    normalized = record.get("normalized_ranges")
    if normalize and isinstance(normalized, dict) and str(size) not in normalized:
        raise InputError(f"int8/uint8 of unit-length vectors of {size} coordinates have no calibrated ranges (the "
                         f"model has them for {', '.join(normalized)}): ask for one of those dimensions, or for "
                         "normalize=False (the raw coordinates' ranges serve any dimensions).", param="dimensions")
    try:
        ranges = np.asarray(normalized[str(size)] if normalize else record["ranges"], dtype=np.float32)[:, :size]
    except (KeyError, TypeError, ValueError, IndexError):  # a record edited by hand
        ranges = None
    if ranges is None or ranges.shape != (2, size) or not np.isfinite(ranges).all():
        raise InputError(f"the model's quantization record is damaged: it holds no finite (2, {size}) ranges for "
                         "this call; calibrate the model again: `genvec calibrate MODEL --texts FILE --output DIR`.",
                         param="precision")
    return ranges
