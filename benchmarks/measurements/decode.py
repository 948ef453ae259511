"""Decoding from compression states: genvec's KV-cache loop against the backbone's `generate`, a full-recompute
loop (the reference implementation's) and the weight products alone (a ceiling).

Run by `python benchmarks/run.py --only decode_batch1 decode_batch16`; `measure_decode` returns one result row.
"""

import functools
import statistics

from harness import timed, timed_call
from internals import decode_token_ids
from presets import Preset, build_model, make_texts


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

    model = build_model(preset, args)
    texts = make_texts(model.tokenizer, batch_size, args.query_tokens, seed=4)
    prompt = model.compress(texts).to(model.dtype)  # (B, K, H)
    ones = torch.ones(prompt.shape[:2], dtype=torch.long, device=prompt.device)
    backbone, embed = model.backbone, model.backbone.get_input_embeddings()
    result: dict = {"batch_size": batch_size, "prompt_tokens": prompt.shape[1]}

    def ours(n):
        return decode_token_ids(model, prompt, n)

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


def _time_decode(methods: dict, num_tokens: int, args, device, outputs: dict, seconds: dict) -> None:
    """Run each of `methods` `args.repeats` times for `num_tokens` tokens, the methods interleaved (so drifts in
    machine load hit them alike; the phases of `measure_decode` are not interleaved with each other), recording
    each one's last output and its wall times; the full-recompute loop stops repeating past `decode_budget_s`."""
    seconds.update({name: [] for name in methods})
    for _ in range(args.repeats):
        for name, function in methods.items():
            if name == "full_recompute" and sum(seconds[name]) > args.decode_budget_s:
                continue  # a minutes-long loop: fewer repeats
            outputs[name], elapsed = timed_call(functools.partial(function, num_tokens), device)
            seconds[name].append(elapsed)


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
