"""Encoding: `encode` against a bare backbone forward, and the shared-instruction prefix cache against the plain path.

Run by `python benchmarks/run.py --only encode encode_shared_prefix`; each function returns one result row.
"""

import os

from harness import interleaved, warm_up
from internals import (
    attn_implementation,
    default_shared_prefix_minimum,
    instruction_token_ids,
    query_token_ids,
    shared_prefix_minimum,
)
from presets import Preset, build_model, make_texts


def measure_encode(preset: Preset, args) -> dict:
    """encode() against a bare backbone forward over the same padded token batches (special positions included)."""
    import numpy as np
    import torch

    from genvec.data.collate import pad_left

    model = build_model(preset, args)
    if args.compile:
        model.compile_layers()
    texts = make_texts(model.tokenizer, args.encode_texts, args.encode_tokens, seed=1)
    ids = query_token_ids(model, texts)
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
    warm_up_s = warm_up(lambda: ours(texts[: args.encode_batch] + texts[-args.encode_batch :]),
                        lambda: bare([batches[0], batches[-1]]), device=model.device)
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
        "attn_implementation": attn_implementation(model),
    }


def measure_encode_shared_prefix(preset: Preset, args) -> dict:
    """encode() with an instruction every text shares, computed once (the prefix cache), against the plain path
    that runs the instruction in every row, timed interleaved in one process; texts of ~16 tokens after an
    instruction of ~20, as in an evaluation task."""
    import numpy as np

    model = build_model(preset, args)
    (instruction,) = make_texts(model.tokenizer, 1, 20, seed=5)
    texts = make_texts(model.tokenizer, args.encode_texts, 16, seed=6)
    minimum = {"prefix": default_shared_prefix_minimum(), "plain": 10**9}
    outputs = {}

    def run(name: str):
        with shared_prefix_minimum(minimum[name]):
            outputs[name] = model.encode(texts, instruction=instruction, batch_size=args.encode_batch,
                                         show_progress=False)

    warm_up(lambda: run("prefix"), lambda: run("plain"), device=model.device)
    seconds = interleaved({"prefix": lambda: run("prefix"), "plain": lambda: run("plain")}, model.device, args.repeats)
    prefix_tokens = len(os.path.commonprefix(instruction_token_ids(model, texts, instruction)))
    return {
        "texts": len(texts),
        "batch_size": args.encode_batch,
        "shared_prefix_tokens": prefix_tokens,
        "prefix_texts_per_s": round(len(texts) / seconds["prefix"], 1),
        "plain_texts_per_s": round(len(texts) / seconds["plain"], 1),
        "ratio_to_plain": round(seconds["plain"] / seconds["prefix"], 3),
        "max_abs_diff": float(np.abs(outputs["prefix"] - outputs["plain"]).max()),
    }
