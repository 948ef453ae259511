"""Training checkpoints and resumption: `checkpoints/step-NNNNNNNN/` directories, written whole or not at all.

A checkpoint holds the trainable tensors (a native checkpoint that `genvec.load_model` opens), the optimizer state
(tensors only, read with `weights_only=True`), `trainer_state.json` (format header, step, scheduler, the run's
identity) and one RNG file per process. It is written under a temporary name and renamed when complete. Under FSDP
the trainables and optimizer moments are gathered with torch's state-dict helpers and re-sharded on load. Under an
elastic launch each checkpoint records the job's id, and a worker that the launcher restarts continues from the
newest checkpoint of its own job without being told to.
"""

import json
import logging
import os
import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from genvec.checkpoint.native import read_native_weights, save_native
from genvec.errors import ConfigError, TrainingError
from genvec.files import atomic_write, write_text_atomic
from genvec.formats import check_header, differences, header
from genvec.model import GenVecModel
from genvec.training.optim import TrainSession

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pt"
TRAINER_STATE_FORMAT = "genvec-trainer-state"
TRAINER_STATE_VERSION = 1
ALIGNMENT = ("alignment.weight", "alignment.bias")  # A's tensors among the trainables


def save_checkpoint(session: TrainSession) -> Path:
    """Write `checkpoints/step-NNNNNNNN/` of `session.step` atomically (temporary name, then rename), drop the
    checkpoints beyond `train.keep_last`, and record the step in `session.last_saved`; every process calls it."""
    accelerator, run_dir = session.accelerator, session.run_dir
    final = run_dir / CHECKPOINTS / f"step-{session.step:08d}"
    temporary = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    write_text_atomic(temporary / f"rng-{accelerator.process_index}.json", json.dumps(_rng_state()))
    # every process: FSDP gathers the shards
    trainables = to_teacher_scale(full_trainables(session.model), session.target_scale)
    optimizer_state = full_optimizer_state(session.model, session.optimizer)
    if accelerator.is_main_process:
        save_model(session.model, temporary, trainables)
        torch.save(optimizer_state, temporary / OPTIMIZER_STATE)
        state = {**header(TRAINER_STATE_FORMAT, TRAINER_STATE_VERSION), "step": session.step,
                 "scheduler": session.scheduler.state_dict(), "num_processes": accelerator.num_processes,
                 "run": session.identity, "elastic_job": session.elastic_job}
        write_text_atomic(temporary / TRAINER_STATE, json.dumps(state, indent=2) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
        for old in list_checkpoints(run_dir)[: -session.train_config.keep_last]:
            shutil.rmtree(old)
        logger.info("saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    session.last_saved = session.step
    return final


def save_model(model: GenVecModel, directory: Path, tensors: dict[str, torch.Tensor]) -> None:
    """A native checkpoint of `model` with `tensors` as its trainables (gathered from FSDP shards by the caller)."""
    save_native(directory, model.config, tensors, model.backbone_record)


def read_trainer_state(path: Path) -> dict:
    """`trainer_state.json` of checkpoint directory `path`; states written before it had a header read as version 0."""
    file = path / TRAINER_STATE
    fix = "delete this checkpoint directory to resume from an earlier one"
    try:
        document = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise TrainingError(f"{str(file)!r} could not be read ({err}): {fix}.") from err
    if isinstance(document, dict) and "format" not in document and "step" in document:
        return document  # written by genvec 0.1.0 before trainer states carried a format header
    return check_header(document, file, TRAINER_STATE_FORMAT, TRAINER_STATE_VERSION, TrainingError, fix)


def load_checkpoint(path: Path, session: TrainSession) -> None:
    """Restore the session to a checkpoint: trainables, optimizer, scheduler and RNG states, `step` and `last_saved`.

    Refuses a checkpoint of another run (other data, batch size, seed or length grouping would make its step point
    at other examples than `session.identity` says), a damaged state, and a checkpoint past `train.max_steps`.
    """
    state = read_trainer_state(path)
    step = state.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0 or "scheduler" not in state:
        raise TrainingError(f"{str(path / TRAINER_STATE)!r} is damaged (step {step!r}); delete {str(path)!r} to resume "
                            "from an earlier checkpoint.")
    max_steps = session.train_config.max_steps
    if step > max_steps:
        raise TrainingError(
            f"the checkpoint {str(path)!r} is at step {step}, past train.max_steps {max_steps}; raise max_steps to "
            f"at least {step}, or resume from an earlier checkpoint."
        )
    changed = differences(recorded_run(state), session.identity)
    if changed:
        raise TrainingError(
            f"cannot resume from {str(path)!r}: it belongs to another run (" + "; ".join(changed) + "). Resume "
            "with the same data and train settings, or start a new run_dir."
        )
    load_full_state(session.model, session.optimizer, path, session.target_scale)
    try:
        session.scheduler.load_state_dict(state["scheduler"])
        rng_file = path / f"rng-{session.accelerator.process_index}.json"
        if rng_file.is_file():
            _set_rng_state(json.loads(rng_file.read_text(encoding="utf-8")))
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise TrainingError(f"the scheduler or RNG state in {str(path)!r} is damaged ({type(err).__name__}: {err}); "
                            f"delete {str(path)!r} to resume from an earlier checkpoint.") from err
    session.step = session.last_saved = step
    logger.info("resumed from %s at step %d", path, step)


def recorded_run(state: dict) -> dict[str, object]:
    """The run identity a trainer state records; one written before runs set examples aside, or scaled teacher
    embeddings, set none aside and scaled none."""
    return {"heldout": 0, "target_scale": "none", **state.get("run", {})}


def to_teacher_scale(trainables: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """The trainables as saved: A fitted to teacher embeddings times `scale` (`train.target_scale`), divided by it,
    so that a saved model's embeddings are in the teacher's scale (A is affine). New tensors; the live ones stay."""
    if scale == 1.0:
        return trainables
    return {name: tensor / scale if name in ALIGNMENT else tensor for name, tensor in trainables.items()}


def full_trainables(model: GenVecModel) -> dict[str, torch.Tensor]:
    """The trainable tensors, whole and on the CPU, in the main process (others get {}); every process must call it.

    Under FSDP each process holds a shard of every parameter; torch's state-dict helpers gather them. Without
    FSDP they return the tensors as they are.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    state = get_model_state_dict(model, options=options)
    # Frozen weights tied to another module can still appear; a checkpoint holds the trainables only.
    return {name: state[name] for name in model.trainable_state_dict() if name in state}


def full_optimizer_state(model: GenVecModel, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state keyed by parameter name, whole and on the CPU, in the main process; every process must
    call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(
    model: GenVecModel, optimizer: torch.optim.Optimizer, path: Path, target_scale: float = 1.0
) -> None:
    """Put a checkpoint's whole trainable tensors and optimizer state into the model and optimizer, A back in the
    training scale (see `to_teacher_scale`); every process calls it. Under FSDP each process keeps its own shard."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    weights = read_native_weights(path)
    model.check_trainable_state_dict(weights, source=str(path))
    weights = {name: tensor * target_scale if name in ALIGNMENT else tensor for name, tensor in weights.items()}
    options = StateDictOptions(full_state_dict=True, strict=False)  # strict=False: the frozen backbone is not there
    set_model_state_dict(model, weights, options=options)
    # weights_only: the optimizer state is tensors and numbers; nothing else is unpickled.
    try:
        optimizer_state = torch.load(path / OPTIMIZER_STATE, map_location="cpu", weights_only=True)
        set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)
    except (OSError, RuntimeError, ValueError, KeyError, pickle.UnpicklingError) as err:
        raise TrainingError(
            f"the optimizer state {str(path / OPTIMIZER_STATE)!r} is missing or damaged ({type(err).__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}); delete the checkpoint directory {str(path)!r} to "
            "resume from an earlier one."
        ) from err


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are ignored)."""
    directory = Path(run_dir) / CHECKPOINTS
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("step-") and "." not in p.name)


def find_resume_checkpoint(run_dir: Path, resume: str | None, job: str | None = None) -> Path | None:
    """The checkpoint to continue from, by `train.resume`; a new run refuses a run_dir that has checkpoints, unless
    the newest was written by the same elastic job (`job`, see `elastic_job`): this process is then a worker that its
    launcher restarted, and it continues from there."""
    existing = list_checkpoints(run_dir)
    if resume is None:
        if existing and job is not None and read_trainer_state(existing[-1]).get("elastic_job") == job:
            logger.info("a restarted worker of elastic job %s: resuming from the job's checkpoint %s", job,
                        existing[-1])
            return existing[-1]
        if existing:
            raise ConfigError(
                f"train.run_dir {str(run_dir)!r} already holds {len(existing)} checkpoint(s) (newest "
                f"{existing[-1].name}); set train.resume to 'latest' to continue it, or choose another run_dir."
            )
        return None
    if resume == "latest":
        if not existing:
            logger.warning("no checkpoint in %s to resume from; starting a new run", run_dir)
            return None
        return existing[-1]
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise ConfigError(f"train.resume: {resume!r} is not a training checkpoint (no {TRAINER_STATE} in it).")
    return path


def elastic_job() -> str | None:
    """The id of the elastic job this process is a worker of, which every restart of the job's workers shares:
    torchrun's `--rdzv-id` (a random one with `--standalone` or on one node without a rendezvous endpoint). None
    outside a launcher, and for the id "none", the default of a launch given none, which unrelated launches share."""
    job = os.environ.get("TORCHELASTIC_RUN_ID")
    return None if job in (None, "", "none") else job


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metric lines of steps up to `step` (0, a new run: none, not even a step-0 measure of a run killed
    before its first checkpoint); a torn last line of a killed run is dropped too."""
    if not path.is_file():
        return
    kept = [line for line, record in _metric_lines(path) if step and record.get("step", 0) <= step]
    with atomic_write(path) as file:
        file.writelines(line + "\n" for line in kept)


def last_metrics(path: Path) -> dict[str, float]:
    """The last complete line of metrics.jsonl, or {} when there is none."""
    lines = _metric_lines(path) if path.is_file() else []
    return lines[-1][1] if lines else {}


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Every complete line of a metrics.jsonl file (step, loss, ..., step_s, tokens_per_s), oldest first."""
    return [record for _, record in _metric_lines(path)] if Path(path).is_file() else []


def _metric_lines(path: Path) -> list[tuple[str, dict]]:
    """(line, record) of every complete JSON line; a line cut by a kill is skipped."""
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            lines.append((line, record))
    return lines


def _rng_state() -> dict:
    """Every RNG state as JSON-safe lists (no pickle is written or read)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])

