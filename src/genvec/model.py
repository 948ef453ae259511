"""`GenVecModel`: a frozen causal LM plus N trainable special tokens and two projections (paper section 3).

Read top to bottom, this file is the method, then its uses:
1. `special_states`: append the special vectors to the input embeddings of a left-padded text batch, run the frozen
   LLM, and take the final hidden states (after the final norm) of the N special tokens;
2. `compression_states`: z = R(h) for the last K of them, the decoder prompt;
3. `embed`: e = mean_k A(z_k), the embedding;
4. `reconstruction_loss`: the same frozen LLM reads `[z ; response ; eos]` and is scored by cross-entropy on the
   response tokens; `forward` adds the alignment MSE between e and the teacher embedding of the response.
The training path runs step 1 with the query tokens outside autograd (`special_states_with_query_cache`): the same
states and gradients, for less compute (design decision 10 in docs/design.md). Inference (`compress`, `encode`,
`decode`, `inspect`) and persistence come after the method.

What it does not do: generate responses, compute teacher embeddings, run the training loop or read checkpoint files;
those live in `data/`, `teacher.py`, `train.py` and `checkpoint/` + `loading.py`. Decoding and the logit lens are in
`decode.py`, which works on tensors; the layer switches (checkpointing, compilation) in `layers.py`.

Shapes: B batch, L query length, T response length, N special tokens, K compression tokens, H hidden size,
D embedding size, M labelled response tokens in a batch.

Why over 450 lines: it is one class, the method and its public API (encode, decode, inspect, loss, save), and most
of its length is the docstrings users read; split across files, one object would have to be read in several.
"""

import copy
import dataclasses
import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from genvec import backbone as backbones
from genvec import decode as decoding
from genvec import layers, losses
from genvec.config import GenVecConfig, ModelConfig, TokensConfig
from genvec.data.collate import (
    QueryBatch,
    ResponseBatch,
    batch_token_budget,
    check_texts,
    join_instruction,
    length_batches,
    pad_left,
    pad_right,
    tokenize_queries,
    tokenize_responses,
)
from genvec.device import DTYPE_NAMES, DTYPES
from genvec.errors import CheckpointError, InputError
from genvec.formats import shows_progress
from genvec.projections import AlignmentProjection, ReconstructionProjection
from genvec.tokens import SpecialTokens

logger = logging.getLogger(__name__)

# Shortest shared prefix (in tokens) that `encode` computes once; below it the copy of the cache costs more.
MIN_SHARED_PREFIX = 4

class LossOutput(NamedTuple):
    """Scalar fp32 tensors of one training batch.

    `reconstruction` is not computed when its weight is 0 and then reads NaN; `alignment` is always computed (it
    costs one small matrix product) so that it can be logged even at weight 0, where it does not enter `total`.
    """

    total: torch.Tensor
    reconstruction: torch.Tensor
    alignment: torch.Tensor


