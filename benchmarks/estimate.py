"""`python benchmarks/run.py --estimate`: a FLOP-based GPU time estimate of each measurement, a planning aid that
runs nothing (gpu.sh's `plan` prints it beside each command)."""

from presets import Preset

# Assumptions of `--estimate` (an H100 or H200 in bf16): effective dense rate of the backbone's matrix products in
# eager transformers code, about half the ~790 TFLOP/s measured for one large bf16 product on these machines;
# memory bandwidth for reading the weights once per decode step; Python and kernel-launch time per layer per decode
# step of the transformers code; fixed cost of a measurement subprocess (CUDA start, random init, texts).
ESTIMATE_TFLOPS = 400.0
ESTIMATE_BANDWIDTH_GBS = 3000.0
ESTIMATE_LAUNCH_S_PER_LAYER = 0.4e-3
ESTIMATE_SETUP_S = 25.0


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
