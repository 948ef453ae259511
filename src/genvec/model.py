"""`GenVecModel`: a frozen causal LM plus N trainable special tokens and two projections (paper section 3).

Read top to bottom, this file is the method:
1. `special_states`: append the special vectors to the input embeddings of a left-padded text batch, run the frozen
   LLM, and take the final hidden states (after the final norm) of the N special tokens. Two optional caches change
   how, not what: training runs the query tokens outside autograd (design decision 10 in docs/design.md), and an
   instruction shared by every text is read once (`inference.SharedPrefix`);
2. `compression_states`: z = R(h) for the last K of them, the decoder prompt;
3. `embed`: e = mean_k A(z_k), the embedding;
4. `reconstruction_loss`: the same frozen LLM reads `[z ; response ; eos]` and is scored by cross-entropy on the
   response tokens; `forward` adds the alignment MSE between e and the teacher embedding of the response.
Then the trainable tensors and persistence. Reading texts (`encode`, `encode_query`, `encode_document`, `compress`,
`decode`, `inspect`, `identity`) is the front door's: the model inherits those methods from
`inference.InferenceMixin`, which every use of a model goes through.

What it does not do: generate responses, compute teacher embeddings, run the training loop or read checkpoint files;
those live in `data/`, `teacher.py`, `training/` and `checkpoint/` + `loading.py`. Decoding and the logit lens are in
`decode.py`, which works on tensors; the layer switches (checkpointing, compilation) in `layers.py`.

Shapes: B batch, L query length, P shared prefix length, T response length, N special tokens, K compression tokens,
H hidden size, D embedding size, M labelled response tokens in a batch.
"""

import dataclasses
import functools
import logging
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from genvec import backbone as backbones
from genvec import layers, losses
from genvec.checkpoint.native import save_native
from genvec.config import GenVecConfig, ModelConfig, TokensConfig
from genvec.data.collate import (
    QueryBatch,
    ResponseBatch,
    check_texts,
    join_instruction,
    pad_left,
    pad_right,
    tokenize_queries,
    tokenize_responses,
)
from genvec.device import DTYPE_NAMES, DTYPES
from genvec.errors import CheckpointError, InputError
from genvec.inference import InferenceMixin, SharedPrefix
from genvec.projections import AlignmentProjection, ReconstructionProjection
from genvec.tokens import SpecialTokens

logger = logging.getLogger(__name__)


class LossOutput(NamedTuple):
    """Scalar fp32 tensors of one training batch.

    `reconstruction` is not computed when its weight is 0 and then reads NaN; `alignment` is always computed (it
    costs one small matrix product) so that it can be logged even at weight 0, where it does not enter `total`.
    """

    total: torch.Tensor
    reconstruction: torch.Tensor
    alignment: torch.Tensor


