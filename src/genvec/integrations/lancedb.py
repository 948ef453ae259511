"""A genvec model as a LanceDB embedding function, registered as "genvec": rows added to a table get the model's
document instruction (`compute_source_embeddings`), text searches its query instruction (`compute_query_embeddings`),
and the vectors are exactly `model.encode_document` / `model.encode_query`.

    import lancedb
    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector
    import genvec.integrations.lancedb  # registers "genvec"

    genvec_function = get_registry().get("genvec").create(model="runs/quickstart/train/final")

    class Passage(LanceModel):
        text: str = genvec_function.SourceField()
        vector: Vector(genvec_function.ndims()) = genvec_function.VectorField()

    table = lancedb.connect("lancedb").create_table("passages", schema=Passage)
    table.add([{"text": "Polar bears live on the sea ice."}])
    table.search("where do polar bears live?").distance_type("cosine").limit(1).to_pydantic(Passage)

LanceDB writes the function's name and its `create` arguments into the table's metadata and rebuilds the function
from them whenever the table is opened again (in a process that has imported this module): the model travels as its
checkpoint path, with the instructions, `normalize` and `dimensions` given. LanceDB builds a new function object for
every `add` and every opened table, so the loaded model is kept per process, for the latest (path, device).

What it does not do: retry. LanceDB retries an embedding function's failures with growing waits, as for a remote
API; a local model's failure (a text too long, a bad argument) would only fail again, so it is raised at once.
"""

from pathlib import Path
from typing import Any

import numpy as np
from lancedb.embeddings import EmbeddingFunction, register
from pydantic import field_validator

from genvec.inference import Side, check_dimensions
from genvec.integrations.common import cached_model, one_text
from genvec.model import GenVecModel


@register("genvec")
class GenVecEmbeddingFunction(EmbeddingFunction):
    """LanceDB embeddings from a genvec checkpoint; build it with `get_registry().get("genvec").create(...)` (the
    arguments given to `create` are what the table's metadata keeps)."""

    model: str
    """A genvec checkpoint directory, an official release directory or a hub id."""
    device: str = "auto"
    batch_size: int = 32
    normalize: bool = False
    """Unit vectors (L2 distance then ranks as cosine does)."""
    dimensions: int | None = None
    """The first d coordinates (a truncatable model: `genvec make-truncatable`); None: all D."""
    query_instruction: str | None = None
    """Read before every query instead of the model's saved query instruction."""
    document_instruction: str | None = None
    """Read before every document instead of the model's saved document instruction."""

    @classmethod
    def create(cls, **kwargs: Any) -> "GenVecEmbeddingFunction":
        # The arguments are written into the table's metadata as JSON: a path is kept as its text.
        if isinstance(kwargs.get("model"), Path):
            kwargs["model"] = str(kwargs["model"])
        return super().create(**kwargs)

    @field_validator("model", mode="before")
    @classmethod
    def _check_model(cls, model: object) -> object:
        if isinstance(model, GenVecModel):
            raise ValueError("model must be a checkpoint path: LanceDB keeps the function's arguments in the table's "
                             "metadata, and a loaded model has no such form. Save it with "
                             "model.save_pretrained(directory) and pass the directory.")
        return model

    def ndims(self) -> int:
        return self.dimensions or self._model().embedding_dim

    def compute_query_embeddings(self, query: str, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        query = one_text(query, "compute_query_embeddings", "use compute_source_embeddings for a list of texts")
        return self._encode([query], "query")

    def compute_source_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return self._encode(list(self.sanitize_input(texts)), "document")

    def compute_query_embeddings_with_retry(self, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return self.compute_query_embeddings(*args, **kwargs)  # no retry: see the module docstring

    def compute_source_embeddings_with_retry(self, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return self.compute_source_embeddings(*args, **kwargs)

    def _model(self) -> GenVecModel:
        model = cached_model(self.model, self.device)
        check_dimensions(model, self.dimensions)
        return model

    def _encode(self, texts: list[str], side: Side) -> list[np.ndarray]:
        if not texts:
            return []
        instruction = self.query_instruction if side == "query" else self.document_instruction
        vectors = self._model().encode(texts, side=None if instruction is not None else side, instruction=instruction,
                                       batch_size=self.batch_size, normalize=self.normalize,
                                       dimensions=self.dimensions, show_progress=False)
        return list(vectors)

