"""The sections of `GenVecConfig`: every field with its type, default and attribute docstring, and its checks.

Each section lists its own invalid values (`problems()`, one line each, with the valid range); `GenVecConfig` adds the
checks that span sections and raises them all in one `ConfigError`. The attribute docstrings are the CLI's help text.
"""

import math
import re
from dataclasses import dataclass, field
from typing import Literal

# The largest embedding genvec builds (hidden sizes of today's LLMs are at most a few tens of thousands).
MAX_EMBEDDING_DIM = 65_536
# Most tokens a response may be given; a longer limit would only let a bad value run for hours.
MAX_NEW_TOKENS = 32_768
# Seeds are handed to numpy and torch, which take non-negative integers below 2**63 (torch) or 2**64 (numpy).
MAX_SEED = 2**63 - 1
# A serve prompt's name: it becomes part of a model alias (MODEL-NAME) and TEI's prompt_name.
PROMPT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

DEFAULT_INSTRUCTIONS = {
    "query": "Generate a passage that best answers this question:",
    "document": "Summarize the following passage:",
}


@dataclass(frozen=True)
class ModelConfig:
    """Which frozen LLM to use and how it runs."""

    backbone: str = ""
    """Hub id or local directory of the frozen causal LM, e.g. `Qwen/Qwen3-0.6B`."""
    revision: str | None = None
    """Hub revision (branch, tag or commit) of the backbone; None means the default branch."""
    embedding_dim: int | None = None
    """Size of the output embedding; None means the backbone's hidden size. Set it to the teacher's size to train."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Dtype of the frozen backbone: auto is bf16 on GPUs that support it, else fp32 (see tokens.trainable_dtype)."""
    device: str = "auto"
    """Device to load the model on: auto, cpu, cuda, cuda:N or mps."""
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flex_attention"] = "auto"
    """Attention kernel of the backbone; auto lets transformers choose (SDPA where it can)."""
    max_length: int = 512
    """Longest input in tokens, special tokens included; longer texts are cut, never the special tokens."""
    instructions: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_INSTRUCTIONS))
    """Instructions by role, used by `encode_query` / `encode_document` (keys `query`, `document`)."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        if self.embedding_dim is not None and not 0 < self.embedding_dim <= MAX_EMBEDDING_DIM:
            problems.append(f"model.embedding_dim: must be between 1 and {MAX_EMBEDDING_DIM} or None, got "
                            f"{self.embedding_dim}")
        return problems


@dataclass(frozen=True)
class TokensConfig:
    """The trainable special tokens appended to every input."""

    num_special_tokens: int = 10
    """N: special tokens appended to every input (thought tokens first, then compression tokens)."""
    num_compression_tokens: int = 10
    """K: the last K special tokens, whose states become the embedding and the decoder prompt."""
    init_seed: int = 0
    """Seed for the initial special vectors and projections, so a new model is reproducible."""
    trainable_dtype: Literal["fp32", "bf16"] = "fp32"
    """Dtype of the special vectors, both projections and their outputs; losses and checkpoints stay fp32."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        if self.num_special_tokens < 1:
            problems.append(f"tokens.num_special_tokens: must be >= 1, got {self.num_special_tokens}")
        if not 1 <= self.num_compression_tokens <= max(self.num_special_tokens, 1):
            problems.append(
                f"tokens.num_compression_tokens: must be between 1 and tokens.num_special_tokens "
                f"({self.num_special_tokens}), got {self.num_compression_tokens}"
            )
        return problems + _seed_problems("tokens.init_seed", self.init_seed)


