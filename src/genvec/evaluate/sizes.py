"""Smaller vectors in an evaluation: each (dimensions, precision) setting of a method, derived after the fact from
the method's full float embeddings and scored on the same tasks as the full method.

A setting d-p of a method (the genvec model, or an input-centric baseline) turns the method's full vectors into:
1. coordinates in the method's principal basis. A genvec model made truncatable carries its basis in A already
   (`genvec make-truncatable`); a baseline is not truncatable either, so it gets the same post-hoc treatment: the
   same kind of basis (the genvec model's, "pca" or "svd") computed on its own embeddings of the calibration sample
   (`truncation.principal_directions`), applied as an uncentred rotation;
2. the first d coordinates, unit length under cosine similarity (as `encode(dimensions=d, normalize=True)`), raw
   under the dot product;
3. the precision p (`quantization.quantize`): int8/uint8 by ranges calibrated on the method's own vectors of the
   calibration sample after steps 1-2, for this d; binary/ubinary by sign;
4. the form their users compare them in, as float32 for mteb: int8/uint8 codes as numbers (the cosine, or dot, of
   the integer vectors); binary/ubinary bits as +-1, compared by their dot product, d - 2 Hamming: a whole number,
   exact in float32, so mteb ranks exactly as the Hamming distance does, ties included (a cosine of them would be
   the same up to rounding, which can break ties either way).

The calibration sample is a file of texts the caller passes (`eval.calibration_texts`), never the tasks' own texts
(that would calibrate on the test data). A genvec model reads each sample text with its query and its document
instruction, as `make-truncatable` does; a baseline reads it raw. Without a sample, int8/uint8 of the genvec model use
the ranges its checkpoint carries (`genvec calibrate`, `make-truncatable`: what `encode(precision=...)` uses), and a
baseline that needs a basis or ranges is refused with the way to pass one.

Every setting reads its method's full vectors from `EmbeddingCache` (`OUTPUT/embeddings/`, one `.npy` file per task,
side and instruction, keyed by the method's name and revision and the texts' digest): a method encodes each task
once whatever the number of settings, and a resumed evaluation encodes nothing it has cached. The cache holds the
full float32 vectors, 4 x D bytes per text.

What it does not do: HyDE baselines (their settings would need their teacher's basis; they are scored at full size).

Shapes: S sample vectors, B vectors, D a method's embedding size, d a setting's.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genvec.errors import InputError
from genvec.files import atomic_write
from genvec.quantization import CALIBRATED, PACKED, bytes_per_vector, calibrate, quantize, ranges_for

logger = logging.getLogger(__name__)

CACHE_DIRECTORY = "embeddings"  # under the evaluation's output


@dataclass(frozen=True)
class Setting:
    """One size a method is scored at: its first `dimensions` coordinates at `precision`."""

    dimensions: int
    precision: str

    @property
    def label(self) -> str:
        """`d128-int8`: the suffix of the setting's method name."""
        return f"d{self.dimensions}-{self.precision}"

    @property
    def bytes_per_vector(self) -> int:
        return bytes_per_vector(self.dimensions, self.precision)


@dataclass
class Treatment:
    """How one method's full vectors become its settings' vectors: an optional rotation (D, D) into its principal
    basis, unit length or not, and int8/uint8 ranges (2, d) by d."""

    rotation: np.ndarray | None = None
    normalize: bool = True
    ranges: dict[int, np.ndarray] = field(default_factory=dict)

    def digest(self) -> str:
        """What the settings' vectors depend on besides the full vectors (part of their mteb revision)."""
        digest = hashlib.sha256(b"normalized" if self.normalize else b"raw")
        if self.rotation is not None:
            digest.update(np.ascontiguousarray(self.rotation, dtype=np.float32).tobytes())
        for size in sorted(self.ranges):
            digest.update(str(size).encode() + np.ascontiguousarray(self.ranges[size], dtype=np.float32).tobytes())
        return digest.hexdigest()


