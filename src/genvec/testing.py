"""Offline random backbones and tokenizers, built in code, for tests, benchmarks and demos.

No file is downloaded: a byte-level BPE tokenizer is trained on a small built-in corpus, and a Qwen3 or Llama
causal LM is created from a config with seeded random weights, then saved with `save_pretrained` so that genvec
loads it through the same `from_pretrained` path a hub model takes. Random weights give meaningless text but real
shapes, speed and memory, and every property the tests check.

The tokenizer mimics the real ones where genvec depends on them: a Qwen-style chat template that accepts
`enable_thinking`, `<|im_end|>` as end-of-sequence; the Llama flavour prepends a BOS token to every text.
`save_official_release` writes a synthetic LLM2Vec-Gen release in the official on-disk layout for such a backbone.
"""

import json
import random
import warnings
from pathlib import Path
from typing import Literal

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedTokenizerFast

Architecture = Literal["qwen3", "llama"]

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>"]

# A chat template in the style of Qwen3: one turn per message, a generation prompt, and an empty think block when
# `enable_thinking` is false (the real Qwen3 template does the same).
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)

_WORDS = [
    "the", "a", "an", "of", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "it", "be",
    "this", "are", "or", "have", "not", "which", "but", "all", "were", "when", "we", "there", "can", "more", "if", "no",
    "out", "so", "what", "up", "about", "into", "than", "them", "only", "time", "new", "some", "could", "these", "two",
    "may", "first", "then", "do", "any", "like", "my", "now", "over", "such", "our", "man", "me", "even", "most",
    "made", "after", "also", "did", "many", "before", "must", "through", "back", "where", "much", "your", "way", "well",
    "down", "should", "because", "each", "just", "those", "people", "how", "too", "little", "state", "good", "very",
    "make", "world", "still", "own", "see", "men", "work", "long", "get", "here", "between", "both", "life", "being",
    "under", "never", "day", "same", "another", "know", "while", "last", "might", "us", "great", "old", "year", "off",
    "come", "since", "against", "go", "came", "right", "used", "take", "three", "water", "city", "river", "house",
    "polar", "bear", "arctic", "ice", "question", "answer", "embedding", "model", "language", "token", "train", "data",
    "vector", "search", "paper", "method",
]


def build_corpus(num_sentences: int = 2000, seed: int = 0) -> list[str]:
    """Seeded pseudo-English sentences, the training text of the tiny tokenizer."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(num_sentences):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(4, 16))]
        sentences.append(" ".join(words).capitalize() + rng.choice([".", "?", "!"]))
    return sentences


def untrained_bpe(vocab_size: int, special_tokens: list[str]) -> tuple[Tokenizer, trainers.BpeTrainer]:
    """An empty byte-level BPE tokenizer and the trainer that fills it with at most `vocab_size` tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tokenizer, trainer


