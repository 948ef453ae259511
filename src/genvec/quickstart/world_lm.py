"""A small causal LM that knows the synthetic world: the backbone of the offline quickstart.

LLM2Vec-Gen needs an LLM whose responses mean something (paper section 3: the special tokens learn to let the frozen
LLM rebuild its own response). A random backbone answers noise, so the quickstart first trains a Qwen3-style LM of a
few million parameters on the world of `world.py`, in chat format, until it answers held-out phrasings correctly.

It is taught two tasks, both single chat turns (Qwen-style template, thinking disabled, `<|im_end|>` ends a turn):
- answer: a training phrasing of an intent -> the intent's response (a harmful request -> the refusal);
- summarize: "Summarize the following passage: <document>" -> the document restated (genvec's default document
  instruction, `config.DEFAULT_INSTRUCTIONS["document"]`), for every response and harmful document, so documents
  can be encoded with genvec as in the paper.
Loss is on the assistant turn only. The tokenizer is a byte-level BPE trained on the world's training text. Model
and tokenizer are saved with `save_pretrained`, so genvec loads them through `from_pretrained` like a hub model,
in a cache directory keyed by everything that decides the weights; a second run reuses it.

What it does not do: generate the training responses of genvec (the data stage does that with any backbone) or
train genvec. Held-out phrasings never enter the tokenizer or the LM's training data.
"""

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from genvec.config import DEFAULT_INSTRUCTIONS
from genvec.data.collate import join_instruction, pad_right
from genvec.errors import InputError
from genvec.files import exclusive_lock, lock_file_for, sha256_file, write_text_atomic
from genvec.formats import header, read_document
from genvec.quickstart.world import Query, World
from genvec.testing import CHAT_TEMPLATE, backbone_config, untrained_bpe
from genvec.version import __version__

logger = logging.getLogger(__name__)

# Bump when the training recipe changes in a way the config does not show, so old caches are not reused.
RECIPE_VERSION = 1
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
INFO_FILE = "world_lm.json"
INFO_FORMAT = "genvec-world-lm"
INFO_VERSION = 1
IGNORE_INDEX = -100
# One training example: token ids and labels (IGNORE_INDEX outside the assistant's turn).
Example = tuple[list[int], list[int]]


@dataclass(frozen=True)
class WorldLMConfig:
    """Architecture and training of the world LM; every field is part of the cache key."""

    architecture: Literal["qwen3", "llama"] = "qwen3"
    """Model family of the config (a real transformers architecture)."""
    vocab_size: int = 2048
    """Most tokens of the byte-level BPE (special tokens included); the world's words need about 1,750, and a
    vocabulary that holds them all keeps sequences short."""
    hidden_size: int = 192
    """Width of the model."""
    num_layers: int = 4
    """Decoder layers."""
    num_heads: int = 4
    """Attention heads (head size = hidden_size / num_heads)."""
    num_kv_heads: int = 2
    """Key/value heads (grouped-query attention, as in Qwen3)."""
    intermediate_size: int = 512
    """Width of the MLP."""
    steps: int = 500
    """Optimizer steps."""
    batch_size: int = 32
    """Examples per step."""
    learning_rate: float = 3e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to a tenth)."""
    warmup_steps: int = 30
    """Steps of linear warm-up."""
    weight_decay: float = 0.01
    """AdamW weight decay (not applied to norms and biases)."""
    seed: int = 0
    """Seed of the initial weights and of the example order."""


# The world LM of the quickstart and the reduced one of its CI test.
FULL_LM = WorldLMConfig()
SMALL_LM = WorldLMConfig(hidden_size=128, num_layers=2, intermediate_size=384, steps=200, learning_rate=4e-3)


@dataclass(frozen=True)
class WorldLM:
    """A trained world LM on disk, and how well it learnt the world."""

    path: Path
    """Directory readable by `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`."""
    heldout_accuracy: float
    """Share of held-out phrasings answered with exactly the right response (greedy)."""
    train_accuracy: float
    """The same on (a sample of) the training phrasings."""
    train_seconds: float
    """Wall time of training when it was built (not of loading from the cache)."""
    num_parameters: int
    reused: bool
    """True when it came from the cache."""


def lm_examples(world: World) -> list[tuple[str, str]]:
    """(user message, assistant response) pairs the world LM learns: every training phrasing and every summary."""
    requests = join_instruction(world.documents, DEFAULT_INSTRUCTIONS["document"])  # as genvec encodes documents
    answers = [(query.text, world.response(query)) for query in world.train_queries]
    return answers + list(zip(requests, world.documents))


def load_or_train_world_lm(
    world: World, config: WorldLMConfig = FULL_LM, cache_dir: str | Path | None = None, show_progress: bool = True
) -> WorldLM:
    """The world LM of `(world, config)`: from the cache when it is there, else trained, measured and cached.

    The cache key hashes the world's content, the config, the recipe version and genvec's version. A new LM is
    written to a temporary directory and renamed into place, so a crash never leaves half an LM in the cache.

    Args:
        world: the world to learn (`build_world(...)`).
        config: architecture and training settings.
        cache_dir: parent of the cached LMs; None means `default_cache_dir()`.
        show_progress: progress bars for training and the accuracy check.

    Returns:
        `WorldLM`: its directory and held-out accuracy.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    directory = root / cache_key(world, config)
    root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_file_for(directory), f"the cached world LM {directory}"):
        return _load_or_train(world, config, directory, show_progress)