class GenVecModel(nn.Module):
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
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, backbone=source, revision=revision))
        backbone, tokenizer = backbones.load_configured(config.model)
        return cls(backbone, tokenizer, config)

    # ---------------------------------------------------------------- the method

    def special_states(self, batch: QueryBatch) -> torch.Tensor:
        """Final hidden states (after the final norm) of the N special tokens, (B, N, H) in the backbone dtype.

        The special vectors are appended to each text's token embeddings; the batch is left-padded, so they are
        the last N positions of every row.
        """
        special = self.special_tokens(batch.input_ids.shape[0], self.dtype)  # (B, N, H)
        text = self.backbone.get_input_embeddings()(batch.input_ids)  # (B, L, H)
        mask = torch.cat([batch.attention_mask, batch.attention_mask.new_ones(special.shape[:2])], 1)  # (B, L + N)
        # Positions count real tokens only, so a text's states do not depend on how much padding its batch needs.
        output = self.backbone.base_model(
            inputs_embeds=torch.cat([text, special], 1), attention_mask=mask, position_ids=_positions(mask),
            use_cache=False,
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
    ) -> LossOutput:
        """The training loss of one tokenised batch: `w_recon * CE + w_align * MSE` (see `loss` for strings).

        Both terms are sums over this batch divided by `num_response_tokens` (cross-entropy) and `num_examples` x D
        (MSE); by default this batch's own counts, so the result is the batch mean. A trainer that splits one
        optimizer batch over micro-batches or devices passes the counts of the whole batch, so the summed gradients
        equal those of one big batch, whatever the split.
        """
        weights = self.config.loss
        num_response_tokens = num_response_tokens or int(responses.attention_mask.sum())
        num_examples = num_examples or queries.input_ids.shape[0]
        states = self.compression_states(self.special_states_with_query_cache(queries))  # (B, K, H)
        squared_error = losses.alignment_loss(
            self.embed(states), teacher_embeddings.to(states.device), reduction="sum"
        )
        alignment = squared_error / (num_examples * self.embedding_dim)
        if weights.reconstruction_weight:
            reconstruction = self.reconstruction_loss(states, responses, reduction="sum") / num_response_tokens
        else:
            reconstruction = torch.full((), float("nan"), device=states.device)
        total = losses.combined_loss(
            reconstruction, alignment, weights.reconstruction_weight, weights.alignment_weight
        )
        return LossOutput(total, reconstruction, alignment)

    def special_states_with_query_cache(self, batch: QueryBatch) -> torch.Tensor:
        """`special_states` for training: the query tokens run without autograd, the special tokens with it.

        Under causal attention the query tokens never see the special tokens, so their states carry no gradient to
        anything trainable. They run first under `no_grad`, keeping their keys and values, and only the N special
        tokens run with autograd on top: the same states and gradients, for less compute and activation memory.
        """
        if batch.input_ids.shape[1] == 0:
            return self.special_states(batch)
        base = self.backbone.base_model
        special = self.special_tokens(batch.input_ids.shape[0], self.dtype)  # (B, N, H)
        text_lengths = batch.attention_mask.sum(1, keepdim=True)  # (B, 1)
        special_positions = text_lengths + torch.arange(special.shape[1], device=special.device)  # (B, N)
        with torch.no_grad(), layers.eager(self.layers_compiled):
            query = base(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                position_ids=_positions(batch.attention_mask), use_cache=True,
            )
        with layers.eager(self.layers_compiled):
            output = base(
                inputs_embeds=special,
                attention_mask=torch.cat([batch.attention_mask, batch.attention_mask.new_ones(special.shape[:2])], 1),
                position_ids=special_positions,
                cache=query.cache,
                use_cache=True,
            )
        return output.last_hidden_state  # (B, N, H)

    def special_states_after_prefix(self, prefix: "SharedPrefix", rests: list[list[int]]) -> torch.Tensor:
        """`special_states` of texts that all start with `prefix`, given the rest of each text's token ids.

        The prefix's keys and values are computed once (`SharedPrefix`); each row then runs only its own tokens and
        the special tokens on top. Rows are padded on the left of their own tokens, after the prefix; the pads are
        masked and positions count real tokens only, so every state equals the plain path's (tested, fp32).
        """
        batch = pad_left(rests, self.pad_token_id).to(self.device)  # (b, L')
        special = self.special_tokens(batch.input_ids.shape[0], self.dtype)  # (b, N, H)
        text = self.backbone.get_input_embeddings()(batch.input_ids)  # (b, L', H)
        rest_mask = torch.cat([batch.attention_mask, batch.attention_mask.new_ones(special.shape[:2])], 1)
        mask = torch.cat([rest_mask.new_ones(rest_mask.shape[0], prefix.length), rest_mask], 1)  # (b, P + L' + N)
        positions = prefix.length + _positions(rest_mask)  # the prefix holds positions 0 .. P - 1
        with layers.eager(self.layers_compiled):
            output = self.backbone.base_model(
                inputs_embeds=torch.cat([text, special], 1), attention_mask=mask, position_ids=positions,
                cache=prefix.cache_for(batch.input_ids.shape[0]), use_cache=True,
            )
        return output.last_hidden_state[:, -special.shape[1] :]  # (b, N, H)

    # ---------------------------------------------------------------- inference

    @torch.no_grad()  # not inference_mode: callers may feed the states to autograd code (decoding, probes)
    def compress(
        self,
        texts: list[str] | str,
        *,
        instruction: str | None = None,
        max_length: int | None = None,
        batch_size: int = 32,
    ) -> torch.Tensor:
        """Compression states z = R(h) of each text: the decoder prompt, (B, K, H) fp32 on the model's device.

        Texts run `batch_size` at a time, longest first (as in `encode`), so memory stays bounded by one batch.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        ids = self._tokenize_texts(texts, instruction, max_length)
        states = torch.empty(len(ids), self.num_compression_tokens, self.hidden_size, device=self.device)  # (B, K, H)
        for indices in self._batches(ids, batch_size):
            batch = pad_left([ids[i] for i in indices], self.pad_token_id).to(self.device)
            rows = torch.as_tensor(indices, device=self.device)
            states[rows] = self.compression_states(self.special_states(batch)).float()
        return states

    @torch.inference_mode()
    def encode(
        self,
        texts: list[str] | str,
        *,
        instruction: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        normalize: bool = False,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed texts: (len(texts), D) float32 numpy array, in the order given.

        Texts are sorted by length and batched (less padding), then put back in order. With an instruction each
        input is `instruction.strip() + " " + text.strip()`. Texts longer than `max_length` minus the special tokens
        are cut at the end (a warning says how many).

        Args:
            texts: a list of strings (a single string counts as a list of one).
            instruction: task instruction, e.g. "Generate a passage that best answers this question:".
            batch_size: texts per forward pass at most (batches of long texts hold fewer: at most 4,096 padded
                tokens on a CPU, 16,384 on an accelerator).
            max_length: tokens per input, special tokens included; None means `config.model.max_length`.
            normalize: L2-normalise each embedding (for cosine similarity by dot product).
            show_progress: progress bar; None shows one from `formats.PROGRESS_MIN_BATCHES` batches on.

        Raises:
            InputError: empty input, a non-string item, a bad batch size or max_length.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if not isinstance(normalize, bool):
            raise InputError(f"normalize must be True or False, got {normalize!r}.")
        ids = self._tokenize_texts(texts, instruction, max_length)
        # Every text starts with the instruction's tokens: their keys and values are computed once (decision 10).
        prefix = self._shared_prefix(ids) if instruction is not None and len(ids) > 1 else None
        return self._embed_ids(ids, prefix, batch_size, normalize, shows_progress(show_progress, len(ids), batch_size))

    def tokenize(self, texts: list[str] | str, *, instruction: str | None = None) -> list[list[int]]:
        """Token ids of each `instruction + text` as `encode` reads them, not cut (a caller that enforces its own
        length policy, such as `genvec serve`, compares them with `max_text_tokens`)."""
        return self.tokenizer(join_instruction(check_texts(texts), instruction), add_special_tokens=True)["input_ids"]

    @property
    def max_text_tokens(self) -> int:
        """The most tokens of instruction + text `encode` reads (`model.max_length` less the special tokens)."""
        return self.config.model.max_length - self.num_special_tokens

    @torch.inference_mode()
    def embed_token_ids(self, ids: list[list[int]], *, batch_size: int = 32) -> np.ndarray:
        """Embeddings (float32, not normalised) of texts already tokenised by `tokenize` (each at most
        `max_text_tokens` long): the plain path of `encode`, for callers that batch texts of different instructions
        together."""
        if not ids or any(not row or len(row) > self.max_text_tokens for row in ids):
            raise InputError(f"each row of ids must hold 1 to {self.max_text_tokens} token ids.")
        return self._embed_ids(ids, None, batch_size, normalize=False, show=False)

    def trainable_digest(self) -> str:
        """Hex SHA-256 of the trainable tensors (names and fp32 values, in `trainable_state_dict` order): which
        trained weights an unsaved model holds."""
        digest = hashlib.sha256()
        for name, tensor in self.trainable_state_dict().items():
            digest.update(name.encode() + tensor.detach().float().cpu().numpy().tobytes())
        return digest.hexdigest()

    def encode_query(self, texts: list[str] | str, **kwargs) -> np.ndarray:
        """`encode` with the model's `query` instruction (see `config.model.instructions`)."""
        return self.encode(texts, instruction=self.config.model.instructions.get("query"), **kwargs)

    def encode_document(self, texts: list[str] | str, **kwargs) -> np.ndarray:
        """`encode` with the model's `document` instruction (see `config.model.instructions`)."""
        return self.encode(texts, instruction=self.config.model.instructions.get("document"), **kwargs)

    def decode(
        self,
        texts: list[str] | str | None = None,
        *,
        states: torch.Tensor | np.ndarray | None = None,
        instruction: str | None = None,
        max_new_tokens: int = 128,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        batch_size: int = 16,
    ) -> list[str]:
        """Turn embeddings back into text: the frozen LLM generates from the compression states z (paper 3.6).

        Args:
            texts: strings to compress first (with `instruction`, as `compress` does); or give `states`.
            states: (B, K, H) or (K, H) compression states, e.g. stored or edited outputs of `compress`.
            instruction: instruction put before each text, as in `encode`.
            max_new_tokens: the most tokens generated per text; a row stops earlier at an end-of-sequence token.
            do_sample: sample the next token instead of taking the most probable one (greedy).
            temperature: softmax temperature when sampling (> 0).
            top_p: nucleus sampling mass when sampling, in (0, 1]; 1 keeps the whole vocabulary.
            seed: seed of the sampling generator, for reproducible samples.
            batch_size: rows generated together.

        Returns:
            One string per text or state row, special tokens removed.

        Raises:
            InputError: both or neither of texts and states, states of the wrong shape, bad numbers.

        Example:
            >>> model.decode(["where do polar bears live?"], max_new_tokens=40)
            ['Polar bears live in the Arctic, ...']
        """
        sampling = decoding.Sampling(temperature, top_p, seed) if do_sample else None
        decoding.check_decode_arguments(texts, states, max_new_tokens, sampling, batch_size)
        if states is not None:
            prompts = decoding.check_states(states, self.hidden_size)
            batches = (prompts[start : start + batch_size] for start in range(0, prompts.shape[0], batch_size))
        else:
            texts = check_texts(texts)
            batches = (
                self.compress(texts[start : start + batch_size], instruction=instruction, batch_size=batch_size)
                for start in range(0, len(texts), batch_size)
            )
        with layers.eager(self.layers_compiled):
            return decoding.decode_prompts(
                self.backbone, self.tokenizer, batches, max_new_tokens=max_new_tokens, sampling=sampling
            )

    @torch.no_grad()
    def inspect(self, text: str, *, top_k: int = 10) -> decoding.LogitLens:
        """Logit lens of one text: for every special token, the top tokens of the LM head applied to its final
        hidden state and to its compression state, with probabilities (see `genvec.decode`).

        Example:
            >>> print(model.inspect("where do polar bears live?", top_k=5).to_table())
        """
        decoding.check_lens_arguments(text, top_k, self.backbone.get_output_embeddings().weight.shape[0])
        batch = pad_left(self._tokenize_texts([text], None, None), self.pad_token_id).to(self.device)
        special = self.special_states(batch)  # (1, N, H)
        compression = self.compression_states(special)  # (1, K, H)
        with layers.eager(self.layers_compiled):
            return decoding.logit_lens(self.backbone, self.tokenizer, text, special[0], compression[0], top_k=top_k)

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
        query_ids = tokenize_queries(self.tokenizer, join_instruction(queries, None), max_length, self.num_special_tokens)
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
        """Write a native checkpoint: `genvec_config.json` + `trainable.safetensors` (atomically, backbone referenced)."""
        from genvec.checkpoint.native import save_native

        save_native(path, self.config, self.trainable_state_dict(), self.backbone_record)

    # ---------------------------------------------------------------- internals

    def _embed_ids(
        self, ids: list[list[int]], prefix: "SharedPrefix | None", batch_size: int, normalize: bool, show: bool
    ) -> np.ndarray:
        """Embeddings of token ids in the given order, batched longest first; after `prefix` when given."""
        embeddings = np.empty((len(ids), self.embedding_dim), dtype=np.float32)
        for indices in tqdm(self._batches(ids, batch_size), desc="encode", unit="batch", disable=not show):
            if prefix is None:
                batch = pad_left([ids[i] for i in indices], self.pad_token_id).to(self.device)
                special = self.special_states(batch)
            else:
                special = self.special_states_after_prefix(prefix, [ids[i][prefix.length :] for i in indices])
            vectors = self.embed(self.compression_states(special))  # (b, D)
            if normalize:
                vectors = nn.functional.normalize(vectors, dim=-1)
            embeddings[indices] = vectors.float().cpu().numpy()
        return embeddings

    def _batches(self, ids: list[list[int]], batch_size: int) -> list[np.ndarray]:
        """Longest first (memory errors show early), at most `batch_size` texts and the device's padded tokens."""
        return length_batches([len(row) + self.num_special_tokens for row in ids], batch_size,
                              batch_token_budget(self.device))

    def _shared_prefix(self, ids: list[list[int]]) -> "SharedPrefix | None":
        """The tokens every text starts with, run once; None when too few to be worth a cache."""
        length = len(os.path.commonprefix(ids))
        if length < MIN_SHARED_PREFIX:
            return None
        prefix_ids = torch.tensor([ids[0][:length]], device=self.device)  # (1, P)
        with layers.eager(self.layers_compiled):
            cache = self.backbone.base_model(input_ids=prefix_ids, use_cache=True).cache
        if not hasattr(cache, "batch_repeat_interleave"):  # a cache type that cannot be copied per row: plain path
            return None
        return SharedPrefix(length, cache)

    def _tokenize_texts(
        self, texts: list[str] | str, instruction: str | None, max_length: int | None
    ) -> list[list[int]]:
        """Token ids of each `instruction + text`, cut to leave room for the special tokens (not padded)."""
        texts = join_instruction(check_texts(texts), instruction)
        max_length = self.config.model.max_length if max_length is None else max_length
        if not isinstance(max_length, int) or isinstance(max_length, bool):
            raise InputError(f"max_length must be an integer number of tokens, got {max_length!r}.")
        if max_length < self.num_special_tokens + 1:
            raise InputError(
                f"max_length={max_length!r} cannot hold one text token plus the {self.num_special_tokens} special "
                f"tokens; use max_length >= {self.num_special_tokens + 1}."
            )
        return tokenize_queries(self.tokenizer, texts, max_length, self.num_special_tokens)

    def extra_repr(self) -> str:
        return (
            f"backbone={self.config.model.backbone!r}, N={self.num_special_tokens}, K={self.num_compression_tokens}, "
            f"H={self.hidden_size}, D={self.embedding_dim}, dtype={DTYPE_NAMES.get(self.dtype, self.dtype)}"
        )


@dataclasses.dataclass(frozen=True)
class SharedPrefix:
    """The keys and values of token ids that every text of a call starts with (an instruction), for a batch of one."""

    length: int
    cache: object  # the backbone's cache object after reading the prefix

    def cache_for(self, batch_size: int):
        """A fresh copy of the cache for `batch_size` rows (a forward pass appends to the cache it is given)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(batch_size)
        return cache


def _positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only: 0 for left pads, then 0, 1, 2, ... (B, L)."""
    return (attention_mask.cumsum(1) - 1).clamp(min=0)
