"""genvec models as Haystack 3 components: `GenVecTextEmbedder` (a query string -> its embedding) and
`GenVecDocumentEmbedder` (documents -> the same documents with embeddings of their content). Both load their model
in `warm_up` (Haystack calls it before the first run) and serialise by checkpoint path.

    pipeline.add_component("embedder", GenVecTextEmbedder(model="runs/quickstart/train/final"))
"""

import dataclasses
from typing import Any

from haystack import Document, component, default_from_dict, default_to_dict

from genvec.integrations.common import resolve_model


class _Loads:
    """The settings, loading in `warm_up` and serialising by path, shared by both components (the components call
    no `super()`: Haystack's `@component` rebuilds each class, which `super()` would not survive)."""

    def __init__(self, model: str, device: str = "auto", batch_size: int = 32, normalize: bool = False) -> None:
        self.model, self.device, self.batch_size, self.normalize = model, device, batch_size, normalize
        self._model = None

    def warm_up(self) -> None:
        if self._model is None:
            self._model = resolve_model(self.model, self.device)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, model=str(self.model), device=self.device, batch_size=self.batch_size,
                               normalize=self.normalize)

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
        vector = self._model.encode_query([text], normalize=self.normalize, show_progress=False)[0]
        return {"embedding": vector.tolist()}


@component
class GenVecDocumentEmbedder(_Loads):
    """Embeds documents' content with the model's document instruction."""

    @component.output_types(documents=list[Document])
    def run(self, documents: list[Document]):
        self.warm_up()
        if not documents:
            return {"documents": []}
        empty = [i for i, document in enumerate(documents) if not (document.content or "").strip()]
        if empty:
            raise ValueError(f"documents {empty[:5]} have no text content to embed.")
        vectors = self._model.encode_document([document.content for document in documents],
                                              batch_size=self.batch_size, normalize=self.normalize,
                                              show_progress=False)
        return {"documents": [dataclasses.replace(document, embedding=vector.tolist())
                              for document, vector in zip(documents, vectors)]}