class GenVecModel(InferenceMixin, nn.Module):
    """A frozen decoder LLM whose appended special tokens produce response-centric embeddings.

    Attributes:
        backbone: the Hugging Face causal LM, frozen (serves hidden states and the LM head).
        tokenizer: its tokenizer, untouched.
        special_tokens: the N trainable input vectors.
        reconstruction: R, H -> H.
        alignment: A, H -> D.
        config: the resolved `GenVecConfig` (embedding_dim filled in).

    Example:
        >>> model = GenVecModel.from_backbone("Qwen/Qwen3-0.6B", embedding_dim=384)
        >>> vectors = model.encode(["where do polar bears live?"], normalize=True)  # (1, 384) float32
    """

    def __init__(self, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: GenVecConfig) -> None:
        super().__init__()
        backbones.freeze(backbone)
        hidden_size = backbones.hidden_size(backbone)
        model_config = dataclasses.replace(
            config.model,
            backbone=config.model.backbone or backbone.name_or_path,
            embedding_dim=config.model.embedding_dim or hidden_size,
        )
        self.config = dataclasses.replace(config, model=model_config)
        self.backbone = backbone
        self.tokenizer = tokenizer
        self.eos_token_id = backbones.eos_token_id(tokenizer, backbone)
        self.pad_token_id = backbones.pad_token_id(tokenizer)
        self.activation_checkpointing = False
        self.layers_compiled = False
        # The record of `genvec.truncation.make_truncatable` (saved with the checkpoint): None means the embedding's
        # coordinates are in no particular order, and `encode(..., dimensions=d)` refuses any d < D.
        self.truncation: dict | None = None
        # The record of `genvec.calibration` (saved with the checkpoint): the int8/uint8 ranges; None refuses them.
        self.quantization: dict | None = None

        generator = torch.Generator().manual_seed(config.tokens.init_seed)
        self.special_tokens = SpecialTokens(config.tokens.num_special_tokens, hidden_size)
        self.reconstruction = ReconstructionProjection(hidden_size, generator)
        self.alignment = AlignmentProjection(hidden_size, model_config.embedding_dim, generator)
        vocab_size = backbone.get_input_embeddings().num_embeddings
        self.special_tokens.reset_from_embeddings(backbone.get_input_embeddings(), vocab_size, generator)
        device = backbone.get_input_embeddings().weight.device
        # Initialised in fp32 and then cast, so a bf16 model starts from the rounded values of the fp32 one.
        trainable_dtype = DTYPES[config.tokens.trainable_dtype]
        for module in (self.special_tokens, self.reconstruction, self.alignment):
            module.to(device=device, dtype=trainable_dtype)

    @classmethod
    def from_backbone(
        cls,
        backbone: str,
        *,
        num_special_tokens: int = 10,
        num_compression_tokens: int = 10,
        embedding_dim: int | None = None,
        dtype: str = "auto",
        device: str = "auto",
        revision: str | None = None,
    ) -> "GenVecModel":
        """A new, untrained model on a backbone loaded with `AutoModelForCausalLM.from_pretrained`.

        Args:
            backbone: hub id or local directory of any causal LM (Qwen2/2.5/3, Llama 3.x, Mistral, Gemma, ...).
            num_special_tokens: N, appended to every input.
            num_compression_tokens: K <= N, the last ones; their states make the embedding.
            embedding_dim: D; None means the backbone's hidden size. Use the teacher's size for training.
            dtype: backbone dtype, "auto" | "bf16" | "fp16" | "fp32".
            device: "auto" | "cpu" | "cuda" | "cuda:N" | "mps".
            revision: hub revision of the backbone.
        """
        config = GenVecConfig(
            model=ModelConfig(
                backbone=backbone, revision=revision, embedding_dim=embedding_dim, dtype=dtype, device=device
            ),
            tokens=TokensConfig(num_special_tokens=num_special_tokens, num_compression_tokens=num_compression_tokens),
        )
        return cls.from_config(config)

    @classmethod
    def from_config(cls, config: GenVecConfig) -> "GenVecModel":
        """A new, untrained model as `config` describes it (loads the backbone, pinned to a commit on the hub)."""
        revision = backbones.resolve_revision(config.model.backbone, config.model.revision)
        source = backbones.local_path(config.model.backbone)  # a directory by its absolute path: found from anywhere
        config = dataclasses.replace(
            config, model=dataclasses.replace(config.model, backbone=source, revision=revision)
        )
        backbone, tokenizer = backbones.load_configured(config.model)
        return cls(backbone, tokenizer, config)

    # ---------------------------------------------------------------- the method

    def special_states(
        self, batch: QueryBatch, *, prefix: SharedPrefix | None = None, cache_query: bool = False
    ) -> torch.Tensor:
        """Final hidden states (after the final norm) of the N special tokens, (B, N, H) in the backbone dtype.

        The special vectors are appended to each text's token embeddings; the batch is left-padded, so they are
        the last N positions of every row. Positions count real tokens only, so a text's states do not depend on
        how much padding its batch needs. Two caches give the same states (tested, fp32) for less work:
        - `prefix`: every text of the batch continues `prefix`'s tokens (an instruction), whose keys and values
          were computed once; `batch` holds the rest of each text;
        - `cache_query` (training): under causal attention the text tokens never see the special tokens, so their
          states carry no gradient to anything trainable. They run first under `no_grad`, keeping their keys and
          values, and only the N special tokens run with autograd on top (design decision 10).
        """
        special = self.special_tokens(batch.input_ids.shape[0], self.dtype)  # (B, N, H)
        text = self.backbone.get_input_embeddings()(batch.input_ids)  # (B, L, H)
        mask = torch.cat([batch.attention_mask, batch.attention_mask.new_ones(special.shape[:2])], 1)  # (B, L + N)
        positions = _positions(mask)  # (B, L + N)
        cache_query = cache_query and text.shape[1] > 0
        cache = None
        if prefix is not None:  # the prefix holds positions 0 .. P - 1
            cache, positions = prefix.cache_for(text.shape[0]), positions + prefix.length
            mask = torch.cat([mask.new_ones(mask.shape[0], prefix.length), mask], 1)  # (B, P + L + N)
        with layers.eager(self.layers_compiled and (cache_query or prefix is not None)):
            if cache_query:
                with torch.no_grad():
                    cache = self.backbone.base_model(
                        inputs_embeds=text, attention_mask=mask[:, : -special.shape[1]],
                        position_ids=positions[:, : text.shape[1]], cache=cache, use_cache=True,
                    ).cache
            output = self.backbone.base_model(
                inputs_embeds=special if cache_query else torch.cat([text, special], 1), attention_mask=mask,
                position_ids=positions[:, text.shape[1] :] if cache_query else positions, cache=cache,
                use_cache=cache is not None,
            )
        return output.last_hidden_state[:, -special.shape[1] :]  # (B, N, H)

    def compression_states(self, special_states: torch.Tensor) -> torch.Tensor:
        """z = R(h) for the last K special tokens: (B, N, H) final states -> (B, K, H) in the trainable dtype."""
        return self.reconstruction(special_states[:, -self.num_compression_tokens :].to(self.trainable_dtype))

    def embed(self, compression_states: torch.Tensor) -> torch.Tensor:
        """The embedding e = mean_k A(z_k), (B, K, H) -> (B, D) in the trainable dtype, not normalised.

        A is affine, so mean_k A(z_k) = A(mean_k z_k): projecting the mean is K times cheaper and equal.
        """
        return self.alignment(compression_states.to(self.trainable_dtype).mean(1))

    def reconstruction_loss(
        self, compression_states: torch.Tensor, responses: ResponseBatch, reduction: Literal["mean", "sum"] = "mean"
    ) -> torch.Tensor:
        """Cross-entropy of the frozen LLM reading `[z ; response ; pads]`, on the response tokens only.

        The last prompt position predicts the first response token. The LM head runs only at the M labelled
        positions, in chunks (design decision 4).
        """
        num_prompt = compression_states.shape[1]
        response_embeddings = self.backbone.get_input_embeddings()(responses.input_ids)  # (B, T, H)
        inputs = torch.cat([compression_states.to(self.dtype), response_embeddings], 1)  # (B, K + T, H)
        # No attention mask: the pads are at the end, so under causal attention no labelled position can see them,
        # and the backbone may use its plain causal kernel. The pads' own outputs are never scored.
        with layers.checkpointing(self.backbone, self.activation_checkpointing):
            hidden = self.backbone.base_model(inputs_embeds=inputs, use_cache=False)
        predictors = hidden.last_hidden_state[:, num_prompt - 1 : -1]  # (B, T, H): position t predicts token t
        labelled = responses.attention_mask.bool()  # (B, T)
        head = self.backbone.get_output_embeddings()
        return losses.reconstruction_loss(
            predictors[labelled],  # (M, H)
            responses.input_ids[labelled],  # (M,)
            head.weight,
            head.bias,
            softcap=getattr(self.backbone.config.get_text_config(), "final_logit_softcapping", None),
            chunk_size=self.config.loss.logits_chunk_size,
            reduction=reduction,
        )

    def forward(
        self,
        queries: QueryBatch,
        responses: ResponseBatch,
        teacher_embeddings: torch.Tensor,
        *,
        num_response_tokens: int | None = None,
        num_examples: int | None = None,
        reconstruct: bool = True,
    ) -> LossOutput:
        """The training loss of one tokenised batch: `w_recon * CE + w_align * MSE` (see `loss` for strings).

        With `reconstruct=False` (an alignment-only step of `loss.reconstruction_every`) the response is not read:
        the loss is the alignment term alone and `reconstruction` is NaN, as when its weight is 0.

        Both terms are sums over this batch divided by `num_response_tokens` (cross-entropy) and `num_examples` x D
        (MSE); by default this batch's own counts, so the result is the batch mean. A trainer that splits one
        optimizer batch over micro-batches or devices passes the counts of the whole batch, so the summed gradients
        equal those of one big batch, whatever the split.
        """
        weights = self.config.loss
        num_response_tokens = num_response_tokens or int(responses.attention_mask.sum())
        num_examples = num_examples or queries.input_ids.shape[0]
        states = self.compression_states(self.special_states(queries, cache_query=True))  # (B, K, H)
        squared_error = losses.alignment_loss(
            self.embed(states), teacher_embeddings.to(states.device), reduction="sum"
        )
        alignment = squared_error / (num_examples * self.embedding_dim)
        reconstruction_weight = weights.reconstruction_weight if reconstruct else 0.0
        if reconstruction_weight:
            reconstruction = self.reconstruction_loss(states, responses, reduction="sum") / num_response_tokens
        else:
            reconstruction = torch.full((), float("nan"), device=states.device)
        total = losses.combined_loss(reconstruction, alignment, reconstruction_weight, weights.alignment_weight)
        return LossOutput(total, reconstruction, alignment)

    # ---------------------------------------------------------------- training inputs

    def loss(
        self, queries: list[str], responses: list[str], teacher_embeddings: torch.Tensor | np.ndarray
    ) -> LossOutput:
        """The LLM2Vec-Gen loss of (query, response, teacher embedding) triples given as strings.

        Args:
            queries: B query texts (no instruction, as in training).
            responses: B responses of the backbone to those queries.
            teacher_embeddings: (B, D) teacher embeddings of the responses.

        Returns:
            `LossOutput(total, reconstruction, alignment)`, scalar tensors with autograd.
        """
        queries_batch, responses_batch = self.tokenize_batch(queries, responses)
        try:
            teacher_embeddings = torch.as_tensor(np.asarray(teacher_embeddings, dtype=np.float32))
        except (TypeError, ValueError) as err:
            raise InputError(f"teacher_embeddings must be a (B, D) array of numbers ({err}).") from err
        expected = (queries_batch.input_ids.shape[0], self.embedding_dim)
        if tuple(teacher_embeddings.shape) != expected:
            raise InputError(
                f"teacher_embeddings has shape {tuple(teacher_embeddings.shape)}; expected {expected} (one row per "
                "query, the model's embedding_dim)."
            )
        return self(queries_batch.to(self.device), responses_batch.to(self.device), teacher_embeddings.to(self.device))

    def tokenize_batch(self, queries: list[str], responses: list[str]) -> tuple[QueryBatch, ResponseBatch]:
        """Tokenise and pad a training batch (queries left-padded, responses right-padded with EOS)."""
        queries, responses = check_texts(queries, "queries"), check_texts(responses, "responses")
        if len(queries) != len(responses):
            raise InputError(f"got {len(queries)} queries but {len(responses)} responses; pass one response each.")
        max_length = self.config.model.max_length
        query_ids = tokenize_queries(self.tokenizer, join_instruction(queries, None), max_length,
                                     self.num_special_tokens)
        response_ids = tokenize_responses(self.tokenizer, responses, max_length, self.eos_token_id)
        return pad_left(query_ids, self.pad_token_id), pad_right(response_ids, self.pad_token_id)

    # ---------------------------------------------------------------- facts

    @property
    def device(self) -> torch.device:
        return self.special_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The backbone's dtype (the trainable tensors have `trainable_dtype`)."""
        return self.backbone.get_input_embeddings().weight.dtype

    @property
    def trainable_dtype(self) -> torch.dtype:
        """The dtype of the special vectors and projections, and of the compression states and embeddings."""
        return self.special_tokens.weight.dtype

    @property
    def hidden_size(self) -> int:
        return self.special_tokens.weight.shape[1]

    @property
    def embedding_dim(self) -> int:
        return self.alignment.out_features

    @property
    def num_special_tokens(self) -> int:
        return self.special_tokens.weight.shape[0]

    @property
    def num_compression_tokens(self) -> int:
        return self.config.tokens.num_compression_tokens

    @property
    def loaded_backbone(self) -> backbones.LoadedBackbone:
        """The frozen LLM, its tokenizer and its pinned `ModelConfig`, e.g. for `generate_responses`."""
        return backbones.LoadedBackbone(self.backbone, self.tokenizer, self.config.model)

    @functools.cached_property
    def backbone_record(self) -> dict[str, object]:
        """What a checkpoint records of the backbone: id or absolute path, pinned revision, class, hidden size, and
        the fingerprint of its architecture and tokenizer (to refuse another backbone at load time)."""
        return {
            "name_or_path": self.config.model.backbone,
            "revision": self.config.model.revision,
            "architecture": type(self.backbone).__name__,
            "hidden_size": self.hidden_size,
            "fingerprint": backbones.fingerprint(self.backbone, self.tokenizer),
        }

    @property
    def _no_split_modules(self) -> list[str]:
        """The backbone's layer classes: Accelerate's FSDP auto-wrap reads them to shard each decoder layer apart."""
        return list(getattr(self.backbone, "_no_split_modules", None) or [])

    def train(self, mode: bool = True) -> "GenVecModel":
        """Set train/eval mode for the trainable parts; the frozen backbone always stays in eval mode."""
        super().train(mode)
        self.backbone.eval()
        return self

    def compile_layers(self) -> None:
        """Compile the backbone's decoder layers with `torch.compile` (`train.compile`), in place; see `layers.py`."""
        self.layers_compiled = layers.compile_layers(self.backbone) or self.layers_compiled

    # ---------------------------------------------------------------- trainable tensors and persistence

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The special vectors and both projections: everything an optimizer should see."""
        return [*self.special_tokens.parameters(), *self.reconstruction.parameters(), *self.alignment.parameters()]

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable tensors by name (what a checkpoint stores); the backbone is referenced, not copied."""
        return {
            "special_tokens.weight": self.special_tokens.weight,
            "reconstruction.weight": self.reconstruction.weight,
            "reconstruction.bias": self.reconstruction.bias,
            "alignment.weight": self.alignment.weight,
            "alignment.bias": self.alignment.bias,
        }

    def check_trainable_state_dict(self, weights: dict[str, torch.Tensor], *, source: str) -> None:
        """Refuse `weights` unless they are exactly the trainable tensors by name and shape; every mismatch listed.

        Raises:
            CheckpointError: naming `source` and each missing, unexpected or misshapen tensor.
        """
        expected = {name: tuple(tensor.shape) for name, tensor in self.trainable_state_dict().items()}
        problems = [f"missing tensor {name} {shape}" for name, shape in expected.items() if name not in weights]
        problems += [f"unexpected tensor {name}" for name in weights if name not in expected]
        problems += [
            f"tensor {name} has shape {tuple(weights[name].shape)}, the model expects {shape}"
            for name, shape in expected.items()
            if name in weights and tuple(weights[name].shape) != shape
        ]
        problems += [
            f"tensor {name} holds NaN or infinite values (the checkpoint is damaged, or its training diverged)"
            for name in expected
            if name in weights and weights[name].is_floating_point() and not torch.isfinite(weights[name]).all()
        ]
        if problems:
            raise CheckpointError(f"{source} does not fit the model:\n" + "\n".join(problems))

    def load_trainable_state_dict(self, weights: dict[str, torch.Tensor], *, source: str) -> None:
        """Copy trainable tensors into the model after `check_trainable_state_dict`."""
        self.check_trainable_state_dict(weights, source=source)
        with torch.no_grad():
            for name, target in self.trainable_state_dict().items():
                target.copy_(weights[name].to(target.device, target.dtype))

    def save_pretrained(self, path: str | Path) -> None:
        """Write a native checkpoint: `genvec_config.json` + `trainable.safetensors` (atomically, backbone
        referenced)."""
        save_native(path, self.config, self.trainable_state_dict(), self.backbone_record, self.truncation,
                    self.quantization)

    def extra_repr(self) -> str:
        return (
            f"backbone={self.config.model.backbone!r}, N={self.num_special_tokens}, K={self.num_compression_tokens}, "
            f"H={self.hidden_size}, D={self.embedding_dim}, dtype={DTYPE_NAMES.get(self.dtype, self.dtype)}"
        )


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only: 0 for left pads, then 0, 1, 2, ... (B, L)."""
    return (attention_mask.cumsum(1) - 1).clamp(min=0)
