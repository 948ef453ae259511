"""Generation engines: batched transformers `generate` (left padding, KV cache) and vLLM (GPU, the `vllm` extra).

Both take prompt token ids and return each row's new tokens up to its first end-of-sequence id, with the backbone's
generation config and the decoding choice of `DataConfig` applied the same way; `settings` records what was used.
"""

import contextlib
import copy
import types
from collections.abc import Iterator

import torch
from transformers import GenerationConfig, PreTrainedTokenizerBase

from genvec import backbone as backbones
from genvec.backbone import LoadedBackbone
from genvec.config import DataConfig, ModelConfig
from genvec.data.collate import pad_left
from genvec.device import torch_dtype_name
from genvec.errors import InputError


def open_engine(backbone: LoadedBackbone | ModelConfig, config: DataConfig):
    """The engine and the tokenizer for `backbone`: a loaded one is reused, a `ModelConfig` is loaded."""
    if isinstance(backbone, LoadedBackbone):
        if config.engine == "vllm":
            raise InputError("engine 'vllm' loads its own copy of the backbone; pass the backbone id, not a model.")
        return TransformersEngine(backbone.model, backbone.tokenizer, config), backbone.tokenizer
    if config.engine == "vllm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(
            backbone.backbone, revision=backbone.revision, **backbones.NO_REMOTE_CODE
        )
        return VLLMEngine(backbone, tokenizer, config), tokenizer
    loaded, tokenizer = backbones.load_configured(backbone)
    return TransformersEngine(loaded, tokenizer, config), tokenizer


class TransformersEngine:
    """Batched `generate` of a loaded causal LM: left padding, KV cache, the backbone's EOS ids."""

    def __init__(self, backbone, tokenizer: PreTrainedTokenizerBase, config: DataConfig) -> None:
        self.backbone = backbone
        self.pad_token_id = backbones.pad_token_id(tokenizer)
        self.eos_token_ids = backbones.end_of_sequence_ids(tokenizer, backbone)
        self.generation_config = _generation_config(
            backbone.generation_config, config, self.eos_token_ids, self.pad_token_id
        )
        self.settings = _resolved_settings(self.generation_config, "transformers")

    def generate(self, prompts: list[list[int]], seeds: list[int] | None) -> list[tuple[list[int], bool]]:
        device = self.backbone.get_input_embeddings().weight.device
        batch = pad_left(prompts, self.pad_token_id).to(device)
        seed = seeds[0] if seeds and self.generation_config.do_sample else None
        with torch.inference_mode(), _seeded(seed, device):
            output = self.backbone.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, generation_config=self.generation_config
            )  # (B, L + new)
        new_tokens = output[:, batch.input_ids.shape[1] :].tolist()
        return [cut_at_eos(row, self.eos_token_ids) for row in new_tokens]


class VLLMEngine:
    """vLLM generation with the same prompts, decoding settings and EOS ids (GPU; the `vllm` extra). Untested here."""

    def __init__(self, model: ModelConfig, tokenizer: PreTrainedTokenizerBase, config: DataConfig) -> None:
        try:
            import vllm
        except ImportError as err:
            raise InputError("engine 'vllm' needs vLLM on a GPU machine; run `pip install genvec[vllm]`.") from err
        try:
            base = GenerationConfig.from_pretrained(model.backbone, revision=model.revision)
        except OSError:
            base = GenerationConfig()
        self.pad_token_id = backbones.pad_token_id(tokenizer)
        self.eos_token_ids = backbones.end_of_sequence_ids(tokenizer, types.SimpleNamespace(generation_config=base))
        self.generation_config = _generation_config(base, config, self.eos_token_ids, self.pad_token_id)
        self.settings = _resolved_settings(self.generation_config, "vllm")
        dtype = "auto" if model.dtype == "auto" else torch_dtype_name(model.dtype)  # vLLM spells dtypes as torch does
        self.vllm = vllm
        self.llm = vllm.LLM(model=model.backbone, revision=model.revision, dtype=dtype, seed=config.seed or 0,
                             trust_remote_code=False)

    def generate(self, prompts: list[list[int]], seeds: list[int] | None) -> list[tuple[list[int], bool]]:
        settings = self.generation_config
        params = [
            self.vllm.SamplingParams(
                n=1,
                temperature=(settings.temperature or 1.0) if settings.do_sample else 0.0,
                top_p=settings.top_p if settings.do_sample and settings.top_p else 1.0,
                top_k=settings.top_k if settings.do_sample and settings.top_k else -1,
                min_p=settings.min_p if settings.do_sample and settings.min_p else 0.0,
                repetition_penalty=settings.repetition_penalty or 1.0,
                max_tokens=settings.max_new_tokens,
                min_tokens=settings.min_new_tokens or 0,
                stop_token_ids=self.eos_token_ids,
                seed=seeds[index] if seeds else None,
            )
            for index in range(len(prompts))
        ]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            tokens, stopped = cut_at_eos(list(completion.token_ids), self.eos_token_ids)
            results.append((tokens, stopped or completion.finish_reason == "stop"))
        return results


def _generation_config(
    base: GenerationConfig, config: DataConfig, eos_token_ids: list[int], pad_token_id: int
) -> GenerationConfig:
    """The backbone's generation config with our length, EOS and decoding choices applied."""
    generation = copy.deepcopy(base)
    if config.decoding == "greedy":
        generation.do_sample = False
        # Sampling knobs left set would only trigger "not used in greedy mode" warnings.
        generation.temperature = generation.top_p = generation.top_k = generation.min_p = None
    elif config.decoding == "sample":
        generation.do_sample = True
    generation.max_new_tokens = config.max_new_tokens
    generation.max_length = None
    generation.eos_token_id = list(eos_token_ids)
    generation.pad_token_id = pad_token_id
    generation.num_return_sequences = 1
    generation.use_cache = True
    return generation


def _resolved_settings(generation: GenerationConfig, engine: str) -> dict[str, object]:
    return {
        "engine": engine,
        "do_sample": bool(generation.do_sample),
        "temperature": generation.temperature if generation.do_sample else None,
        "top_p": generation.top_p if generation.do_sample else None,
        "top_k": generation.top_k if generation.do_sample else None,
        "min_p": generation.min_p if generation.do_sample else None,
        "repetition_penalty": generation.repetition_penalty,
        "num_beams": generation.num_beams,
        "min_new_tokens": generation.min_new_tokens,
        "max_new_tokens": generation.max_new_tokens,
        "eos_token_ids": list(generation.eos_token_id),
        "pad_token_id": generation.pad_token_id,
    }


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for one batch without changing the caller's RNG state."""
    if seed is None:
        yield
        return
    # fork_rng restores the CPU state and, on CUDA, the state of the batch's device.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def cut_at_eos(tokens: list[int], eos_token_ids: list[int]) -> tuple[list[int], bool]:
    """The tokens before the first EOS id, and whether one was found (the backbone ended its answer)."""
    for index, token in enumerate(tokens):
        if token in eos_token_ids:
            return tokens[:index], True
    return tokens, False