def build_tokenizer(vocab_size: int = 300, flavour: Architecture = "qwen3", seed: int = 0) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer of at most `vocab_size` tokens with a chat template, trained in a second."""
    tokenizer, trainer = untrained_bpe(vocab_size, SPECIAL_TOKENS)
    tokenizer.train_from_iterator(build_corpus(seed=seed), trainer)
    if flavour == "llama":
        bos = tokenizer.token_to_id("<|begin_of_text|>")
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A $B", special_tokens=[("<|begin_of_text|>", bos)]
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token="<|begin_of_text|>" if flavour == "llama" else None,
        padding_side="left",
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def build_backbone(
    architecture: Architecture = "qwen3",
    *,
    vocab_size: int = 300,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int | None = None,
    tie_word_embeddings: bool = True,
    initializer_range: float = 0.1,
    seed: int = 0,
) -> torch.nn.Module:
    """A randomly initialised causal LM of a real architecture (seeded), in fp32 on the CPU.

    `initializer_range` (std of the normal init) defaults to 0.1 rather than the usual 0.02: a tiny random model
    initialised at 0.02 has nearly uniform next-token logits whatever its input, so no prompt could change its
    predictions and reconstruction could not be trained or tested.
    """
    config = backbone_config(
        architecture,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size or 3 * hidden_size,
        tie_word_embeddings=tie_word_embeddings,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32)


def backbone_config(
    architecture: str,
    *,
    vocab_size: int,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int,
    intermediate_size: int,
    head_dim: int | None = None,
    max_position_embeddings: int = 4096,
    tie_word_embeddings: bool = True,
    **extra: object,
) -> PretrainedConfig:
    """The transformers config of a decoder of `architecture` with these sizes (the tiny backbones of the tests, the
    quickstart's world LM and the benchmarks' presets). `head_dim` defaults to hidden_size / num_heads; `extra`
    sets any other config field (rope, norms, token ids)."""
    return AutoConfig.for_model(
        architecture,
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim or hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        **extra,
    )


def save_tiny_backbone(
    directory: str | Path,
    architecture: Architecture = "qwen3",
    *,
    vocab_size: int = 300,
    hidden_size: int = 64,
    num_layers: int = 2,
    tie_word_embeddings: bool = True,
    seed: int = 0,
    **backbone_kwargs: int,
) -> Path:
    """Build a tokenizer and a random backbone and save both to `directory`, loadable with `from_pretrained`."""
    directory = Path(directory)
    tokenizer = build_tokenizer(vocab_size, architecture, seed)
    backbone = build_backbone(
        architecture,
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_layers=num_layers,
        tie_word_embeddings=tie_word_embeddings,
        seed=seed,
        **backbone_kwargs,
    )
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    backbone.config.eos_token_id = eos
    backbone.config.pad_token_id = tokenizer.pad_token_id
    backbone.generation_config.eos_token_id = [eos, tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    backbone.generation_config.pad_token_id = tokenizer.pad_token_id
    if architecture == "llama":
        backbone.config.bos_token_id = tokenizer.bos_token_id
    backbone.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# A run_config.yml in the style the official code writes: Python `str()` values, "None" strings, object reprs, and
# keys repeated when a run was restarted (the last value wins). `{...}` fields are filled in by the builder.
OFFICIAL_RUN_CONFIG = """\
model_name_or_path: {stale_base_model}
torch_dtype: bfloat16
special_tokens: {special_tokens}
encoding_mode: last_1_tokens
max_input_length: 512
pretrained_teacher_path: McGill-NLP/LLM2Vec-Qwen3-06B-mntp-unsup-simcse
pretrained_teacher_path_2: None
tokenizer_padding_side: left
add_reconstruction_mlp: True
learning_rate: 0.0003
lr_scheduler_kwargs: {{}}
optim: OptimizerNames.ADAMW_TORCH
accelerator_config: AcceleratorConfig(split_batches=False, dispatch_batches=None, even_batches=True)
report_to: ['wandb']
output_dir: outputs/run-1
model_name_or_path: {base_model}
torch_dtype: {torch_dtype}
"""


def save_lora_adapter(
    base: str | Path, directory: str | Path, *, seed: int = 0, base_model_name_or_path: str | None = None
) -> Path:
    """A random LoRA adapter (peft) on the q and v projections of the base model in `base` (a directory), saved to
    `directory` as an LLM2Vec adapter is: `adapter_config.json` names its base (`base_model_name_or_path`, default
    `base`) and the weights are not zero, so merging it changes the model."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    torch.manual_seed(seed)
    model = get_peft_model(AutoModel.from_pretrained(base),
                           LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(directory)
    config_file = Path(directory) / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model_name_or_path or str(base)
    config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return Path(directory)


def save_official_release(
    directory: str | Path,
    backbone_dir: str | Path,
    *,
    num_special_tokens: int = 4,
    num_compression_tokens: int = 2,
    embedding_dim: int = 16,
    full_embedding_matrix: bool = False,
    wrap: Literal["model", "causal_lm"] = "model",
    torch_dtype: str = "float32",
    seed: int = 0,
) -> Path:
    """Write a synthetic LLM2Vec-Gen release (the official on-disk layout) for a backbone saved in `backbone_dir`.

    Built as the official code builds one: the base tokenizer gets `<question1>..<questionN>` as additional special
    tokens, the encoder (`AutoModel`, or the causal LM with `wrap="causal_lm"`) is resized and wrapped with peft's
    trainable-tokens adapter, whose rows get random values and are saved under `encoder/` (with the whole
    embedding matrix if `full_embedding_matrix`); the two heads are `torch.save` dicts of a state_dict and a config.
    Needs peft (the `dev` extra).
    """
    from peft import TrainableTokensConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    directory, backbone_dir = Path(directory), Path(backbone_dir)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(backbone_dir))
    special_tokens = [f"<question{i}>" for i in range(1, num_special_tokens + 1)]
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens})
    token_indices = tokenizer.convert_tokens_to_ids(special_tokens)
    loader = AutoModelForCausalLM if wrap == "causal_lm" else AutoModel
    encoder = loader.from_pretrained(str(backbone_dir), dtype=torch.float32)
    encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with warnings.catch_warnings():  # peft calls a transformers property that transformers 5 deprecates
        warnings.simplefilter("ignore", FutureWarning)
        adapter = get_peft_model(encoder, TrainableTokensConfig(token_indices=token_indices))
    generator = torch.Generator().manual_seed(seed)
    hidden_size = encoder.config.hidden_size
    rows = torch.randn(num_special_tokens, hidden_size, generator=generator) * 0.1  # (N, H)
    with torch.no_grad():
        for name, parameter in adapter.named_parameters():
            if "trainable_tokens_delta" in name:
                parameter.copy_(rows)
    adapter.save_pretrained(str(directory / "encoder"), save_embedding_layers=full_embedding_matrix)
    for name, output_dim in (("reconstruction_mlp", hidden_size), ("alignment_mlp", embedding_dim)):
        head = torch.nn.Linear(hidden_size, output_dim)
        torch.nn.init.normal_(head.weight, std=hidden_size**-0.5, generator=generator)
        torch.nn.init.normal_(head.bias, std=0.1, generator=generator)
        state_dict = {"projection.weight": head.weight.detach(), "projection.bias": head.bias.detach()}
        config = {"input_dim": hidden_size, "output_dim": output_dim, "dtype": f"torch.{torch_dtype}", "size": 1,
                  "pooling_mode": "linear"}  # fmt: skip
        torch.save({"state_dict": state_dict, "config": config}, directory / name)
    (directory / "run_config.yml").write_text(
        OFFICIAL_RUN_CONFIG.format(
            stale_base_model="Qwen/Qwen3-8B", base_model=backbone_dir, torch_dtype=torch_dtype,
            special_tokens=str(special_tokens),
        )
    )  # fmt: skip
    encoding = {"encoding_mode": f"last_{num_compression_tokens}_tokens", "save_decoder": False}
    (directory / "encoder_decoder_config.json").write_text(json.dumps(encoding))
    tokenizer.save_pretrained(str(directory))
    return directory