class EmbeddingCache:
    """Full float32 vectors on disk, one `.npy` file per key (see the module docstring); written atomically, so a
    killed evaluation leaves whole files or none."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def vectors(self, key: dict[str, object], texts: Sequence[str], compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached vectors of `texts` under `key` (what they depend on besides the texts), else `compute()`'s,
        kept."""
        text_digest = hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode()).hexdigest()
        name = hashlib.sha256(json.dumps({**key, "texts": text_digest}, sort_keys=True).encode()).hexdigest()[:32]
        path = self.directory / f"{name}.npy"
        if path.exists():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.ndim == 2 and cached.shape[0] == len(texts):
                    return cached
            except (OSError, ValueError) as err:
                logger.warning("encoding again: the cached embeddings %s cannot be read (%s).", path, err)
        vectors = np.ascontiguousarray(compute(), dtype=np.float32)
        self.directory.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as file:
            np.save(file, vectors, allow_pickle=False)
        return vectors


def sized_encoders(methods: list, dimensions: Sequence[int], precisions: Sequence[str], *,
                   sample: list[str] | None, basis: str, normalize: bool, cache: EmbeddingCache,
                   record: dict | None) -> list:
    """Each of `methods` (mteb encoders; a genvec model's has a `model`) followed by an encoder per setting of it,
    every one reading the method's full vectors through `cache`. `sample`: the calibration texts (None: the genvec
    model's checkpoint `record` gives its ranges; `check_calibration` has refused what needs a sample); `basis`: the
    kind baselines get."""
    encoders = []
    for method in methods:
        method.cache = cache
        size = method.mteb_model_meta.embed_dim
        settings = requested_settings(dimensions, precisions, size)
        is_genvec = hasattr(method, "model")
        if sample is not None and needs_calibration(settings, size, rotates=not is_genvec):
            treatment = calibrated_treatment(method.sample_vectors(sample), settings,
                                             basis=None if is_genvec else basis, normalize=normalize)
        elif is_genvec:
            treatment = stored_treatment(record, settings, size, normalize)
        else:
            treatment = Treatment(None, normalize)
        skipped = sorted({d for d in dimensions if d > size})
        if skipped:
            logger.warning("%s has %d coordinates: its settings of %s dimensions are not scored.",
                           method.mteb_model_meta.name, size, skipped)
        encoders += [method] + [setting_encoder(method, setting, treatment) for setting in settings]
    return encoders


def check_calibration(methods: list, dimensions: Sequence[int], precisions: Sequence[str],
                      sample: list[str] | None) -> None:
    """Refuse, before anything is encoded, a baseline whose settings need a calibration sample when none was
    given (a genvec model without one uses its checkpoint's ranges)."""
    if sample is not None:
        return
    for method in methods:
        size = method.mteb_model_meta.embed_dim
        if not hasattr(method, "model") and needs_calibration(requested_settings(dimensions, precisions, size), size,
                                                              rotates=True):
            raise InputError(f"the baseline {method.mteb_model_meta.name} at smaller sizes needs a calibration sample "
                             "(its own principal basis for fewer dimensions, its own ranges for int8/uint8): pass "
                             "--calibration-texts FILE (eval.calibration_texts), a few hundred texts or more like "
                             "those it will embed, one a line, not the tasks' own.", param="calibration_texts")


def requested_settings(dimensions: Sequence[int], precisions: Sequence[str], size: int) -> list[Setting]:
    """Every (d, p) of the requested dimensions (none: the full size) and precisions (none: float32) with d <= `size`,
    except the full size in float32, which is the method itself."""
    sizes = sorted(set(dimensions) or {size})
    kinds = list(dict.fromkeys(precisions or ["float32"]))
    return [Setting(d, p) for d in sizes for p in kinds if d <= size and (d, p) != (size, "float32")]


def check_settings(dimensions: Sequence[int], size: int, method: str) -> None:
    """Refuse sizes larger than the genvec model's embeddings (the baselines' larger ones are simply not scored)."""
    larger = [d for d in dimensions if d > size]
    if larger:
        raise InputError(f"dimensions {larger} are larger than {method}'s embeddings ({size} coordinates); ask for "
                         f"sizes from 1 to {size}.", param="dimensions")


def needs_calibration(settings: Sequence[Setting], size: int, rotates: bool) -> bool:
    """Whether a method's settings need its vectors of the calibration sample: int8/uint8 ranges, or (a method
    that `rotates`, a baseline) a basis for a prefix shorter than its `size`."""
    return any(s.precision in CALIBRATED or (rotates and s.dimensions < size) for s in settings)


