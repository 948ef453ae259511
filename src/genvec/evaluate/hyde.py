"""HyDE baselines: the backbone writes a response, the teacher embeds it (generate, then embed): genvec's ceiling.

genvec learns to produce, in one forward pass, the teacher's embedding of the backbone's response to its input. HyDE
computes that the slow way, so for a given backbone and teacher it is what the method can reach, and its cost is what
genvec saves. Two baselines, as `--baseline` names them:

- `hyde` (`hyde:N`): HyDE as LangChain, LlamaIndex and Haystack implement it: the backbone answers each query (each
  text of a symmetric task) and the teacher embeds the response (with N > 1, the mean of the teacher embeddings of N
  sampled responses); documents are embedded by the teacher as they are.
- `hyde-target` (`hyde-target:N`): every text, documents included, gets the instruction genvec's encoder gives it in
  the task, the backbone answers it and the teacher embeds the response: what genvec is trained to reproduce for that
  input. It also measures the held-out distillation cosine of each task: the mean cosine between genvec's embedding
  of a query-side text and the teacher's embedding of the backbone's response to it (the training objective, on data
  training never saw).

Responses are generated as the model's training responses were: the prompts of `genvec.data.prompts` (the chat
template, thinking off, `prompt_max_length`) and the transformers engine of `genvec.data.engines` on the loaded
backbone, with the checkpoint's `data` settings (`max_new_tokens`, `decoding`, `seed`) unless the eval section's
`hyde_*` fields override them (`response_settings`). The teacher is the checkpoint's `teacher` section, loaded by
`genvec.teacher`. Each batch of responses is appended to `OUTPUT/hyde/responses.jsonl` and synced before the next
begins, every response keyed by what determines it (the backbone, the resolved generation settings, the prompt's
token ids, the sample number): a repeated or resumed evaluation generates none twice, and a kill loses at most the
batch in flight. Sampled responses are seeded per batch from the seed and the batch's first key, as
`generate_responses` seeds its batches; the cache keeps the ones drawn first. Each line also records the seconds its
response took to generate, so a HyDE method's cost per query (generation plus teacher) is its whole cost even when
its responses come from the cache.

Shapes: N texts, S samples per text, D teacher embedding size.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

from genvec.config import DataConfig, EvalConfig
from genvec.data.collate import join_instruction
from genvec.data.engines import open_engine
from genvec.data.prompts import PromptBuilder
from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable
from genvec.evaluate.mteb_encoder import QueryCosts, import_mteb, model_meta, text_side
from genvec.files import append_synced
from genvec.model import GenVecModel
from genvec.teacher import Teacher, load_teacher

logger = logging.getLogger(__name__)

RESPONSES_FILE = Path("hyde") / "responses.jsonl"
_NAME = re.compile(r"hyde(-target)?(?::(.*))?")


@dataclass(frozen=True)
class HydeBaseline:
    """One HyDE baseline: `target` (hyde-target: both sides answered, with genvec's instructions) and the number
    of responses averaged per text."""

    target: bool = False
    samples: int = 1

    @property
    def name(self) -> str:
        """Its name in mteb's results: `baseline/hyde`, `baseline/hyde-3` (hyde:3), `baseline/hyde-target`."""
        kind = "hyde-target" if self.target else "hyde"
        return f"baseline/{kind}" + (f"-{self.samples}" if self.samples > 1 else "")


def parse_hyde(name: str) -> HydeBaseline | None:
    """The HyDE baseline `name` asks for (`hyde`, `hyde:N`, `hyde-target`, `hyde-target:N`); None for any other name.

    Raises:
        InputError: a HyDE name whose N is not a whole number >= 1.
    """
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    samples = match.group(2)
    if samples is not None and not (samples.isdigit() and int(samples) >= 1):
        raise InputError(f"baseline {name!r}: N in hyde:N is the number of responses averaged per text, a whole "
                         f"number >= 1, got {samples!r}; e.g. hyde:4.", param="baselines")
    return HydeBaseline(target=match.group(1) is not None, samples=int(samples or 1))


def response_settings(data: DataConfig, config: EvalConfig) -> DataConfig:
    """How HyDE's responses are generated: as the model's training responses were (`data`, its checkpoint's section),
    with the eval section's `hyde_*` overrides, by the transformers engine on the backbone already loaded."""
    return dataclasses.replace(
        data,
        max_new_tokens=config.hyde_max_new_tokens or data.max_new_tokens,
        decoding=config.hyde_decoding or data.decoding,
        generation_batch_size=config.hyde_batch_size,
        engine="transformers",  # vLLM would load a second copy of the backbone the evaluation already holds
    )


def hyde_encoders(
    baselines: list[HydeBaseline],
    model: GenVecModel,
    output: Path,
    *,
    instructions: InstructionTable,
    config: EvalConfig,
    similarity: Literal["cosine", "dot"] = "cosine",
    show_progress: bool = True,
) -> list:
    """An mteb encoder per HyDE baseline, sharing one teacher, one responder and the response cache under `output`.

    Raises:
        InputError: the model's config names no teacher, a teacher that cannot be loaded, hyde:N with N > 1 and
            greedy decoding, or hyde-target with a teacher whose embedding size is not the model's.
    """
    if not model.config.teacher.name:
        raise InputError("the HyDE baselines embed responses with the model's teacher, and this model's config names "
                         "none (teacher.name is empty: an official release, or a model never trained by genvec); "
                         "evaluate a checkpoint that genvec trained.", param="baselines")
    responder = Responder(model, response_settings(model.config.data, config),
                          ResponseCache(output / RESPONSES_FILE), show_progress=show_progress)
    for baseline in baselines:
        if baseline.samples > 1 and not responder.samples:
            raise InputError(f"{baseline.name} averages {baseline.samples} sampled responses per text, but responses "
                             "are decoded greedily (all alike); set eval.hyde_decoding to sample.", param="baselines")
    teacher = load_teacher(model.config.teacher)
    if any(baseline.target for baseline in baselines) and teacher.dim != model.embedding_dim:
        raise InputError(f"hyde-target measures how close genvec's embeddings (D={model.embedding_dim}) come to "
                         f"its teacher's ({teacher.name}, D={teacher.dim}), but their sizes differ: the config's "
                         "teacher is not the one this model was trained to match. Evaluate a checkpoint trained "
                         "against its teacher, or ask for the baseline \"hyde\" instead.", param="baselines")
    return [_mteb_encoder(HydeEmbedder(baseline, responder, teacher, model, instructions, config.batch_size),
                          similarity) for baseline in baselines]


class ResponseCache:
    """HyDE's responses by key, in a JSON Lines file that only grows, each batch synced to disk as it is added.

    A torn last line (a kill inside a write) is cut off when the file is opened; any other line that is not a
    response record is an error naming it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict] = _read_responses(path)

    def add(self, records: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as file:
            append_synced(file, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
        self.records.update((record["key"], record) for record in records)


class Responder:
    """The model's backbone answering texts as its training responses were generated; each response cached.

    Attributes:
        settings: the generation settings (`response_settings`).
        samples: whether responses are sampled (so several per text differ).
        fingerprint: what every response depends on besides its prompt: the backbone, the resolved settings.
    """

    def __init__(self, model: GenVecModel, settings: DataConfig, cache: ResponseCache, *,
                 show_progress: bool = True) -> None:
        self.engine, self.tokenizer = open_engine(model.loaded_backbone, settings)
        self.prompts = PromptBuilder(self.tokenizer, settings.prompt_max_length)
        self.settings, self.cache, self.show_progress = settings, cache, show_progress
        self.samples = bool(self.engine.settings["do_sample"])
        self.fingerprint = {
            "backbone": {**model.backbone_record, "dtype": str(model.dtype)},
            "generation": self.engine.settings, "prompt_max_length": settings.prompt_max_length,
            "seed": settings.seed, "chat_template": self.prompts.uses_template,
            "thinking_disabled": self.prompts.no_thinking,
        }
        self._digest = hashlib.sha256(json.dumps(self.fingerprint, sort_keys=True, default=str).encode()).hexdigest()

    def respond(self, texts: list[str], samples: int) -> list[list[dict]]:
        """`samples` response records (`response`, `seconds`, ...) of each text, generating those not cached."""
        keys = []
        missing: dict[str, list[int]] = {}  # key -> prompt token ids, each response generated once
        for text in texts:
            prompt_ids = self.prompts(text)
            row = [self._key(prompt_ids, sample) for sample in range(samples)]
            missing.update((key, prompt_ids) for key in row if key not in self.cache.records)
            keys.append(row)
        if missing:
            self._generate(missing)
        return [[self.cache.records[key] for key in row] for row in keys]

    def _key(self, prompt_ids: list[int], sample: int) -> str:
        text = json.dumps({"settings": self._digest, "prompt": prompt_ids, "sample": sample})
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def _generate(self, missing: dict[str, list[int]]) -> None:
        """Answer the missing prompts in batches of similar length; each batch is cached before the next starts."""
        order = sorted(missing, key=lambda key: len(missing[key]))
        size = self.settings.generation_batch_size
        with tqdm(total=len(order), desc="HyDE responses", unit="response", disable=not self.show_progress,
                  dynamic_ncols=True) as bar:
            for start in range(0, len(order), size):
                batch = order[start : start + size]
                began = time.perf_counter()
                generated = self.engine.generate([missing[key] for key in batch], self._seeds(batch))
                texts = self.tokenizer.batch_decode([tokens for tokens, _ in generated], skip_special_tokens=True)
                seconds = (time.perf_counter() - began) / len(batch)
                self.cache.add([{"key": key, "response": text.strip(), "response_tokens": len(tokens),
                                 "finish_reason": "eos" if stopped else "length", "seconds": seconds}
                                for key, text, (tokens, stopped) in zip(batch, texts, generated)])
                bar.update(len(batch))

    def _seeds(self, keys: list[str]) -> list[int] | None:
        """A sampling seed per response from the configured seed and its key (the engine seeds a batch with the
        first); None leaves sampling unseeded, as `data.seed: null` asks."""
        if self.settings.seed is None:
            return None
        return [int(hashlib.sha256(f"{self.settings.seed}:{key}".encode()).hexdigest()[:15], 16) for key in keys]


class HydeEmbedder:
    """One HyDE baseline's vectors of a task's texts, what they cost per query, and (hyde-target) the held-out
    distillation cosine of each task."""

    def __init__(self, baseline: HydeBaseline, responder: Responder, teacher: Teacher, model: GenVecModel,
                 instructions: InstructionTable, batch_size: int) -> None:
        self.baseline, self.responder, self.teacher = baseline, responder, teacher
        self.model, self.instructions, self.batch_size = model, instructions, batch_size
        self.costs = QueryCosts()
        self.cosines: dict[str, list[float]] = {}

    def embed(self, texts: list[str], *, task: str, side: Literal["query", "document"]) -> np.ndarray:
        """(N, D) float32: the teacher's embedding of the backbone's responses, or of the documents as they are."""
        if side == "document" and not self.baseline.target:
            return self.teacher.embed(texts)  # classic HyDE: documents are embedded as they are
        instruction = self.instructions.instruction(task, side) if self.baseline.target else None
        records = self.responder.respond(join_instruction(texts, instruction), self.baseline.samples)
        began = time.perf_counter()
        responses = [record["response"] for row in records for record in row]
        vectors = self.teacher.embed(responses).reshape(len(texts), self.baseline.samples, -1).mean(axis=1)  # (N, D)
        if side == "query":
            generation = sum(record["seconds"] for row in records for record in row)
            self.costs.add(task, generation + time.perf_counter() - began, len(texts))
            if self.baseline.target:
                self._measure_distillation(task, texts, instruction, vectors)
        return vectors.astype(np.float32, copy=False)

    def measures(self) -> dict[str, dict[str, float]]:
        """Per task: the cost per query and, for hyde-target, the held-out distillation cosine."""
        measures = self.costs.per_query()
        for task, cosines in self.cosines.items():
            measures.setdefault(task, {})["distillation_cosine"] = float(np.mean(cosines))
        return measures

    def _measure_distillation(self, task: str, texts: list[str], instruction: str | None,
                              targets: np.ndarray) -> None:
        """Cosine of genvec's embedding of each text (as its encoder reads it in this task) to its target."""
        embeddings = self.model.encode(texts, instruction=instruction, batch_size=self.batch_size,
                                       show_progress=False, normalize=True)
        targets = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
        self.cosines.setdefault(task, []).extend((embeddings * targets).sum(axis=1).tolist())


def _mteb_encoder(embedder: HydeEmbedder, similarity: str):
    """`embedder` as an mteb encoder, its revision naming everything its vectors depend on (the backbone and the
    generation settings, the teacher, the number of samples); hyde-target's results also depend on the model whose
    distillation they measure and on the instructions, which `genvec.evaluate.run` records beside them."""
    _, AbsEncoder, _ = import_mteb()

    class HydeEncoder(AbsEncoder):
        def __init__(self) -> None:
            self.embedder = embedder

        def encode(self, inputs, *, task_metadata, hf_split, hf_subset, prompt_type=None, **kwargs) -> np.ndarray:
            texts = [str(text) for text in inputs.dataset["text"]]
            return self.embedder.embed(texts, task=task_metadata.name, side=text_side(prompt_type))

        def measures(self) -> dict[str, dict[str, float]]:
            return self.embedder.measures()

    facts = {"responses": embedder.responder.fingerprint, "teacher": embedder.teacher.name,
             "samples": embedder.baseline.samples, "target": embedder.baseline.target}
    revision = hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:12]
    encoder = HydeEncoder()
    encoder.mteb_model_meta = model_meta(embedder.baseline.name, revision, embedder.teacher.dim, similarity,
                                         use_instructions=embedder.baseline.target)
    return encoder


def _read_responses(path: Path) -> dict[str, dict]:
    """The records of a response cache by key ({} when there is none); a torn last line is cut off the file."""
    if not path.exists():
        return {}
    data = path.read_bytes()
    complete = data.rfind(b"\n") + 1
    if complete < len(data):  # a kill inside the last write: the responses of that batch are generated again
        logger.info("%s: dropping a torn last line (%d bytes).", path, len(data) - complete)
        os.truncate(path, complete)
    records = {}
    for number, line in enumerate(data[:complete].decode("utf-8").splitlines(), start=1):
        try:
            record = json.loads(line)
            records[record["key"]] = {**record, "response": str(record["response"]),
                                      "seconds": float(record["seconds"])}
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"{path}: line {number} is not a HyDE response record ({type(err).__name__}: {err}); "
                             "delete the file to generate the responses again.") from err
    return records
