"""A genvec model as an mteb 2 encoder: every task's texts get the instruction genvec's table gives them.

`mteb_encoder(model)` builds an mteb encoder (an `AbsEncoder`, defined once mteb is imported) with a `ModelMeta`
attached: name `genvec/<checkpoint directory>`, revision the model's identity (`GenVecModel.identity`: backbone,
settings and trained weights, so results of two models never mix in mteb's cache; what else a result depends on,
its task's data, instructions and similarity, `genvec.evaluate.run` records beside mteb's results), the embedding
size, the similarity, `adapted_from` the backbone. Its `encode` reads the whole task's texts at once
(`inputs.dataset["text"]`), looks the task up in the `InstructionTable` (queries and symmetric texts get the task's
instruction, retrieval documents "Summarize the following passage:"), and calls `GenVecModel.encode`, the front door
(sorted by length, the shared instruction read once, float32). A task missing from the table is an error naming it:
mteb's own fallback prompts (e5-style task prompts, "Retrieve text based on user query.") never reach the model.
`baseline_encoder` wraps an input-centric baseline the same way. Every encoder measures, per task, the seconds its
query-side texts took (`QueryCosts`: retrieval queries, every text of a symmetric task; what a query costs at search
time on this machine); `measures()` reports them per query. An evaluation that scores smaller settings of a method
(`genvec.evaluate.sizes`) gives its encoder a `cache`: its vectors are then kept on disk and read back instead of
encoded again (a cached task measures no cost), and `sample_vectors` embeds the calibration sample.

Needs the `eval` extra (`pip install 'genvec[eval]'`); nothing here imports mteb until it is used.
"""

import time
from pathlib import Path
from typing import Literal

import numpy as np

from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable
from genvec.model import GenVecModel


