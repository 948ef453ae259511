"""Facts of a model measured on a sample of its own embeddings, kept in its checkpoint: the int8 ranges.

`calibrate_model` embeds a sample of texts with the model's query and document instructions (both sides together,
so queries and documents quantize alike) and stores the int8 ranges of those embeddings as the model's
`quantization` record (`GenVecModel.quantization`, saved in `genvec_config.json`): every later int8/uint8 call
(`encode(..., precision="int8")`, bulk encoding, the server) quantizes by the same ranges. `genvec calibrate` does
it to a checkpoint, written as a new checkpoint directory (`derive_checkpoint`, which `genvec make-truncatable`
uses too: `genvec.truncation` rotates the embeddings and calibrates on its rotated sample in the same pass).

The record: `num_texts`, `num_vectors`, `sides`, `sample_sha256` (of the texts), `ranges` (2, D) of the raw
embeddings and `normalized_ranges` {d: (2, d)} of the unit-length ones (see `genvec.quantization`).

What it does not do: quantize (`genvec.quantization`), or rotate (`genvec.truncation`).

Shapes: S sample vectors, D embedding size.
"""

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genvec.data.collate import check_texts
from genvec.errors import InputError
from genvec.files import locked_scratch
from genvec.quantization import calibration_record

if TYPE_CHECKING:
    from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

SIDES = ("query", "document")


def calibrate_model(model: "GenVecModel", texts: Sequence[str], *, batch_size: int = 32,
                    show_progress: bool | None = None) -> dict:
    """Store int8/uint8 ranges of `model`'s embeddings of `texts` as its `quantization` record and return it.

    Args:
        model: the model (save it afterwards, `save_pretrained`, to keep the record).
        texts: a sample of the texts the model will embed (a few hundred or more), each read with the model's query
            and document instructions.
        batch_size: texts per forward pass.
        show_progress: progress bars of the encoding (None: for long samples).

    Raises:
        InputError: no texts, or a non-string text.

    Example:
        >>> genvec.calibration.calibrate_model(model, texts)
        >>> model.encode(["where do polar bears live?"], precision="int8").dtype
        dtype('int8')
    """
    texts = check_texts(texts, "texts")
    sides, sample = embed_sample(model, texts, batch_size, show_progress)
    # a truncatable model is asked for its prefix sizes: unit-length ranges for each (see `quantization.ranges_for`)
    sizes = [int(size) for size in (model.truncation or {}).get("retained", {})] or [model.embedding_dim]
    model.quantization = quantization_record(texts, sides, sample, sizes)
    logger.info("calibrated int8 ranges on %d vectors of %d texts", sample.shape[0], len(texts))
    return model.quantization


def calibrate_checkpoint(
    source: str | Path, texts: Sequence[str], output: str | Path, *, batch_size: int = 32,
    backbone: str | None = None, device: str = "auto", dtype: str | None = None,
) -> dict:
    """`calibrate_model` on the checkpoint `source`, written as the new checkpoint directory `output`
    (`derive_checkpoint`); returns the record."""
    return derive_checkpoint(source, output, lambda model: calibrate_model(model, texts, batch_size=batch_size),
                             verb="calibrate", backbone=backbone, device=device, dtype=dtype)


def quantization_record(texts: list[str], sides: list[str], sample: np.ndarray, prefix_sizes: Sequence[int]) -> dict:
    """The `quantization` record of a (S, D) sample of raw embeddings of `texts` read on `sides`."""
    return {"num_texts": len(texts), "num_vectors": int(sample.shape[0]), "sides": sides,
            "sample_sha256": sample_sha256(texts), **calibration_record(sample, prefix_sizes)}


def embed_sample(model: "GenVecModel", texts: list[str], batch_size: int,
                 show_progress: bool | None) -> tuple[list[str], np.ndarray]:
    """The sides whose instruction the model saved, and (S, D) float32: every text embedded on each of them (as
    given, once, when the model saved none)."""
    sides = [side for side in SIDES if model.config.model.instructions.get(side)]
    if not sides:
        return sides, model.encode(texts, batch_size=batch_size, show_progress=show_progress)
    encoders = {"query": model.encode_query, "document": model.encode_document}
    return sides, np.concatenate([encoders[side](texts, batch_size=batch_size, show_progress=show_progress)
                                  for side in sides])


def sample_sha256(texts: list[str]) -> str:
    """The SHA-256 of a sample of texts (of its JSON list), recorded so a record names the sample it was made of."""
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode()).hexdigest()


def derive_checkpoint(
    source: str | Path, output: str | Path, change: Callable[["GenVecModel"], dict], *, verb: str,
    backbone: str | None = None, device: str = "auto", dtype: str | None = None,
) -> dict:
    """Load the checkpoint `source`, apply `change` to the model (it returns a record), and write the model as the
    new checkpoint directory `output`, built beside it and renamed (a crash leaves no half checkpoint); `source` is
    never modified. Returns what `change` returned.

    Raises:
        InputError: `output` exists, or is `source`.
    """
    from genvec.loading import load_model

    output = Path(output)
    if output.exists():
        same = Path(source).exists() and output.resolve() == Path(source).resolve()
        raise InputError(f"--output {str(output)!r} exists" + (" and is the model itself" if same else "")
                         + f"; genvec {verb} writes a new checkpoint directory and never changes one: pass a new "
                         "directory.", param="output")
    model = load_model(source, backbone=backbone, device=device, dtype=dtype)
    record = change(model)
    with locked_scratch(output, "writing", f"the checkpoint {output}") as scratch:
        model.save_pretrained(scratch / "checkpoint")
        if output.exists():
            raise InputError(f"--output {str(output)!r} appeared while the model was changed; pass a new directory.",
                             param="output")
        (scratch / "checkpoint").rename(output)
    return record