@dataclass(frozen=True)
class LossConfig:
    """The training objective: reconstruction cross-entropy plus alignment MSE."""

    reconstruction_weight: float = 1.0
    """Weight of the reconstruction cross-entropy (the frozen LLM rebuilds the response from the compression states)."""
    alignment_weight: float = 1.0
    """Weight of the alignment MSE between the embedding and the teacher embedding of the response."""
    logits_chunk_size: int = 256
    """Response tokens per chunk when the LM head scores them; one chunk's (chunk x vocabulary) logits is the most
    that exists at once."""
    reconstruction_every: int = 1
    """Compute the reconstruction term on every k-th optimizer step only (steps 0, k, 2k, ... counted from 0); the
    steps between train on the alignment term alone, which needs no pass over the response and costs a fraction of a
    full step. 1 (every step) is the method as published."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        for name in ("reconstruction_weight", "alignment_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                problems.append(f"loss.{name}: must be a finite number >= 0, got {value}")
        if self.reconstruction_weight == 0 and self.alignment_weight == 0:
            problems.append("loss: reconstruction_weight and alignment_weight are both 0; nothing would be trained")
        if self.logits_chunk_size < 1:
            problems.append(f"loss.logits_chunk_size: must be >= 1, got {self.logits_chunk_size}")
        if self.reconstruction_every < 1:
            problems.append(f"loss.reconstruction_every: must be >= 1 (1: every step), got {self.reconstruction_every}")
        if self.reconstruction_every > 1 and self.alignment_weight == 0:
            problems.append("loss.reconstruction_every > 1 needs alignment_weight > 0: the steps without "
                            "reconstruction would train nothing")
        return problems


@dataclass(frozen=True)
class DataConfig:
    """Self-supervised training data: where the queries come from, how the backbone answers them, where files go."""

    queries: str = ""
    """Query source: a .jsonl/.json, .csv, .tsv, .txt (one per line) or .parquet file, or a Hugging Face dataset."""
    query_field: str | None = None
    """Field or column holding the query; None finds `query`, `question` or `prompt` (text files have none)."""
    split: str = "train"
    """Split of a Hugging Face dataset source (ignored for files)."""
    max_queries: int | None = None
    """Use at most this many queries (after skipping empty and duplicate ones); None uses all."""
    responses: str = ""
    """Responses JSONL file written by generate-responses; shards are written beside it (NAME.shard-*-of-*.jsonl)."""
    targets: str = ""
    """Directory of the teacher-embedding store written by compute-targets and read by training."""
    prompt_max_length: int = 1024
    """Longest prompt in tokens (chat template included); longer queries are cut, the template is kept."""
    max_new_tokens: int = 500
    """Most tokens the backbone generates per response; a response cut here has finish_reason `length`."""
    decoding: Literal["model", "greedy", "sample"] = "model"
    """model: the backbone's generation config (sampling for Qwen3, as in the paper); greedy; or sample with it."""
    seed: int | None = 0
    """Seed for sampling, applied per batch so resumed and uninterrupted runs agree; None leaves the RNG unseeded."""
    generation_batch_size: int = 8
    """Queries generated together (one padded batch with the KV cache; the vLLM engine schedules them itself)."""
    engine: Literal["transformers", "vllm"] = "transformers"
    """Generation engine: transformers `generate`, or vLLM on GPUs (`pip install genvec[vllm]`)."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        for name in ("prompt_max_length", "max_new_tokens", "generation_batch_size"):
            if getattr(self, name) < 1:
                problems.append(f"data.{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_new_tokens > MAX_NEW_TOKENS:
            problems.append(f"data.max_new_tokens: must be at most {MAX_NEW_TOKENS}, got {self.max_new_tokens}")
        if self.max_queries is not None and self.max_queries < 1:
            problems.append(f"data.max_queries: must be >= 1 or None, got {self.max_queries}")
        return problems + ([] if self.seed is None else _seed_problems("data.seed", self.seed))


@dataclass(frozen=True)
class TeacherConfig:
    """The unsupervised embedder whose embeddings of the responses the model learns to match."""

    name: str = ""
    """Hub id or local directory of the teacher (for llm2vec, the base model or an LLM2Vec PEFT adapter)."""
    kind: Literal["sentence-transformers", "hf-encoder", "llm2vec"] = "sentence-transformers"
    """sentence-transformers model; hf-encoder (any AutoModel with mean/CLS pooling); llm2vec (bidirectional LLM)."""
    pooling: Literal["auto", "mean", "cls"] = "auto"
    """auto for sentence-transformers (the model's own) and llm2vec (mean); hf-encoder needs mean or cls."""
    adapters: list[str] = field(default_factory=list)
    """llm2vec only: PEFT adapters merged on top of `name`, in order (e.g. the unsup-SimCSE one)."""
    revision: str | None = None
    """Hub revision of the teacher; None means the default branch."""
    batch_size: int = 64
    """Responses embedded per teacher forward pass."""
    max_length: int | None = None
    """Longest teacher input in tokens; None is the model's own limit (sentence-transformers) or 512 (the paper)."""
    storage_dtype: Literal["fp32", "fp16"] = "fp32"
    """Dtype of the stored teacher embeddings; lookups always return float32."""
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """Dtype the teacher runs in: auto is bf16 on GPUs that support it, else fp32."""
    device: str = "auto"
    """Device of the teacher: auto, cpu, cuda, cuda:N or mps."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        if self.batch_size < 1:
            problems.append(f"teacher.batch_size: must be >= 1, got {self.batch_size}")
        if self.max_length is not None and self.max_length < 1:
            problems.append(f"teacher.max_length: must be >= 1 or None, got {self.max_length}")
        if self.kind == "sentence-transformers" and self.pooling != "auto":
            problems.append(
                f"teacher.pooling: sentence-transformers teachers use the model's own pooling; use 'auto', got "
                f"{self.pooling!r}"
            )
        if self.kind == "hf-encoder" and self.pooling == "auto":
            problems.append("teacher.pooling: hf-encoder teachers need 'mean' or 'cls' (BGE models use 'cls'), "
                            "got 'auto'")
        if self.kind == "llm2vec" and self.pooling == "cls":
            problems.append("teacher.pooling: llm2vec teachers mean-pool, as in the paper; use 'auto' or 'mean', "
                            "got 'cls'")
        if self.adapters and self.kind != "llm2vec":
            problems.append(f"teacher.adapters: only llm2vec teachers take adapters, got kind {self.kind!r}")
        return problems


@dataclass(frozen=True)
class TrainConfig:
    """The training loop; defaults are the published recipe (LLM2Vec-Gen v2)."""

    run_dir: str = "runs/genvec"
    """Directory of the run: resolved config, metrics.jsonl, checkpoints/ and the final model in final/."""
    seed: int = 42
    """Seed of the data order (and of every other random choice of the loop)."""
    max_steps: int = 5000
    """Optimizer steps to train for."""
    batch_size: int = 32
    """Examples per optimizer step over all devices (the effective batch)."""
    micro_batch_size: int | None = None
    """Examples per device per forward pass; None means batch_size / devices. Smaller values accumulate gradients."""
    learning_rate: float = 3e-4
    """Peak learning rate of AdamW (the paper: 3e-4 for Qwen3, 5e-4 for Qwen2.5 and Llama)."""
    alignment_learning_rate: float | None = None
    """Peak learning rate of the alignment projection A alone; None uses learning_rate. A unit-norm teacher (e.g.
    all-MiniLM-L6-v2) makes the MSE tiny, and A, which only that loss trains, then learns faster with a larger one."""
    warmup_steps: int = 100
    """Steps of linear warm-up from 0 to the peak learning rate."""
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    """Learning-rate decay after warm-up (constant keeps the peak)."""
    schedule_steps: int | None = None
    """Steps over which the schedule decays to 0; None means max_steps. The official code decays over 20000 and
    stops at 5000 (set 20000 to reproduce it exactly)."""
    weight_decay: float = 0.0
    """AdamW weight decay of the trainable tensors."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW beta1 and beta2."""
    adam_epsilon: float = 1e-8
    """AdamW epsilon."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm; 0 turns clipping off."""
    activation_checkpointing: bool = False
    """Recompute the backbone's layers in the backward pass of reconstruction: less memory, more time."""
    compile: bool = False
    """Compile the backbone's decoder layers with torch.compile (same losses; the first steps wait for compilation)."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding); the data order stays seeded."""
    log_every: int = 10
    """Steps between lines of metrics.jsonl (and tracker logs)."""
    save_every: int = 500
    """Steps between checkpoints (trainable tensors, optimizer, scheduler, RNG states, data position)."""
    keep_last: int = 3
    """Checkpoints kept in run_dir/checkpoints; older ones are deleted."""
    heldout: int = 64
    """Examples set aside (chosen by seed) and never trained on, on which the objective is measured: at most one in
    50 of the data (none under 50 examples); 0 sets none aside."""
    eval_every: int | None = None
    """Steps between measures of the held-out cosine (also at step 0 and the last step); None: at every checkpoint
    (save_every). Each costs 2 x heldout query passes without autograd or response, a fraction of one step."""
    target_scale: Literal["none", "unit_rms"] = "none"
    """none: the alignment MSE compares with the teacher embeddings as they are (the method as published). unit_rms:
    with them times one constant, 1 / their root-mean-square coordinate (sqrt(D) for a unit-norm teacher such as
    all-MiniLM-L6-v2): the coordinate scale of the paper's unnormalised teachers, for which its initialisation,
    learning rates and 1:1 loss weights were chosen. Saved models divide A by it: embeddings keep the teacher's
    scale. The logged alignment MSE is the one trained on (times the constant squared)."""
    resume: str | None = None
    """None starts a new run (refused if run_dir has checkpoints, unless the newest was written by this same elastic
    job: a worker that torchrun restarts resumes); "latest" continues from the newest checkpoint in run_dir; a path
    continues from that checkpoint."""
    report_to: Literal["none", "tensorboard", "wandb"] = "none"
    """Also log metrics to TensorBoard or Weights & Biases (the package must be installed)."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        for name in ("max_steps", "batch_size", "log_every", "save_every", "keep_last"):
            if getattr(self, name) < 1:
                problems.append(f"train.{name}: must be >= 1, got {getattr(self, name)}")
        if self.micro_batch_size is not None and not 1 <= self.micro_batch_size <= self.batch_size:
            problems.append(
                f"train.micro_batch_size: must be between 1 and train.batch_size ({self.batch_size}) or None, "
                f"got {self.micro_batch_size}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            problems.append(f"train.learning_rate: must be a finite number > 0, got {self.learning_rate}")
        rate = self.alignment_learning_rate
        if rate is not None and not (math.isfinite(rate) and rate > 0):
            problems.append(f"train.alignment_learning_rate: must be a finite number > 0 or None, got {rate}")
        if self.warmup_steps < 0:
            problems.append(f"train.warmup_steps: must be >= 0, got {self.warmup_steps}")
        if self.heldout < 0:
            problems.append(f"train.heldout: must be >= 0 (0 sets no example aside), got {self.heldout}")
        if self.eval_every is not None and self.eval_every < 1:
            problems.append(f"train.eval_every: must be >= 1 or None (at every checkpoint), got {self.eval_every}")
        if self.target_scale not in ("none", "unit_rms"):
            problems.append(f"train.target_scale: must be none or unit_rms, got {self.target_scale!r}")
        if self.schedule_steps is not None and self.schedule_steps < self.max_steps:
            problems.append(
                f"train.schedule_steps: must be >= train.max_steps ({self.max_steps}) or None, "
                f"got {self.schedule_steps}"
            )
        for name in ("weight_decay", "max_grad_norm"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                problems.append(f"train.{name}: must be a finite number >= 0, got {getattr(self, name)}")
        if not (math.isfinite(self.adam_epsilon) and self.adam_epsilon > 0):
            problems.append(f"train.adam_epsilon: must be a finite number > 0, got {self.adam_epsilon}")
        if not all(0 <= beta < 1 for beta in self.adam_betas):
            problems.append(f"train.adam_betas: each must be in [0, 1), got {self.adam_betas}")
        return problems + _seed_problems("train.seed", self.seed)


@dataclass(frozen=True)
class ServeConfig:
    """`genvec serve`: where it listens, what it accepts, how it batches. The CLI also reads each field from the
    environment variable `GENVEC_SERVE_<FIELD>` (e.g. `GENVEC_SERVE_PORT=8080`), between a config file and its flags."""

    host: str = "127.0.0.1"
    """Address to bind; 127.0.0.1 (the default) is reachable from this machine only, 0.0.0.0 from anywhere."""
    port: int = 8000
    """TCP port."""
    model_name: str | None = None
    """The model id the API reports; None: the checkpoint directory's name."""
    max_batch_tokens: int = 8192
    """Model batches are filled up to this many (padded) tokens: requests are coalesced and long requests split."""
    max_batch_texts: int = 64
    """The most texts in one model batch."""
    batch_wait_ms: int = 10
    """How long, after a batch is answered, the next may wait for those clients' next texts, in milliseconds (0:
    never wait). Only then: a request arriving at an idle server, or a full batch, never waits."""
    max_inputs: int = 2048
    """The most inputs one request may hold (more: 422)."""
    max_body_bytes: int = 4_000_000
    """The largest request body (more: 413)."""
    max_queue_texts: int = 16384
    """Texts waiting for the model beyond which new requests get 429 with Retry-After."""
    truncate: Literal["error", "cut"] = "error"
    """An input longer than the model's limit: "error" answers 422 naming the limit, "cut" keeps its first tokens
    (counted on /metrics); a request's own `truncate` field overrides it."""
    max_new_tokens: int = 512
    """The most tokens /v1/decode may generate per text."""
    max_decode_inputs: int = 64
    """The most texts or states one /v1/decode request may hold."""
    header_timeout_seconds: float = 10.0
    """How long a connection may take to send a request's headers (after connecting, or after its last answer)
    before the server closes it."""
    body_timeout_seconds: float = 30.0
    """How long a request's body may take to arrive; later: 408, and the connection is closed."""
    max_unfinished_bodies: int = 32
    """Request bodies that may be arriving at once (each holds up to max_body_bytes); one more: 503 with Retry-After."""
    prompts: dict[str, str] = field(default_factory=dict)
    """Instructions by name, beside the model's own `query` and `document` ones, e.g. {"arguana": "Generate text that
    refutes this claim"}. Each name is served as the model alias MODEL-NAME (a request's `model` picks its
    instruction: clients that send only `model` and `input` get the right embedding) and as TEI's `prompt_name`."""
    max_rerank_documents: int = 1000
    """The most documents one rerank or score request may hold (more: 422)."""
    max_rerank_tokens: int = 262144
    """The most tokens (query and documents, instructions included) one rerank or score request may hold (more: 422)."""
    otlp_endpoint: str | None = None
    """OpenTelemetry: send a trace of every request (spans for tokenisation, queueing, the model batch and
    serialisation) to this OTLP/HTTP endpoint, e.g. http://localhost:4318 (needs the `otel` extra); None: no tracing."""
    otlp_service_name: str = "genvec"
    """The service.name the traces carry."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"serve.port: must be between 0 and 65535, got {self.port}")
        for name in ("max_batch_tokens", "max_batch_texts", "max_inputs", "max_body_bytes", "max_queue_texts",
                     "max_new_tokens", "max_decode_inputs", "max_unfinished_bodies", "max_rerank_documents",
                     "max_rerank_tokens"):
            if getattr(self, name) < 1:
                problems.append(f"serve.{name}: must be >= 1, got {getattr(self, name)}")
        for name in ("header_timeout_seconds", "body_timeout_seconds"):
            if not (math.isfinite(getattr(self, name)) and 0 < getattr(self, name) <= 3600):
                problems.append(f"serve.{name}: must be a number of seconds above 0 and at most 3600, got "
                                f"{getattr(self, name)}")
        if not 0 <= self.batch_wait_ms <= 1000:
            problems.append(f"serve.batch_wait_ms: must be between 0 and 1000, got {self.batch_wait_ms}")
        if self.truncate not in ("error", "cut"):
            problems.append(f"serve.truncate: must be error or cut, got {self.truncate!r}")
        if not self.host:
            problems.append("serve.host: must not be empty")
        for name, instruction in self.prompts.items():
            if not PROMPT_NAME.fullmatch(name) or name in ("query", "document"):
                problems.append(f"serve.prompts: a name must be letters, digits, '.', '_' or '-' and not query or "
                                f"document (the model's own), got {name!r}")
            if not instruction.strip():
                problems.append(f"serve.prompts.{name}: the instruction is empty")
        if self.otlp_endpoint is not None and not self.otlp_endpoint.startswith(("http://", "https://")):
            problems.append(f"serve.otlp_endpoint: must be an http:// or https:// address, got {self.otlp_endpoint!r}")
        return problems


@dataclass(frozen=True)
class EvalConfig:
    """`genvec evaluate` / `evaluate_model`: how a model is scored. The CLI also reads each field from the environment
    variable `GENVEC_EVAL_<FIELD>` (e.g. `GENVEC_EVAL_BATCH_SIZE=64`), between a config file and its flags."""

    batch_size: int = 32
    """Texts per forward pass of the genvec model."""
    similarity: Literal["auto", "cosine", "dot"] = "auto"
    """How embeddings are compared; auto: the one a task's benchmark prescribes (the raw dot product for AdvBench-IR,
    as its official script), else cosine."""
    hyde_max_new_tokens: int | None = None
    """HyDE baselines: most tokens the backbone writes per response; None: as many as the model's training responses
    got (its checkpoint's data.max_new_tokens)."""
    hyde_decoding: Literal["model", "greedy", "sample"] | None = None
    """HyDE baselines: how responses are decoded; None: as the model's training responses were (data.decoding).
    hyde:N with N > 1 averages N sampled responses, so it needs sampling."""
    hyde_batch_size: int = 8
    """HyDE baselines: texts the backbone answers together (one padded batch)."""
    dimensions: list[int] = field(default_factory=list)
    """Also score the model and each input-centric baseline at these sizes (their first d coordinates, after the
    fact from the full vectors; d < D needs a truncatable model); none: the full size only."""
    precision: list[Literal["float32", "int8", "uint8", "binary", "ubinary"]] = field(default_factory=list)
    """Also score each size at these precisions (int8/uint8 by calibrated ranges, binary/ubinary by sign, compared by
    Hamming); none: float32."""
    calibration_texts: str | None = None
    """A text file, one text a line, not the tasks' own: each method's int8/uint8 ranges and each baseline's principal
    basis are computed on its embeddings of it; none: the model's checkpoint ranges, baselines at full-size float32."""

    def problems(self) -> list[str]:
        """Every invalid value of this section, one line each."""
        problems = [f"eval.{name}: must be >= 1, got {getattr(self, name)}"
                    for name in ("batch_size", "hyde_batch_size") if getattr(self, name) < 1]
        tokens = self.hyde_max_new_tokens
        if tokens is not None and not 1 <= tokens <= MAX_NEW_TOKENS:
            problems.append(f"eval.hyde_max_new_tokens: must be between 1 and {MAX_NEW_TOKENS} or None, got {tokens}")
        return problems + self._size_problems()

    def _size_problems(self) -> list[str]:
        problems = [f"eval.dimensions: each must be >= 1, got {d}" for d in self.dimensions if d < 1]
        problems += [f"eval.{name}: {values} names a value twice" for name, values in
                     (("dimensions", self.dimensions), ("precision", self.precision))
                     if len(set(values)) != len(values)]
        unpackable = [d for d in self.dimensions if d % 8]
        if unpackable and {"binary", "ubinary"} & set(self.precision):
            problems.append(f"eval.dimensions: binary and ubinary pack 8 coordinates per byte, so they need multiples "
                            f"of 8, got {unpackable}")
        if self.calibration_texts is not None and not self.calibration_texts.strip():
            problems.append("eval.calibration_texts: empty; pass a text file, or leave it unset")
        return problems


def _seed_problems(name: str, seed: int) -> list[str]:
    if not 0 <= seed <= MAX_SEED:
        return [f"{name}: must be an integer between 0 and 2**63 - 1, got {seed}"]
    return []