class QueryCosts:
    """What a method spent, task by task, on the texts a query pays for at search time (retrieval queries; every text
    of a symmetric task), in seconds on this machine, while scoring it; documents are indexed ahead and not counted."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.texts: dict[str, int] = {}

    def add(self, task: str, seconds: float, texts: int) -> None:
        self.seconds[task] = self.seconds.get(task, 0.0) + seconds
        self.texts[task] = self.texts.get(task, 0) + texts

    def per_query(self) -> dict[str, dict[str, float]]:
        """{task: {"seconds_per_query": s, "queries": n}} of every task measured."""
        return {task: {"seconds_per_query": self.seconds[task] / count, "queries": count}
                for task, count in self.texts.items() if count}


def text_side(prompt_type) -> Literal["query", "document"]:
    """The side of the texts mteb passes with `prompt_type`: documents of a retrieval task, else queries (the texts
    of symmetric tasks get the query side's instruction)."""
    return "document" if prompt_type is not None and prompt_type.value == "document" else "query"


def import_mteb():
    try:
        import mteb
        from mteb.models.abs_encoder import AbsEncoder
        from mteb.models.model_meta import ModelMeta
    except ImportError as err:
        raise InputError(f"evaluation with mteb needs the eval extra: pip install 'genvec[eval]' ({err}).") from err
    return mteb, AbsEncoder, ModelMeta


def mteb_encoder(
    model: GenVecModel,
    *,
    instructions: InstructionTable | None = None,
    name: str | None = None,
    checkpoint: str | Path | None = None,
    batch_size: int = 32,
    similarity: Literal["cosine", "dot"] = "cosine",
    show_progress: bool = False,
):
    """An mteb encoder of `model` with its `ModelMeta` attached, ready for `mteb.evaluate(encoder, tasks)`.

    Args:
        model: the genvec model.
        instructions: the task -> instruction table; None is the paper's (`PAPER_INSTRUCTIONS`).
        name: the model's name in mteb's results (`org/name`); None is `genvec/<checkpoint directory name>`.
        checkpoint: the checkpoint directory (its name names the model when `name` is None).
        batch_size: texts per forward pass.
        similarity: "cosine", or "dot" (the raw inner product AdvBench-IR scores with).
        show_progress: progress bars of `encode`.

    Raises:
        InputError: mteb is not installed, or a name not of the form `org/name`.
    """
    _, AbsEncoder, _ = import_mteb()
    table = instructions or InstructionTable()
    label = name or f"genvec/{Path(checkpoint).name if checkpoint else 'model'}"

    class GenVecMtebEncoder(AbsEncoder):  # defined here: AbsEncoder exists only once mteb is imported
        def __init__(self) -> None:
            self.model, self.instructions, self.batch_size = model, table, batch_size
            self.show_progress = show_progress
            self.calls: list[tuple[str, str, str]] = []  # (task, side, instruction) of every encode, as run
            self.costs = QueryCosts()
            self.cache = None  # an `EmbeddingCache` when smaller settings are scored

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
            side = text_side(prompt_type)
            instruction = self.instructions.instruction(task_metadata.name, side)
            texts = [str(text) for text in inputs.dataset["text"]]  # the task's texts, in mteb's order
            self.calls.append((task_metadata.name, side, instruction))

            def run() -> np.ndarray:
                start = time.perf_counter()
                vectors = self.model.encode(texts, instruction=instruction, batch_size=self.batch_size,
                                            show_progress=self.show_progress)
                if side == "query":
                    self.costs.add(task_metadata.name, time.perf_counter() - start, len(texts))
                return vectors

            key = {"task": task_metadata.name, "side": side, "instruction": instruction}
            return cached(self, key, texts, run)

        def sample_vectors(self, texts: list[str]) -> np.ndarray:
            """(S, D): the calibration sample read with each of the model's saved instructions (query, document),
            as `genvec make-truncatable` reads its sample; as it is when the model saved none."""
            sides = [side for side in ("query", "document") if self.model.config.model.instructions.get(side)]
            return np.concatenate([
                cached(self, {"calibration": side}, texts, lambda side=side: self.model.encode(
                    texts, side=side, batch_size=self.batch_size, show_progress=self.show_progress))
                for side in sides or [None]])

        def measures(self) -> dict[str, dict[str, float]]:
            """What was measured per task while scoring (the cost per query)."""
            return self.costs.per_query()

    encoder = GenVecMtebEncoder()
    encoder.mteb_model_meta = model_meta(
        label, model.identity()[:12], model.embedding_dim, similarity, use_instructions=True,
        n_parameters=sum(p.numel() for p in model.parameters()), max_tokens=model.config.model.max_length,
        framework=["PyTorch", "safetensors"], adapted_from=model.config.model.backbone or None,
        reference="https://arxiv.org/abs/2603.10913",
    )
    return encoder


def model_meta(name: str, revision: str, embed_dim: int, similarity: str, **known):
    """An mteb `ModelMeta`: the fields given, every other field mteb requires set to None (unknown)."""
    _, _, ModelMeta = import_mteb()
    if name.count("/") != 1:
        raise InputError(f"an mteb model name must look like 'org/name', got {name!r}.")
    unknown = dict.fromkeys(("loader", "release_date", "languages", "n_parameters", "memory_usage_mb", "max_tokens",
                             "license", "open_weights", "public_training_code", "public_training_data",
                             "training_datasets"))
    fields = {"framework": ["PyTorch"], **unknown, **known}
    return ModelMeta(name=name, revision=revision, embed_dim=embed_dim, similarity_fn_name=similarity, **fields)


def baseline_encoder(
    name: str, encode, *, embed_dim: int, revision: str, similarity: Literal["cosine", "dot"] = "cosine"
):
    """An input-centric baseline as an mteb encoder: `encode(texts) -> (n, D)` reads every text as it is (no
    instruction), e.g. the backbone's mean-pooled states or a sentence-transformers model on the raw input.

    Args:
        name: its name in mteb's results, `org/name` (e.g. `baseline/mean-pool`).
        encode: the encoder function (see `genvec.evaluate.baselines`).
        embed_dim: D.
        revision: what tells two baselines of one name apart in mteb's result cache (e.g. a backbone fingerprint).
        similarity: "cosine" or "dot".
    """
    _, AbsEncoder, _ = import_mteb()

    class BaselineEncoder(AbsEncoder):
        def __init__(self) -> None:
            self.costs = QueryCosts()
            self.cache = None  # an `EmbeddingCache` when smaller settings are scored

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
            texts = [str(text) for text in inputs.dataset["text"]]

            def run() -> np.ndarray:
                start = time.perf_counter()
                vectors = np.asarray(encode(texts), dtype=np.float32)
                if text_side(prompt_type) == "query":
                    self.costs.add(task_metadata.name, time.perf_counter() - start, len(texts))
                return vectors

            return cached(self, {"task": task_metadata.name}, texts, run)

        def sample_vectors(self, texts: list[str]) -> np.ndarray:
            """(S, D): the calibration sample as it is (a baseline reads raw text)."""
            return cached(self, {"calibration": "raw"}, texts, lambda: np.asarray(encode(texts), dtype=np.float32))

        def measures(self) -> dict[str, dict[str, float]]:
            """What was measured per task while scoring (the cost per query)."""
            return self.costs.per_query()

    encoder = BaselineEncoder()
    encoder.mteb_model_meta = model_meta(name, revision, embed_dim, similarity, use_instructions=False)
    return encoder


def cached(encoder, key: dict[str, object], texts: list[str], run) -> np.ndarray:
    """`run()`'s vectors of `texts`, through the encoder's `cache` when it has one (keyed by its name and revision,
    `key` and the texts)."""
    if encoder.cache is None:
        return run()
    meta = encoder.mteb_model_meta
    return encoder.cache.vectors({"method": meta.name, "revision": meta.revision, **key}, texts, run)
