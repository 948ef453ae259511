"""A genvec model as a Chroma embedding function, registered as "genvec": documents added to a collection get the
model's document instruction (`__call__`), query texts its query instruction (`embed_query`), and the vectors are
exactly `model.encode_document` / `model.encode_query`. Collections default to the cosine space.

    import chromadb
    from genvec.integrations.chroma import GenVecEmbeddingFunction

    client = chromadb.PersistentClient("chroma")
    passages = client.get_or_create_collection(
        "passages", embedding_function=GenVecEmbeddingFunction("runs/quickstart/train/final"))
    passages.add(ids=["d0"], documents=["Polar bears live on the sea ice."])
    passages.query(query_texts=["where do polar bears live?"], n_results=1)

Chroma keeps `get_config()` (JSON) with the collection and rebuilds the function with `build_from_config` when the
collection is opened again without one (`client.get_collection("passages")`, in a process that has imported this
module): the model travels as its checkpoint path, with the instructions, `normalize` and `dimensions` given, so a
reopened collection embeds new documents and queries as before. A change of any of these on an existing collection
is refused: its stored vectors would no longer compare with new ones. The model is loaded at the first text
embedded, and kept per process for the latest (path, device).
"""

from pathlib import Path
from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from genvec.errors import InputError
from genvec.inference import Side, check_dimensions
from genvec.integrations.common import cached_model

# The settings `get_config` writes and `build_from_config` reads; all but `device` and `batch_size` change vectors.
SETTINGS = ("model", "device", "batch_size", "normalize", "dimensions", "query_instruction", "document_instruction")
_CHANGE_VECTORS = ("model", "normalize", "dimensions", "query_instruction", "document_instruction")


@register_embedding_function
class GenVecEmbeddingFunction(EmbeddingFunction[Documents]):
    """Chroma embeddings from a genvec checkpoint (a directory, an official release or a hub id).

    Args:
        model: the checkpoint path (a loaded model has no JSON form for the collection's config).
        device, batch_size: where and in batches of how many texts the model runs.
        normalize: unit vectors; `dimensions`: the first d coordinates (a truncatable model).
        query_instruction, document_instruction: read before every query / document instead of the model's saved
            instruction for that side.
    """

    def __init__(self, model: str | Path, *, device: str = "auto", batch_size: int = 32, normalize: bool = False,
                 dimensions: int | None = None, query_instruction: str | None = None,
                 document_instruction: str | None = None) -> None:
        if not isinstance(model, (str, Path)):
            raise InputError(f"GenVecEmbeddingFunction takes a checkpoint path, got a loaded {type(model).__name__}: "
                             "Chroma keeps the function's config (JSON) with the collection, and a loaded model has "
                             "no such form. Save it with model.save_pretrained(directory) and pass the directory.",
                             param="model")
        self.model, self.device, self.batch_size, self.normalize = str(model), device, batch_size, normalize
        self.dimensions = dimensions
        self.query_instruction, self.document_instruction = query_instruction, document_instruction

    def __call__(self, input: Documents) -> Embeddings:
        return self._encode(_texts(input, "__call__"), "document")

    def embed_query(self, input: Documents) -> Embeddings:
        return self._encode(_texts(input, "embed_query"), "query")

    @staticmethod
    def name() -> str:
        return "genvec"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {setting: getattr(self, setting) for setting in SETTINGS}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> "GenVecEmbeddingFunction":
        GenVecEmbeddingFunction.validate_config(config)
        return GenVecEmbeddingFunction(**config)

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        unknown = sorted(set(config) - set(SETTINGS))
        if unknown or "model" not in config:
            raise InputError(f"a genvec embedding function's config holds {sorted(config)}; it takes {list(SETTINGS)} "
                             "(model required), as get_config() writes them. Was it written by another version of "
                             "genvec? Recreate the collection's function with GenVecEmbeddingFunction(model=...).",
                             param="config")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        changed = [setting for setting in _CHANGE_VECTORS if old_config.get(setting) != new_config.get(setting)]
        if changed:
            raise InputError(f"the collection's vectors were made with other {', '.join(changed)} "
                             f"({', '.join(f'{s}={old_config.get(s)!r}' for s in changed)}); new vectors would not "
                             "compare with them. Create a new collection for the new settings.", param="config")

    def _encode(self, texts: list[str], side: Side) -> Embeddings:
        model = cached_model(self.model, self.device)
        check_dimensions(model, self.dimensions)
        instruction = self.query_instruction if side == "query" else self.document_instruction
        vectors = model.encode(texts, side=None if instruction is not None else side, instruction=instruction,
                               batch_size=self.batch_size, normalize=self.normalize, dimensions=self.dimensions,
                               show_progress=False)
        return list(vectors)


def _texts(texts: object, method: str) -> list[str]:
    """`texts` as a list; a single string is refused (iterating it would embed each character)."""
    if isinstance(texts, (str, bytes)) or texts is None:
        raise InputError(f"{method} takes a list of texts, got {type(texts).__name__} ({texts!r:.40}); pass [text] "
                         "for one.", param="input")
    return list(texts)