def calibrated_treatment(sample: np.ndarray, settings: Sequence[Setting], *, basis: str | None,
                         normalize: bool) -> Treatment:
    """The treatment of a method whose (S, D) vectors of the calibration sample are `sample`: the principal basis
    of kind `basis` (None: the method's coordinates are already in order, as a truncatable genvec model's), and the
    ranges of every d that an int8/uint8 setting asks for, on the sample treated as the tasks' vectors will be."""
    from genvec.truncation import principal_directions

    sample = np.asarray(sample, dtype=np.float32)
    rotation = None
    if basis is not None and any(s.dimensions < sample.shape[1] for s in settings):
        rotation = principal_directions(sample, basis)[0].numpy().astype(np.float32)  # (D, D)
    treatment = Treatment(rotation, normalize)
    for size in sorted({s.dimensions for s in settings if s.precision in CALIBRATED}):
        treatment.ranges[size] = calibrate(prefix(sample, size, treatment))
    return treatment


def stored_treatment(record: dict | None, settings: Sequence[Setting], size: int, normalize: bool) -> Treatment:
    """The treatment of a genvec model from its checkpoint alone: its basis is in A, its int8/uint8 ranges are the
    `quantization` record's (`quantization.ranges_for`, as `encode(precision=...)` takes them)."""
    treatment = Treatment(None, normalize)
    for d in sorted({s.dimensions for s in settings if s.precision in CALIBRATED}):
        treatment.ranges[d] = ranges_for(record, size, d, normalize)
    return treatment


def setting_encoder(base, setting: Setting, treatment: Treatment):
    """An mteb encoder of one setting of the method `base`: its vectors are `base`'s, through `setting_vectors`;
    its name is `base`'s with the setting's label (`genvec/final-d96-int8`), its revision depends on the treatment."""
    from genvec.evaluate.mteb_encoder import import_mteb

    _, AbsEncoder, _ = import_mteb()
    from mteb.models.model_meta import ScoringFunction

    class SettingEncoder(AbsEncoder):
        def __init__(self) -> None:
            self.base, self.setting = base, setting

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
            vectors = base.encode(inputs, task_metadata=task_metadata, hf_split=hf_split, hf_subset=hf_subset,
                                  prompt_type=prompt_type, **kwargs)
            return setting_vectors(vectors, setting, treatment)

        def measures(self) -> dict[str, dict[str, float]]:
            """Nothing: a setting encodes nothing of its own (its cost per query is its method's)."""
            return {}

    meta = base.mteb_model_meta
    revision = hashlib.sha256(f"{meta.revision}/{setting.label}/{treatment.digest()}".encode()).hexdigest()[:12]
    encoder = SettingEncoder()
    update = {"name": f"{meta.name}-{setting.label}", "revision": revision, "embed_dim": setting.dimensions}
    if setting.precision in PACKED:  # d - 2 Hamming (see the module docstring)
        update["similarity_fn_name"] = ScoringFunction.DOT_PRODUCT
    encoder.mteb_model_meta = meta.model_copy(update=update)
    return encoder


def prefix(vectors: np.ndarray, dimensions: int, treatment: Treatment) -> np.ndarray:
    """(B, D) full vectors -> (B, d) float32: rotated, their first d coordinates, unit length if the treatment
    normalises (steps 1-2 of the module docstring)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if treatment.rotation is not None:
        vectors = vectors @ treatment.rotation[:, :dimensions]  # (B, d): only the kept directions are computed
    else:
        vectors = vectors[:, :dimensions]
    if treatment.normalize:
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = vectors / np.where(norms == 0, 1, norms)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def setting_vectors(vectors: np.ndarray, setting: Setting, treatment: Treatment) -> np.ndarray:
    """(B, D) full vectors -> (B, d) float32 as the setting's users compare them (steps 1-4 of the module docstring):
    integer codes as numbers, packed bits as +-1."""
    kept = prefix(vectors, setting.dimensions, treatment)
    codes = quantize(kept, setting.precision, treatment.ranges.get(setting.dimensions))
    if setting.precision in PACKED:
        packed = codes if setting.precision == "ubinary" else (codes.astype(np.int16) + 128).astype(np.uint8)
        bits = np.unpackbits(packed, axis=1)[:, :setting.dimensions]  # (B, d) of 0 and 1
        return bits.astype(np.float32) * 2 - 1
    return codes.astype(np.float32)
