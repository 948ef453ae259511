"""A genvec model as a LangChain `Embeddings`: `embed_documents` with the document instruction, `embed_query` with
the query instruction, in batches of `batch_size` (the async methods run them in LangChain's executor).

    from genvec.integrations.langchain import GenVecEmbeddings
    embeddings = GenVecEmbeddings("runs/quickstart/train/final")
    store = InMemoryVectorStore(embeddings)
"""

from pathlib import Path

from langchain_core.embeddings import Embeddings

from genvec.inference import check_dimensions
from genvec.integrations.common import one_text, resolve_model, text_list
from genvec.model import GenVecModel


class GenVecEmbeddings(Embeddings):
    """LangChain embeddings from a genvec model (loaded, or a checkpoint path); `normalize` gives unit vectors,
    `dimensions` the first d coordinates (a truncatable model: `genvec make-truncatable`), normalised after."""

    def __init__(self, model: str | Path | GenVecModel, *, device: str = "auto", batch_size: int = 32,
                 normalize: bool = False, dimensions: int | None = None) -> None:
        self.model = resolve_model(model, device)
        check_dimensions(self.model, dimensions)
        self.batch_size, self.normalize, self.dimensions = batch_size, normalize, dimensions

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        texts = text_list(texts, "embed_documents", "embed_query")
        if not texts:
            return []
        return self.model.encode_document(texts, batch_size=self.batch_size, normalize=self.normalize,
                                          show_progress=False, dimensions=self.dimensions).tolist()

    def embed_query(self, text: str) -> list[float]:
        text = one_text(text, "embed_query", "use embed_documents for a list of texts")
        return self.model.encode_query([text], normalize=self.normalize, show_progress=False,
                                       dimensions=self.dimensions)[0].tolist()