def save_tiny_gguf(path: str | Path, *, vocab_size: int = 300, architecture: str = "llama", seed: int = 0,
                   quantization: str = "Q8_0") -> Path:
    """A tiny random Llama written as a GGUF file with its BPE tokenizer and a chat template, as llama.cpp's
    converter lays one out; the attention and MLP matrices quantised to `quantization` (F32 keeps them dense).

    `architecture` is the name written into the file (another name makes an unsupported file for error tests).
    """
    import gguf
    import numpy as np

    tokenizer = build_tokenizer(vocab_size, flavour="qwen3", seed=seed)
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = sorted(state["model"]["vocab"].items(), key=lambda item: item[1])
    tokens = [token for token, _ in vocab]
    merges = [merge if isinstance(merge, str) else " ".join(merge) for merge in state["model"]["merges"]]
    special = {token: tokens.index(token) for token in SPECIAL_TOKENS}
    hidden, layers, heads, kv_heads, intermediate = 64, 2, 4, 2, 128
    generator = np.random.default_rng(seed)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (generator.standard_normal((rows, cols)) * 0.05).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_name("tiny-random-llama")
    writer.add_context_length(512)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(intermediate)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(special["<|im_start|>"])
    writer.add_eos_token_id(special["<|im_end|>"])
    writer.add_pad_token_id(special["<|endoftext|>"])
    writer.add_chat_template(CHAT_TEMPLATE)
    kind = gguf.GGMLQuantizationType[quantization]

    def add(name: str, array: np.ndarray, quantize: bool = False) -> None:
        if quantize and kind != gguf.GGMLQuantizationType.F32:
            try:
                blocks = gguf.quants.quantize(array, kind)
            except NotImplementedError:  # a type gguf cannot write (nor read): zero blocks of the right size
                block, size = gguf.GGML_QUANT_SIZES[kind]
                blocks = np.zeros((array.shape[0], array.shape[1] // block * size), dtype=np.uint8)
            writer.add_tensor(name, blocks, raw_dtype=kind)
        else:
            writer.add_tensor(name, array)

    head_dim = hidden // heads
    add("token_embd.weight", matrix(len(tokens), hidden))
    add("output_norm.weight", np.ones(hidden, dtype=np.float32))
    for layer in range(layers):
        block = f"blk.{layer}"
        add(f"{block}.attn_norm.weight", np.ones(hidden, dtype=np.float32))
        add(f"{block}.ffn_norm.weight", np.ones(hidden, dtype=np.float32))
        add(f"{block}.attn_q.weight", matrix(heads * head_dim, hidden), quantize=True)
        add(f"{block}.attn_k.weight", matrix(kv_heads * head_dim, hidden), quantize=True)
        add(f"{block}.attn_v.weight", matrix(kv_heads * head_dim, hidden), quantize=True)
        add(f"{block}.attn_output.weight", matrix(hidden, heads * head_dim), quantize=True)
        add(f"{block}.ffn_gate.weight", matrix(intermediate, hidden), quantize=True)
        add(f"{block}.ffn_up.weight", matrix(intermediate, hidden), quantize=True)
        add(f"{block}.ffn_down.weight", matrix(hidden, intermediate), quantize=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)
