"""The official LLM2Vec-Gen releases as mteb 2 models: their `ModelMeta`s, the loader that builds genvec's encoder.

mteb finds a model by name in its registry (`mteb.models.model_implementations.MODEL_REGISTRY`, the dict behind
`mteb.get_model` and `mteb.get_model_meta`); a model is added upstream as a `ModelMeta` with a `loader` (mteb's
`docs/contributing/adding_a_model.md`). `release_metas()` declares one for each release of `official.RELEASES`, in
that form: hub id, backbone (`adapted_from`), parameter counts, embedding size, licence, training code and data,
citation, cosine similarity, instructions used; its loader is `load_release`, which opens the release with
`genvec.load_model` and wraps it with `genvec.evaluate.mteb_encoder` (the paper's instruction for each task, from
`PAPER_INSTRUCTIONS`; a task outside that table is an error, never mteb's generic prompt). `register()` adds them to
the registry of the mteb installed, explicitly: importing this module registers nothing. Then

    >>> import mteb
    >>> from genvec.evaluate.registry import register
    >>> metas = register()
    >>> encoder = mteb.get_model("McGill-NLP/LLM2Vec-Gen-Qwen3-06B")

`export_results` moves what `genvec evaluate` scored for a release into an mteb `ResultCache` under the release's
registered name and revision, checked first (the paper's instructions, the meta's similarity, mteb's own task data),
ready for `ResultCache.submit_results`.

What genvec cannot know offline is left to the caller, never guessed: the hub commit of each release (`revisions`;
mteb's `revision=None` means "valid for every revision", and results cannot be submitted without one) and the
memory footprint (`ModelMeta.calculate_memory_usage_mb` reads it from the hub).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from genvec.checkpoint.official import RELEASES
from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable
from genvec.evaluate.mteb_encoder import mteb_encoder
from genvec.evaluate.run import RESULT_RECORD
from genvec.formats import read_document


@dataclass(frozen=True)
class ReleaseFacts:
    """What a release is built on."""

    base_model: str
    """The backbone (`model_name_or_path` of the release's run_config.yml)."""
    hidden_size: int
    """H of the backbone's public config; also the embedding size: each release distils the LLM2Vec teacher of its
    own backbone, whose embeddings have H dimensions (paper brief, sections 3.1 and 5)."""
    backbone_parameters: int
    """The backbone's parameters without an untied LM head (the embedding does not use it), as mteb's registry
    counts these backbones (Qwen3-Embedding-0.6B/4B/8B, and models adapted from Qwen3-1.7B and Qwen2.5-0.5B)."""


RELEASE_FACTS = {
    "McGill-NLP/LLM2Vec-Gen-Qwen3-06B": ReleaseFacts("Qwen/Qwen3-0.6B", 1024, 595_776_512),
    "McGill-NLP/LLM2Vec-Gen-Qwen3-17B": ReleaseFacts("Qwen/Qwen3-1.7B", 2048, 1_720_574_976),
    "McGill-NLP/LLM2Vec-Gen-Qwen3-4B": ReleaseFacts("Qwen/Qwen3-4B", 2560, 4_021_774_336),
    "McGill-NLP/LLM2Vec-Gen-Qwen3-8B": ReleaseFacts("Qwen/Qwen3-8B", 4096, 7_567_295_488),
    "McGill-NLP/LLM2Vec-Gen-Qwen25-05B": ReleaseFacts("Qwen/Qwen2.5-0.5B-Instruct", 896, 494_032_768),
}
assert tuple(RELEASE_FACTS) == RELEASES, "every official release needs its facts"

VOCABULARY_ROWS = 151_936  # embedding rows of the Qwen3 and Qwen2.5 configs
NUM_SPECIAL_TOKENS = 10  # N of the current (v2) releases, all compression tokens
MAX_TOKENS = 512  # max_input_length of the releases' training and of the paper's MTEB evaluation
RELEASE_DATE = "2026-03-11"  # the paper's first version, published with the releases
LICENSE = "mit"  # the licence of the release's repository, McGill-NLP/llm2vec-gen; check the model cards upstream
TRAINING_CODE = "https://github.com/McGill-NLP/llm2vec-gen"
# Single-turn Tulu-3 SFT prompts, each answered by the release's own backbone; the responses are published.
TRAINING_DATA = "https://huggingface.co/datasets/McGill-NLP/llm2vec-gen-tulu"
REFERENCE = "https://huggingface.co/{name}"
SIMILARITY = "cosine"  # the paper's MTEB protocol (AdvBench-IR's dot product is genvec's own task, not mteb's)
CITATION = """@misc{behnamghader2026llm2vecgen,
  title = {{LLM2Vec-Gen}: Generative Embeddings from Large Language Models},
  author = {BehnamGhader and Adlakha and Schmidt and Chapados and Mosbach and Reddy},
  year = {2026},
  eprint = {2603.10913},
  archivePrefix = {arXiv},
  url = {https://arxiv.org/abs/2603.10913},
}"""


def release_metas(
    *,
    revisions: Mapping[str, str] | None = None,
    paths: Mapping[str, str | Path] | None = None,
    backbones: Mapping[str, str | Path] | None = None,
) -> list:
    """An mteb `ModelMeta` for each official release, in the order of `official.RELEASES`.

    Args:
        revisions: release id -> the hub commit it was evaluated at (the meta's `revision`, and what the loader
            downloads); releases left out get None, "valid for every revision" in mteb's terms.
        paths: release id -> a local copy of the release, which the loader opens instead of downloading it.
        backbones: release id -> a local copy of its backbone (by default the loader loads the base model the
            release names, from the hub or its cache).

    Raises:
        InputError: mteb is not installed, or a key that is not an official release id.
    """
    from mteb.models.model_meta import ModelMeta

    given = {"revisions": revisions or {}, "paths": paths or {}, "backbones": backbones or {}}
    for parameter, mapping in given.items():
        unknown = sorted(set(mapping) - set(RELEASES))
        if unknown:
            raise InputError(f"{parameter} names {unknown}, which are not official LLM2Vec-Gen releases; use "
                             f"{', '.join(RELEASES)}.", param=parameter)
    metas = []
    for name, facts in RELEASE_FACTS.items():
        hidden = facts.hidden_size
        trainable = NUM_SPECIAL_TOKENS * hidden + 2 * (hidden * hidden + hidden)  # special rows, R (H->H), A (H->H)
        local = {key: str(mapping[name]) for key, mapping in (("path", given["paths"]), ("backbone",
                                                                                          given["backbones"]))
                 if name in mapping}
        metas.append(ModelMeta(
            loader=load_release, loader_kwargs=local, name=name, revision=given["revisions"].get(name),
            release_date=RELEASE_DATE, languages=["eng-Latn"], n_parameters=facts.backbone_parameters + trainable,
            n_embedding_parameters=VOCABULARY_ROWS * hidden, memory_usage_mb=None, max_tokens=MAX_TOKENS,
            embed_dim=hidden, license=LICENSE, open_weights=True, public_training_code=TRAINING_CODE,
            public_training_data=TRAINING_DATA, framework=["PyTorch", "Transformers", "safetensors"],
            reference=REFERENCE.format(name=name), similarity_fn_name=SIMILARITY, use_instructions=True,
            training_datasets=set(),  # Tulu-3 prompts and the backbone's responses: no MTEB task
            adapted_from=facts.base_model, citation=CITATION, model_type=["dense"], modalities=["text"],
        ))
    return metas


def register(
    *,
    revisions: Mapping[str, str] | None = None,
    paths: Mapping[str, str | Path] | None = None,
    backbones: Mapping[str, str | Path] | None = None,
) -> list:
    """Add the releases' `ModelMeta`s (`release_metas`, same arguments) to the registry of the mteb installed, so
    that `mteb.get_model(ID)` and `mteb.get_model_meta(ID)` find them; an entry of the same name is replaced.
    Returns the metas."""
    from mteb.models.model_implementations import MODEL_REGISTRY

    metas = release_metas(revisions=revisions, paths=paths, backbones=backbones)
    for meta in metas:
        MODEL_REGISTRY[meta.name] = meta
    return metas


def load_release(
    model_name: str,
    revision: str | None = None,
    *,
    path: str | Path | None = None,
    backbone: str | Path | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_size: int = 32,
    instructions: str | Path | None = None,
    embed_dim: int | None = None,
):
    """The loader of a release's `ModelMeta` (mteb calls it as `loader(name, revision=..., **loader_kwargs,
    device=...)`): the release opened by `genvec.load_model`, as genvec's mteb encoder.

    Args:
        model_name: the release's hub id (one of `official.RELEASES`).
        revision: the hub commit to download (None: the newest).
        path: a local copy of the release, opened instead of downloading it (then `revision` is not used).
        backbone: a local copy of the backbone (default: the base model the release names).
        device: "auto" when None; dtype: the release's own when None.
        batch_size: texts per forward pass.
        instructions: a YAML or JSON instruction table replacing the paper's (`InstructionTable.from_file`).
        embed_dim: what mteb passes when asked for a size; only the release's own is possible.

    Raises:
        InputError: not an official release, or another embedding size. CheckpointError: the release cannot be read.
    """
    from genvec.loading import load_model

    if model_name not in RELEASE_FACTS:
        raise InputError(f"model_name={model_name!r} is not an official LLM2Vec-Gen release; use one of "
                         f"{', '.join(RELEASES)}.", param="model_name")
    model = load_model(path or model_name, backbone=None if backbone is None else str(backbone),
                       device=device or "auto", dtype=dtype, revision=None if path else revision)
    if embed_dim is not None and embed_dim != model.embedding_dim:
        raise InputError(f"embed_dim={embed_dim}, but {model_name} gives {model.embedding_dim}-dimensional "
                         "embeddings (it has no other size); leave embed_dim out.", param="embed_dim")
    table = InstructionTable.from_file(instructions) if instructions else None
    return mteb_encoder(model, instructions=table, name=model_name, batch_size=batch_size, similarity=SIMILARITY)


def export_results(output: str | Path, meta, cache, *, model: str | None = None) -> list[Path]:
    """Copy what `genvec evaluate --model RELEASE --output OUTPUT` scored into mteb's `cache` (a `ResultCache`) as
    results of the release's registered `meta`, ready for `cache.submit_results(meta)`. Returns the files written.

    A result is taken only if it was scored as the registered model scores: with the paper's instruction for its
    task, the meta's similarity, and mteb's own data of the task (the dataset revision mteb's registry names; a local
    task is never submitted under an mteb name).

    Args:
        output: the `--output` directory of `genvec evaluate`.
        meta: the release's `ModelMeta`, with its hub `revision` (see `register`).
        cache: the `mteb.ResultCache` to write to (`mteb.ResultCache()` is mteb's default, ~/.cache/mteb).
        model: genvec's name of the results in `output` (default `genvec/<release name>`, as `genvec evaluate
            --model <release id>` names them).

    Raises:
        InputError: no revision in `meta`, no results of `model` in `output` (or results of several revisions of
            it), or a result scored otherwise (every such result is named).
    """
    import mteb

    if meta.revision is None:
        raise InputError(f"meta {meta.name} has no revision; mteb submits results by revision: register the release "
                         "with revisions={name: <hub commit>} (the commit the evaluation downloaded, e.g. "
                         "huggingface_hub.model_info(name).sha).", param="meta")
    root = Path(output) / "mteb"
    model = model or f"genvec/{meta.name.split('/', 1)[1]}"
    folder = root / "results" / model.replace("/", "__").replace(" ", "_")
    revisions = sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    if len(revisions) != 1:
        found = f"results of {len(revisions)} revisions ({', '.join(revisions)})" if revisions else "no results"
        raise InputError(f"{folder} holds {found}; pass the output of one evaluation of {meta.name} (or model= the "
                         "name genvec gave its results).", param="output")
    files = sorted(path for path in (folder / revisions[0]).glob("*.json") if path.name != "model_meta.json")
    records = _result_records(root)
    problems = [problem for path in files
                if (problem := _why_not_submittable(path.relative_to(root).as_posix(), records, meta))]
    if problems:
        raise InputError(f"{len(problems)} result(s) under {folder} were not scored as {meta.name} is registered: "
                         + "; ".join(problems) + ". Evaluate again without --instructions or --similarity.",
                         param="output")
    for path in files:
        cache.save_to_cache(mteb.TaskResult.from_disk(path), meta)
    return [cache.get_task_result_path(path.stem, meta) for path in files]


def _result_records(root: Path) -> dict[str, dict]:
    """What each result of `genvec evaluate` was scored with (`genvec.evaluate.run`'s record), by path."""
    path = root / RESULT_RECORD
    if not path.is_file():
        return {}
    document = read_document(path, "genvec-results", 1, InputError, "evaluate again into a new output")
    return dict(document.get("results") or {})


def _why_not_submittable(name: str, records: dict[str, dict], meta) -> str | None:
    """Why the result file `name` (relative to the mteb root) cannot count as the registered model's (None: it can)."""
    import mteb

    task = Path(name).stem
    record = records.get(name)
    if record is None:
        return f"{task}: {RESULT_RECORD} does not say how it was scored"
    try:
        official = mteb.get_task(task).metadata.revision
        paper = InstructionTable().for_task(task)
    except (KeyError, ValueError, InputError):
        return f"{task}: not an mteb task with an instruction in the paper's table"
    sides = {"query": paper.for_side("query"), "document": paper.for_side("document")}
    if record.get("instructions") != sides:
        return f"{task}: other instructions than the paper's"
    if record.get("similarity") != meta.similarity_fn_name.value:
        return f"{task}: similarity {record.get('similarity')}, not {meta.similarity_fn_name.value}"
    if record.get("data") != official:
        return f"{task}: data {record.get('data')}, not mteb's (revision {official})"
    return None
