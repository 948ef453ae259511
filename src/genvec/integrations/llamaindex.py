"""A genvec model as a LlamaIndex `BaseEmbedding`: query methods with the query instruction, text methods with the
document instruction, and a real batch method (LlamaIndex's default embeds one text at a time).

    from genvec.integrations.llamaindex import GenVecEmbedding
    Settings.embed_model = GenVecEmbedding(model="runs/quickstart/train/final")
"""

from pathlib import Path
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from genvec.inference import check_dimensions
from genvec.integrations.common import one_text, resolve_model, text_list
from genvec.model import GenVecModel


class GenVecEmbedding(BaseEmbedding):
    """LlamaIndex embeddings from a genvec model (loaded, or a checkpoint path); `dimensions` keeps the first d
    coordinates (a truncatable model: `genvec make-truncatable`), normalised after when `normalize`."""

    normalize: bool = False
    dimensions: int | None = None
    _model: GenVecModel = PrivateAttr()

    def __init__(self, model: str | Path | GenVecModel, *, device: str = "auto", embed_batch_size: int = 32,
                 normalize: bool = False, dimensions: int | None = None, **kwargs: Any) -> None:
        loaded = resolve_model(model, device)
        check_dimensions(loaded, dimensions)
        super().__init__(model_name=str(loaded.config.model.backbone), embed_batch_size=embed_batch_size,
                         normalize=normalize, dimensions=dimensions, **kwargs)
        self._model = loaded

    @classmethod
    def class_name(cls) -> str:
        return "GenVecEmbedding"

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False,
                                 **kwargs: Any) -> list[list[float]]:
        # LlamaIndex's batching walks `texts` itself: a string would become one text per character, None a TypeError.
        texts = text_list(texts, "get_text_embedding_batch", "get_text_embedding")
        return super().get_text_embedding_batch(texts, show_progress=show_progress, **kwargs)

    async def aget_text_embedding_batch(self, texts: list[str], show_progress: bool = False,
                                        **kwargs: Any) -> list[list[float]]:
        texts = text_list(texts, "aget_text_embedding_batch", "aget_text_embedding")
        return await super().aget_text_embedding_batch(texts, show_progress=show_progress, **kwargs)

    def _get_query_embedding(self, query: str) -> list[float]:
        query = one_text(query, "get_query_embedding", "embed each query with its own call")
        return self._model.encode_query([query], normalize=self.normalize, show_progress=False,
                                        dimensions=self.dimensions)[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        text = one_text(text, "get_text_embedding", "use get_text_embedding_batch for a list of texts")
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._model.encode_document(list(texts), batch_size=self.embed_batch_size, normalize=self.normalize,
                                           show_progress=False, dimensions=self.dimensions).tolist()
