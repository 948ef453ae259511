"""A genvec model as a sentence-transformers 6 `SentenceTransformer`, built from a module instance (so loading it
asks for no `trust_remote_code`).

`encode_query` / `encode_document` give exactly `model.encode_query` / `encode_document` (the saved instructions;
sentence-transformers passes `task="query"|"document"` to the module); a non-empty `prompt` replaces the
instruction; plain `encode` reads texts as they are. Texts go through the model's front door
(`genvec.inference.prepare`), so an over-long text is cut as `model.encode` cuts it, with the same warning.
`to_sentence_transformer(model, truncate_dim=d)` keeps the first d coordinates (sentence-transformers truncates, then
normalises); d below the model's size needs a truncatable model (`genvec make-truncatable`).
`save(dir)` writes the module's config and a genvec checkpoint under `dir/genvec`;
`SentenceTransformer(dir, trust_remote_code=True)` reloads it (the module class lives in this installed package,
which sentence-transformers counts as third-party code).
"""

from pathlib import Path, PureWindowsPath
from typing import ClassVar

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import InputModule

from genvec import inference
from genvec.errors import CheckpointError
from genvec.integrations.common import resolve_model
from genvec.loading import load_model
from genvec.model import GenVecModel

CHECKPOINT_DIR = "genvec"


class GenVecModule(InputModule):
    """The sentence-transformers module around a `GenVecModel`."""

    config_file_name = "genvec_st_config.json"  # not config.json: that name belongs to transformers
    config_keys: ClassVar[list[str]] = ["checkpoint"]
    # So encode_query / encode_document's task reaches forward and preprocess.
    forward_kwargs: ClassVar[set[str]] = {"task"}

    def __init__(self, model: GenVecModel, checkpoint: str = CHECKPOINT_DIR) -> None:
        super().__init__()
        self.genvec = model
        self.checkpoint = checkpoint

    @property
    def tokenizer(self):
        return self.genvec.tokenizer

    @property
    def max_seq_length(self) -> int:
        return inference.text_limit(self.genvec)

    def preprocess(self, inputs, prompt: str | None = None, task: str | None = None, **kwargs) -> dict:
        side = task if task in inference.SIDES and not prompt else None
        prepared = inference.prepare(self.genvec, list(inputs), instruction=prompt or None, side=side)
        inference.warn_if_cut(prepared, stacklevel=4)  # <- sentence-transformers' encode <- the caller
        return {"genvec_inputs": prepared}

    def forward(self, features: dict, task: str | None = None, **kwargs) -> dict:
        inputs = features["genvec_inputs"]
        vectors = inference.embed(self.genvec, inputs, batch_size=len(inputs))  # sentence-transformers batched them
        features["sentence_embedding"] = torch.from_numpy(vectors).to(self.genvec.device)
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
        checkpoint = _inside(config.get("checkpoint", CHECKPOINT_DIR), Path(root) / cls.config_file_name)
        return cls(load_model(Path(root) / checkpoint, device="cpu"), checkpoint=checkpoint)


def _inside(checkpoint: object, config_path: Path) -> str:
    """`checkpoint` when it names a directory inside the saved model's own (a relative path without `..`): a saved
    model is one directory, and its config must not make loading it read a checkpoint from elsewhere.

    Raises:
        CheckpointError: anything else, naming the config file and the value.
    """
    path = PureWindowsPath(checkpoint) if isinstance(checkpoint, str) else None  # splits at "/" and "\\" alike
    if path is None or not path.parts or path.anchor or ".." in path.parts:
        raise CheckpointError(f"{config_path} sets checkpoint to {checkpoint!r}; it must be a directory inside the "
                              f"saved model's directory, as save() writes it ({CHECKPOINT_DIR!r}). Restore it, or "
                              "save the model again.")
    return checkpoint


def to_sentence_transformer(model: str | Path | GenVecModel, *, device: str | None = None,
                            truncate_dim: int | None = None) -> SentenceTransformer:
    """A `SentenceTransformer` over a genvec model (a loaded one, or a checkpoint to load); see the module docstring.

    Example:
        >>> st = genvec.to_sentence_transformer("runs/quickstart/train/final")
        >>> st.encode_query(["where do polar bears live?"]).shape
        (1, 384)
    """
    model = resolve_model(model, device or "auto")
    inference.check_dimensions(model, truncate_dim)  # sentence-transformers itself would cut any model
    return SentenceTransformer(modules=[GenVecModule(model)], similarity_fn_name="cosine",
                               device=device or str(model.device), truncate_dim=truncate_dim)
