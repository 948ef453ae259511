"""A genvec model as a sentence-transformers 6 `SentenceTransformer`, built from a module instance (so loading it
asks for no `trust_remote_code`).

`encode_query` / `encode_document` give exactly `model.encode_query` / `encode_document` (the saved instructions;
sentence-transformers passes `task="query"|"document"` to the module); a non-empty `prompt` replaces the
instruction; plain `encode` reads texts as they are. `save(dir)` writes the module's config and a genvec checkpoint
under `dir/genvec`; `SentenceTransformer(dir, trust_remote_code=True)` reloads it (the module class lives in this
installed package, which sentence-transformers counts as third-party code).
"""

from pathlib import Path

from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import InputModule

from genvec.data.collate import pad_left
from genvec.loading import load_model
from genvec.model import GenVecModel

CHECKPOINT_DIR = "genvec"


class GenVecModule(InputModule):
    """The sentence-transformers module around a `GenVecModel`."""

    config_file_name = "genvec_st_config.json"  # not config.json: that name belongs to transformers
    config_keys = ["checkpoint"]
    forward_kwargs = {"task"}  # so encode_query / encode_document's task reaches forward and preprocess

    def __init__(self, model: GenVecModel, checkpoint: str = CHECKPOINT_DIR) -> None:
        super().__init__()
        self.genvec = model
        self.checkpoint = checkpoint

    @property
    def tokenizer(self):
        return self.genvec.tokenizer

    @property
    def max_seq_length(self) -> int:
        return self.genvec.max_text_tokens

    def preprocess(self, inputs, prompt: str | None = None, task: str | None = None, **kwargs) -> dict:
        instruction = prompt or (self.genvec.config.model.instructions.get(task) if task in ("query", "document")
                                 else None)
        ids = [row[: self.genvec.max_text_tokens] for row in self.genvec.tokenize(list(inputs), instruction=instruction)]
        return {"genvec_input_ids": pad_left(ids, self.genvec.pad_token_id)}

    def forward(self, features: dict, task: str | None = None, **kwargs) -> dict:
        batch = features["genvec_input_ids"].to(self.genvec.device)
        special = self.genvec.special_states(batch)
        features["sentence_embedding"] = self.genvec.embed(self.genvec.compression_states(special)).float()
        return features

    def get_embedding_dimension(self) -> int:
        return self.genvec.embedding_dim

    def get_sentence_embedding_dimension(self) -> int:  # the older name, still called by mteb 2.26
        return self.genvec.embedding_dim

    def save(self, output_path: str, *args, safe_serialization: bool = True, **kwargs) -> None:
        self.save_config(output_path)
        self.genvec.save_pretrained(Path(output_path) / self.checkpoint)

    @classmethod
    def load(cls, model_name_or_path: str, subfolder: str = "", token=None, cache_folder=None, revision=None,
             local_files_only: bool = False, **kwargs) -> "GenVecModule":
        config = cls.load_config(model_name_or_path, subfolder=subfolder, token=token, cache_folder=cache_folder,
                                 revision=revision, local_files_only=local_files_only)
        root = cls.load_dir_path(model_name_or_path, subfolder=subfolder, token=token, cache_folder=cache_folder,
                                 revision=revision, local_files_only=local_files_only)
        checkpoint = config.get("checkpoint", CHECKPOINT_DIR)
        return cls(load_model(Path(root) / checkpoint, device="cpu"), checkpoint=checkpoint)


def to_sentence_transformer(model: str | Path | GenVecModel, *, device: str | None = None) -> SentenceTransformer:
    """A `SentenceTransformer` over a genvec model (a loaded one, or a checkpoint to load); see the module docstring.

    Example:
        >>> st = genvec.to_sentence_transformer("runs/quickstart/train/final")
        >>> st.encode_query(["where do polar bears live?"]).shape
        (1, 384)
    """
    if not isinstance(model, GenVecModel):
        model = load_model(model, device=device or "auto")
    return SentenceTransformer(modules=[GenVecModule(model)], similarity_fn_name="cosine",
                               device=device or str(model.device))