def _load_or_train(world: World, config: WorldLMConfig, directory: Path, show_progress: bool) -> "WorldLM":
    """`load_or_train_world_lm` with the cache entry held."""
    info, problem = _read_cached(directory)
    if info is not None:
        logger.info("reusing the world LM in %s", directory)
        return _world_lm(directory, info, reused=True)
    if directory.exists():
        # Not what this module writes (its writes are atomic): an interrupted copy, damage, or a hand-made directory.
        logger.warning("removing %s and training the world LM again: %s", directory, problem)
        shutil.rmtree(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        info = train_world_lm(world, config, temporary, show_progress=show_progress)
        try:
            os.rename(temporary, directory)
        except OSError:
            # Another process finished the same LM first; its copy is as good as ours.
            shutil.rmtree(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return _world_lm(directory, info, reused=False)


def _read_cached(directory: Path) -> tuple[dict | None, str]:
    """The record of a complete cached LM whose files are intact, or (None, why not)."""
    if not (directory / INFO_FILE).is_file():
        return None, f"it has no {INFO_FILE}, so it is not a complete world LM"
    try:
        info = read_document(directory / INFO_FILE, INFO_FORMAT, INFO_VERSION, InputError, "it is rebuilt")
    except InputError as err:
        return None, str(err)
    for name, digest in info.get("files", {}).items():
        if not (directory / name).is_file() or sha256_file(directory / name) != digest:
            return None, f"{name} is missing or does not match the hash recorded in {INFO_FILE} (a damaged copy)"
    if not info.get("files"):
        return None, f"{INFO_FILE} records no file hashes (written by an older genvec)"
    return info, ""


def default_cache_dir() -> Path:
    """`~/.cache/genvec/world_lm` (the CLI's `--cache-dir` or `$GENVEC_CACHE` choose another place)."""
    return Path.home() / ".cache" / "genvec" / "world_lm"


def cache_key(world: World, config: WorldLMConfig) -> str:
    """A short hash of everything that decides the LM's weights."""
    content = json.dumps(
        {
            "world": world.fingerprint(),
            "config": dataclasses.asdict(config),
            "recipe": RECIPE_VERSION,
            "genvec": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()[:16]


def train_world_lm(
    world: World, config: WorldLMConfig, directory: str | Path, show_progress: bool = True
) -> dict[str, object]:
    """Train a world LM and save model, tokenizer and `world_lm.json` (its accuracies) to `directory`.

    Returns:
        The content of `world_lm.json`.
    """
    directory = Path(directory)
    torch.manual_seed(config.seed)
    examples = lm_examples(world)
    tokenizer = build_world_tokenizer(examples, config.vocab_size)
    model = build_world_model(config, tokenizer)
    sequences = [encode_example(tokenizer, user, response) for user, response in examples]
    start = time.perf_counter()
    final_loss = _train(model, sequences, config, tokenizer.pad_token_id, show_progress)
    train_seconds = time.perf_counter() - start
    model.eval()
    heldout_accuracy = answer_accuracy(model, tokenizer, world, world.heldout_queries, show_progress)
    sample = random.Random(config.seed).sample(world.train_queries, min(200, len(world.train_queries)))
    train_accuracy = answer_accuracy(model, tokenizer, world, sample, show_progress)
    logger.info(
        "world LM: %d parameters, %.0f s, held-out accuracy %.3f, train accuracy %.3f",
        model.num_parameters(), train_seconds, heldout_accuracy, train_accuracy,
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    info = {
        **header(INFO_FORMAT, INFO_VERSION),
        "files": {path.name: sha256_file(path) for path in sorted(directory.iterdir()) if path.is_file()},
        "heldout_accuracy": heldout_accuracy,
        "train_accuracy": train_accuracy,
        "train_seconds": train_seconds,
        "final_loss": final_loss,
        "num_parameters": model.num_parameters(),
        "config": dataclasses.asdict(config),
        "world": dataclasses.asdict(world.config),
        "world_fingerprint": world.fingerprint(),
    }
    write_text_atomic(directory / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info


def build_world_tokenizer(examples: list[tuple[str, str]], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with a Qwen-style chat template, trained on the chat-formatted examples.

    Training on the formatted text (not the bare sentences) gives the template's pieces (`user`, `assistant`,
    blank lines) their own tokens, so every example is a few tokens shorter.
    """
    tokenizer, trainer = untrained_bpe(vocab_size, SPECIAL_TOKENS)
    # Rendering the template needs no vocabulary, so the untrained tokenizer formats the training text.
    untrained = PreTrainedTokenizerFast(tokenizer_object=tokenizer, chat_template=CHAT_TEMPLATE)
    formatted = [chat_prompt(untrained, user) + response + "<|im_end|>" for user, response in examples]
    instructions = list(DEFAULT_INSTRUCTIONS.values())
    tokenizer.train_from_iterator(formatted + instructions, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def build_world_model(config: WorldLMConfig, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """A freshly initialised causal LM of `config.architecture`, sized by `config`, with the tokenizer's ids."""
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model_config = backbone_config(
        config.architecture,
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_layers=config.num_layers,
        num_heads=config.num_heads,
        num_kv_heads=config.num_kv_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=512,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = AutoModelForCausalLM.from_config(model_config, dtype=torch.float32)
    model.generation_config.eos_token_id = [eos, tokenizer.pad_token_id]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def chat_prompt(tokenizer: PreTrainedTokenizerFast, user: str) -> str:
    """The prompt of one user turn with the assistant's turn opened (thinking disabled, as genvec generates)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": user}], tokenize=False, add_generation_prompt=True, enable_thinking=False
    )


def encode_example(tokenizer: PreTrainedTokenizerFast, user: str, response: str) -> Example:
    """Token ids of `[prompt ; response ; <|im_end|>]` and labels that score the response and end-of-turn only."""
    prompt = tokenizer(chat_prompt(tokenizer, user), add_special_tokens=False)["input_ids"]
    answer = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    return prompt + answer, [IGNORE_INDEX] * len(prompt) + answer


@torch.inference_mode()
def answer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    users: list[str],
    batch_size: int = 64,
    max_new_tokens: int = 40,
    show_progress: bool = False,
) -> list[str]:
    """Greedy responses of the model to user messages (chat template, thinking disabled), stripped."""
    responses = []
    for start in tqdm(range(0, len(users), batch_size), desc="answer", unit="batch", disable=not show_progress):
        prompts = [chat_prompt(tokenizer, user) for user in users[start : start + batch_size]]
        batch = tokenizer(prompts, add_special_tokens=False, padding=True, return_tensors="pt")
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        responses += [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    return responses


def answer_accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    world: World,
    queries: Sequence[Query],
    show_progress: bool = False,
) -> float:
    """Share of `queries` answered with exactly their response (greedy, whitespace-stripped)."""
    responses = answer(model, tokenizer, [query.text for query in queries], show_progress=show_progress)
    return sum(response == world.response(query) for response, query in zip(responses, queries)) / len(queries)


def _train(
    model: PreTrainedModel,
    sequences: list[Example],
    config: WorldLMConfig,
    pad_token_id: int,
    show_progress: bool,
) -> float:
    """The plain training loop: shuffled epochs, AdamW, warm-up + cosine schedule. Returns the last smoothed loss."""
    decay = [parameter for parameter in model.parameters() if parameter.ndim >= 2]
    no_decay = [parameter for parameter in model.parameters() if parameter.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
        betas=(0.9, 0.98),
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: _learning_rate_factor(step, config))
    model.train()
    smoothed = float("nan")
    batches = _batches(sequences, config.batch_size, config.seed)
    progress = tqdm(range(config.steps), desc="train world LM", unit="step", disable=not show_progress)
    for _ in progress:
        input_ids, attention_mask, labels = _collate(next(batches), pad_token_id)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        smoothed = loss.item() if math.isnan(smoothed) else 0.9 * smoothed + 0.1 * loss.item()
        progress.set_postfix(loss=f"{smoothed:.3f}")
    return smoothed


def _learning_rate_factor(step: int, config: WorldLMConfig) -> float:
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _batches(sequences: list[Example], batch_size: int, seed: int) -> Iterator[list[Example]]:
    """Endless batches of examples, reshuffled every epoch."""
    rng = random.Random(seed)
    order = list(range(len(sequences)))
    while True:
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield [sequences[i] for i in order[start : start + batch_size]]


def _collate(batch: list[Example], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad a training batch: input ids, attention mask, labels (pads ignored), each (B, T)."""
    inputs = pad_right([ids for ids, _ in batch], pad_token_id)
    labels = pad_right([targets for _, targets in batch], IGNORE_INDEX).input_ids
    return inputs.input_ids, inputs.attention_mask, labels


def _world_lm(directory: Path, info: dict, reused: bool) -> WorldLM:
    return WorldLM(
        path=directory,
        heldout_accuracy=float(info["heldout_accuracy"]),
        train_accuracy=float(info["train_accuracy"]),
        train_seconds=float(info["train_seconds"]),
        num_parameters=int(info["num_parameters"]),
        reused=reused,
    )
