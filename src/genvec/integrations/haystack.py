"""genvec models as Haystack 3 components: `GenVecTextEmbedder` (a query string -> its embedding) and
`GenVecDocumentEmbedder` (documents -> the same documents with embeddings of their content). Both load their model
in `warm_up` (Haystack calls it before the first run) and serialise by checkpoint path (a component built from a
loaded model has none, and refuses to serialise).

    pipeline.add_component("embedder", GenVecTextEmbedder(model="runs/quickstart/train/final"))
"""

import dataclasses
from pathlib import Path
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict
from haystack.core.errors import SerializationError

from genvec.inference import check_dimensions
from genvec.integrations.common import resolve_model
from genvec.model import GenVecModel


class _Loads:
    """The settings, loading in `warm_up` and serialising by path, shared by both components (the components call
    no `super()`: Haystack's `@component` rebuilds each class, which `super()` would not survive)."""

    def __init__(self, model: str | Path | GenVecModel, device: str = "auto", batch_size: int = 32,
                 normalize: bool = False, dimensions: int | None = None) -> None:
        self.model, self.device, self.batch_size, self.normalize = model, device, batch_size, normalize
        self.dimensions = dimensions  # the first d coordinates (a truncatable model), checked once it is loaded
        self._model = None

    def warm_up(self) -> None:
        if self._model is None:
            model = resolve_model(self.model, self.device)
            check_dimensions(model, self.dimensions)
            self._model = model

    def to_dict(self) -> dict[str, Any]:
        if not isinstance(self.model, (str, Path)):
            raise SerializationError(  # Haystack's error for a component it cannot write
                f"{type(self).__name__} was built from a loaded {type(self.model).__name__}, which has no checkpoint "
                "path to serialise (and its repr cannot be loaded back); save the model with "
                "model.save_pretrained(directory) and build the component with model=directory.")
        return default_to_dict(self, model=str(self.model), device=self.device, batch_size=self.batch_size,
                               normalize=self.normalize, dimensions=self.dimensions)

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        return default_from_dict(cls, data)


@component
class GenVecTextEmbedder(_Loads):
    """Embeds one query with the model's query instruction."""

    @component.output_types(embedding=list[float])
    def run(self, text: str):
        if not isinstance(text, str):
            raise TypeError(f"GenVecTextEmbedder takes one string; for documents use GenVecDocumentEmbedder "
                            f"(got {type(text).__name__}).")
        self.warm_up()
        vector = self._model.encode_query([text], normalize=self.normalize, show_progress=False,
                                          dimensions=self.dimensions)[0]
        return {"embedding": vector.tolist()}


@component
class GenVecDocumentEmbedder(_Loads):
    """Embeds documents' content with the model's document instruction."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]):
        _check_documents(documents)
        self.warm_up()
        if not documents:
            return {"documents": []}
        empty = [i for i, document in enumerate(documents) if not (document.content or "").strip()]
        if empty:
            raise ValueError(f"documents {empty[:5]} have no text content to embed.")
        vectors = self._model.encode_document([document.content for document in documents],
                                              batch_size=self.batch_size, normalize=self.normalize,
                                              show_progress=False, dimensions=self.dimensions)
        return {"documents": [dataclasses.replace(document, embedding=vector.tolist())
                              for document, vector in zip(documents, vectors)]}


def _check_documents(documents: object) -> None:
    """Refuse anything but a list (or tuple) of Haystack `Document`s, naming the first item that is not one."""
    if not isinstance(documents, (list, tuple)):
        raise TypeError(f"GenVecDocumentEmbedder takes a list of Documents, got {type(documents).__name__} "
                        f"({documents!r:.40}); pass [] for none, and use GenVecTextEmbedder for a query string.")
    for index, document in enumerate(documents):
        if not isinstance(document, Document):
            raise TypeError(f"GenVecDocumentEmbedder takes a list of Documents, but documents[{index}] is "
                            f"{type(document).__name__} ({document!r:.40}); wrap texts as Document(content=text).")
