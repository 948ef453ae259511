"""The data pipeline of a training run: `config.data` and `config.teacher` -> (query, response, teacher embedding).

`prepare_examples` runs the two data stages that are missing (the backbone answers the queries, `responses.py`; the
teacher embeds the responses, `targets.py`) and reads the finished files back as `TrainingExamples`. Each process
does its own shard of each stage and then reads the whole dataset. Finished files are reused: generation resumes
or returns at once, and the teacher embeds only responses not yet stored.

What it does not do: tokenise, batch or train (`genvec.training`), or load a backbone (the caller passes its own).
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from genvec.backbone import LoadedBackbone
from genvec.config import GenVecConfig
from genvec.data.dataset import find_shards, incomplete_files, read_responses
from genvec.data.responses import generate_responses
from genvec.errors import TrainingError
from genvec.targets import STORE_FILE, TargetStore, compute_targets


@dataclass
class TrainingExamples:
    """What training reads: queries, the backbone's responses to them, and teacher embeddings of the responses."""

    queries: list[str]
    responses: list[str]
    teacher_embeddings: np.ndarray  # (N, D) float32 (may be a memory map)

    def __len__(self) -> int:
        return len(self.queries)


class Processes(Protocol):
    """The processes that share the stages, as `accelerate.Accelerator` describes them."""

    num_processes: int
    process_index: int
    device: object

    def wait_for_everyone(self) -> None: ...


def prepare_examples(config: GenVecConfig, backbone: LoadedBackbone, processes: Processes) -> TrainingExamples:
    """The training triples from `config.data`, generating the responses and teacher embeddings that are missing.

    Args:
        config: `data.queries` (answered when set), `data.responses` and `data.targets` (default: `responses.jsonl`
            and `targets/` in `train.run_dir`), `teacher` (run when `teacher.name` is set).
        backbone: the loaded backbone that answers the queries (`GenVecModel.loaded_backbone`).
        processes: how many processes share the work and which one this is; the teacher runs on its `device`.

    Returns:
        `TrainingExamples` of every response, in source order, the same in every process.

    Raises:
        TrainingError: no responses and no queries, unfinished responses, or a target store that lacks some of them.
    """
    run_dir = Path(config.train.run_dir)
    responses_path = Path(config.data.responses or run_dir / "responses.jsonl")
    targets_path = Path(config.data.targets or run_dir / "targets")
    shards = {"num_shards": processes.num_processes, "shard_id": processes.process_index}
    if config.data.queries:
        generate_responses(config.data.queries, responses_path, backbone, config.data, **shards)
        processes.wait_for_everyone()
    elif not (responses_path.exists() or find_shards(responses_path)):
        raise TrainingError(
            f"no responses at {str(responses_path)!r} and no queries to generate them from; set data.responses to "
            "a responses file, or data.queries (and model.backbone) to let the backbone answer them."
        )
    _check_finished(responses_path)
    records = read_responses(responses_path)
    texts = [record.response for record in records]
    if config.teacher.name:
        teacher = dataclasses.replace(config.teacher, device=str(processes.device))
        compute_targets(texts, teacher, targets_path, batch_size=teacher.batch_size,
                        storage_dtype=teacher.storage_dtype, **shards)
        processes.wait_for_everyone()
    store = _open_store(targets_path, len(texts))
    missing = len(texts) - sum(store.contains(texts))
    if missing:
        raise TrainingError(
            f"the target store {str(targets_path)!r} (teacher {store.teacher_name!r}) lacks {missing} of the "
            f"{len(texts)} responses in {str(responses_path)!r}: it was made for other responses, or it is "
            "damaged. Set teacher.name to compute the missing ones, or point data.targets at the store made for "
            "these responses."
        )
    return TrainingExamples([r.query for r in records], texts, store.lookup(texts))


def _check_finished(responses_path: Path) -> None:
    unfinished = incomplete_files(responses_path)
    if unfinished:
        raise TrainingError(
            f"the responses are unfinished: {'; '.join(unfinished)}. Training on them would silently use a part of "
            "the queries; finish them first (rerun the same generate-responses command, or set data.queries)."
        )


def _open_store(targets_path: Path, count: int) -> TargetStore:
    if not (targets_path / STORE_FILE).is_file():
        raise TrainingError(
            f"no target store at {str(targets_path)!r} for the {count} responses; set teacher.name so that training "
            "computes it, or data.targets to an existing store (`genvec compute-targets`)."
        )
    return TargetStore.open(targets_path)
