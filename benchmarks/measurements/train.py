"""Training: genvec's optimizer step, the least any implementation of the method must compute, and the official
algorithm's step (`reference.py`) on the same architecture and batch.

Run by `python benchmarks/run.py --only train_step train_step_checkpointing train_step_limit reference_train_step
reference_train_step_checkpointing`; each function returns one result row.
"""

import copy

from harness import gpu_memory_mb, interleaved, median_seconds, warm_up
from internals import attn_implementation, query_token_ids
from presets import Preset, build_backbone, build_model, build_tokenizer, make_texts


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
        "attn_implementation": attn_implementation(model),
    }
    if model.device.type == "cuda":
        result["weights_gpu_mb"] = gpu_memory_mb()
    result["first_step_s"] = round(warm_up(step, device=model.device), 2)  # and compilation with --compile
    seconds = median_seconds(step, model.device, args.repeats, warm_up=False)
    return {**result, "step_s": round(seconds, 4), "samples_per_s": round(args.train_batch / seconds, 2),
            "out_of_memory": False}


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


def measure_train_step_limit(preset: Preset, args) -> dict:
    """genvec's step against the least any implementation of the method must compute, timed interleaved in one run.

    The limit: the query forward over `[query ; N special tokens]` without autograd, then one forward and backward
    of the frozen decoder over the same `[z ; response]` batch (z a leaf tensor with the compression states' shape,
    the LM head on the labelled positions only, gradients to z alone), no optimizer. Every exact implementation
    does at least this work, so `ratio_to_limit` = limit / step is at most 1 up to noise.
    """
    import torch

    from genvec.data.collate import pad_left

    model = build_model(preset, args)
    queries, query_batch, response_batch, step = train_step_of(model, args)
    special_ids = query_token_ids(model, queries)
    with_specials = pad_left([row + [0] * model.num_special_tokens for row in special_ids], 0).to(model.device)
    base, embeddings = model.backbone.base_model, model.backbone.get_input_embeddings()
    head = model.backbone.get_output_embeddings()
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

    warm_up(step, limit)
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
    seconds = median_seconds(lambda: step(*batch), device, args.repeats)
    return {**result, "step_s": round(seconds, 4), "samples_per_s": round(args.train_batch / seconds, 2),
            "out_of_memory": False}
