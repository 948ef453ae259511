"""A genvec model as a Daft class: a column of texts in, a column of embeddings out (a fixed-size list of D float32,
the type of `genvec encode`'s Parquet shards), batch by batch, with the model loaded once per Daft worker.

    import daft
    from genvec.integrations.daft import embedder
    embed_documents = embedder("runs/quickstart/train/final", side="document", gpus=1, max_concurrency=4)
    frame = daft.read_parquet("corpus.parquet")
    frame.with_column("embedding", embed_documents(frame["text"])).write_parquet("corpus-embedded")

`embedder` returns an instance of a `@daft.cls` class whose `@daft.method.batch` method `__call__` does the work;
Daft builds that class (and so loads the model) lazily, on each worker that runs a batch: a process or Ray actor of
its own, which is why the model travels as a checkpoint path and never as a loaded model. The class is made for
the call because Daft reads the return type (its width D) from the method's decorator, before any model is loaded;
the width is read from the checkpoint's files (or is `dimensions`).

What it does not do: read or write anything itself (Daft does), or run on a Ray cluster of its own accord (Daft's
runner decides where workers run).
"""

from pathlib import Path

import daft
import numpy as np
import pyarrow as pa

from genvec.checkpoint import native, official
from genvec.errors import InputError, check_positive_int
from genvec.inference import SIDES, Side, check_dimensions
from genvec.loading import load_model


def embedder(model: str | Path, *, side: Side = "document", instruction: str | None = None, device: str = "auto",
             batch_size: int = 32, normalize: bool = False, dimensions: int | None = None, gpus: float = 0,
             max_concurrency: int | None = None):
    """A Daft class instance that embeds a column of texts: `embedder(...)(frame["text"])` is an expression whose
    values equal `model.encode_document` (or `encode_query` with `side="query"`) of the column's texts.

    Args:
        model: a genvec checkpoint directory or an official release directory (each worker loads it), or a hub id
            together with `dimensions`.
        side: "document" or "query": the model's saved instruction for that side.
        instruction: read before every text instead of the side's saved instruction.
        device, batch_size, normalize, dimensions: as in `GenVecModel.encode` and `load_model` (d < D needs a
            truncatable model: `genvec make-truncatable`).
        gpus, max_concurrency: Daft's resources of one worker and the most workers at once (`@daft.cls`).

    Raises:
        InputError: a loaded model instead of a path, a side other than query/document, `dimensions` not a
            positive whole number, or a hub id without `dimensions`.
    """
    if not isinstance(model, (str, Path)):
        raise InputError(f"embedder takes a checkpoint path, got a loaded {type(model).__name__}: Daft builds the "
                         "model on each of its workers, so it travels as a path. Save it with "
                         "model.save_pretrained(directory) and pass the directory.", param="model")
    if side not in SIDES:
        raise InputError(f"side must be \"query\" or \"document\", got {side!r}.", param="side")
    width = _width(Path(model), dimensions)
    settings = {"side": side, "instruction": instruction, "device": device, "batch_size": batch_size,
                "normalize": normalize, "dimensions": dimensions}

    @daft.cls(gpus=gpus, max_concurrency=max_concurrency, name_override="genvec")
    class GenVecEmbedder(Encoder):
        @daft.method.batch(return_dtype=daft.DataType.fixed_size_list(daft.DataType.float32(), width))
        def __call__(self, texts: daft.Series) -> pa.Array:
            return self.encode(texts.to_pylist())

    return GenVecEmbedder(str(model), **settings)


class Encoder:
    """The work of one Daft worker: the model, loaded once when Daft builds the worker, and its settings."""

    def __init__(self, model: str, *, side: Side, instruction: str | None, device: str, batch_size: int,
                 normalize: bool, dimensions: int | None) -> None:
        self.model = load_model(model, device=device)
        check_dimensions(self.model, dimensions)
        # An instruction given replaces the side's saved one (the front door takes one or the other).
        self.side = None if instruction is not None else side
        self.instruction, self.batch_size, self.normalize, self.dimensions = (instruction, batch_size, normalize,
                                                                              dimensions)

    def encode(self, texts: list[str]) -> pa.Array:
        """A batch of texts -> their embeddings as an Arrow fixed-size list array, one row per text."""
        vectors = self.model.encode(texts, side=self.side, instruction=self.instruction, batch_size=self.batch_size,
                                    normalize=self.normalize, dimensions=self.dimensions, show_progress=False)
        # (B, d) float32 -> B rows of d: a fixed-size list over the flat values, no copy per row.
        return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).reshape(-1)),
                                                 vectors.shape[1])


def _width(model: Path, dimensions: int | None) -> int:
    """D of the column: `dimensions`, else the embedding size stored in the checkpoint's files (no backbone is
    loaded here: the driver that builds the query may have no room for the model)."""
    if dimensions is not None:
        check_positive_int(dimensions, "dimensions")
        return dimensions
    if native.is_native(model):
        return native.read_native(model).config.model.embedding_dim
    if official.is_official(model):
        return official.read_official(model).embedding_dim
    raise InputError(f"{str(model)!r} is not a local genvec checkpoint or official release directory, so the width "
                     "of the embedding column cannot be read from it; pass dimensions=D (the model's embedding "
                     "size), or a local directory.", param="model")
