"""Reference-style baselines: the official LLM2Vec-Gen code's algorithms, re-written for timing comparisons only.

Written from the paper's description of the official code (its method and training sections), not from the official
source, so that `run.py` can measure genvec and the official approach in the same run on the same random backbone:

- `ReferenceTrainStep`: a separate encoder copy (`AutoModel`) whose N new vocabulary rows train through peft's
  TrainableTokens; a second full copy of the LLM as decoder (the backbone given); the teacher run on every step
  (an LLM2Vec-style teacher: a third copy of the architecture, mean pooling, no gradient), so three models are held
  in memory, as in the official runs; the decoder input built by a Python loop over the batch; full-vocabulary
  logits at every position with the transformers loss; one dtype everywhere (pure bf16 as the official code when
  the preset is bf16); HF gradient checkpointing with the models in train mode, as the official Trainer runs them.

These are baselines, not part of genvec; they need `peft` (in genvec's `dev` extra).
"""

import copy

import torch
from torch import nn


class ReferenceTrainStep:
    """One optimizer step of the reference algorithm on a random backbone (see module docstring)."""

    def __init__(self, decoder: nn.Module, encoder: nn.Module, teacher: nn.Module, tokenizer, num_special_tokens: int,
                 activation_checkpointing: bool) -> None:
        """`decoder` is a causal LM, `encoder` and `teacher` base models of the same architecture: three models held
        at once, as the official code loads them (encoder copy, decoder copy, LLM2Vec teacher of the same size)."""
        from peft import TrainableTokensConfig, get_peft_model

        self.tokenizer = copy.deepcopy(tokenizer)
        self.tokenizer.add_special_tokens(
            {"additional_special_tokens": [f"<question{i + 1}>" for i in range(num_special_tokens)]}
        )
        self.special_text = "".join(f"<question{i + 1}>" for i in range(num_special_tokens))
        self.num_special = num_special_tokens
        dtype, device = decoder.dtype, decoder.device
        # The official code resizes to len(tokenizer), which for a real Qwen or Llama tokenizer is about the model's
        # vocabulary; the benchmark's small tokenizer would shrink the LM head, so the vocabulary is kept.
        vocabulary = max(len(self.tokenizer), decoder.config.get_text_config().vocab_size)
        decoder.resize_token_embeddings(vocabulary)
        encoder.resize_token_embeddings(vocabulary)
        ids = self.tokenizer.convert_tokens_to_ids([f"<question{i + 1}>" for i in range(num_special_tokens)])
        encoder.requires_grad_(False)
        trainable_tokens = TrainableTokensConfig(token_indices=ids, target_modules=["embed_tokens"])
        self.encoder = get_peft_model(encoder, trainable_tokens)
        self.decoder = decoder.requires_grad_(False)
        self.teacher = teacher.requires_grad_(False)
        hidden = decoder.config.hidden_size
        self.reconstruction = nn.Linear(hidden, hidden, dtype=dtype, device=device)
        # The LLM2Vec teacher of the same backbone has the backbone's hidden size, so D = H here.
        self.alignment = nn.Linear(hidden, hidden, dtype=dtype, device=device)
        if activation_checkpointing:
            for model in (self.encoder, self.decoder):
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.encoder.train()
        self.decoder.train()
        trainable = [p for p in self.encoder.parameters() if p.requires_grad]
        trainable += [*self.reconstruction.parameters(), *self.alignment.parameters()]
        self.optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        self.device = device

    def tokenize(self, queries: list[str], responses: list[str]):
        """The batch as the official collator builds it: left-padded queries followed by the special tokens, and the
        responses with the end-of-sequence token. Outside the timed step, as genvec's `tokenize_batch` is."""
        tok = self.tokenizer
        tok.padding_side = "left"
        encoded = tok([q.strip() + self.special_text for q in queries], return_tensors="pt", padding=True,
                      truncation=True, max_length=512).to(self.device)
        answers = tok([r.strip() + tok.eos_token for r in responses], return_tensors="pt", padding=True,
                      truncation=True, max_length=512).to(self.device)
        return encoded, answers

    def __call__(self, encoded, answers) -> float:
        """One optimizer step on a batch from `tokenize`; returns the loss."""
        self.optimizer.zero_grad(set_to_none=True)
        loss = self._loss(encoded, answers)
        loss.backward()
        self.optimizer.step()
        return float(loss)

    def _loss(self, encoded, answers) -> torch.Tensor:
        hidden = self.encoder(**encoded).last_hidden_state[:, -self.num_special:]  # (B, K, H)
        prompt = self.reconstruction(hidden)
        embedding = self.alignment(prompt).mean(1)
        with torch.no_grad():  # the teacher embeds the response on every step
            states = self.teacher(**answers).last_hidden_state
            mask = answers.attention_mask.unsqueeze(-1).to(states.dtype)
            target = (states * mask).sum(1) / mask.sum(1)
        align = nn.functional.mse_loss(embedding, target)
        inputs, attention, labels = self._decoder_inputs(prompt, answers)
        reconstruction = self.decoder(inputs_embeds=inputs, attention_mask=attention, labels=labels).loss
        return reconstruction + align

    def _decoder_inputs(self, prompt: torch.Tensor, answers):
        """Per sample: left pads, then the K prompt vectors, then the answer embeddings (a loop, as the reference)."""
        embed = self.decoder.get_input_embeddings()
        rows, masks, labels = [], [], []
        for index in range(prompt.shape[0]):
            keep = answers.attention_mask[index].bool()
            pads = int((~keep).sum())
            tokens = embed(answers.input_ids[index][keep])
            pad_embeddings = embed(answers.input_ids[index][:pads])
            rows.append(torch.cat([pad_embeddings, prompt[index], tokens]))
            masks.append(torch.cat([torch.zeros(pads), torch.ones(prompt.shape[1] + int(keep.sum()))]))
            ignored = torch.full((pads + prompt.shape[1],), -100)
            labels.append(torch.cat([ignored, answers.input_ids[index][keep].cpu()]))
        device = prompt.device
        return torch.stack(rows), torch.stack(masks).long().to(device), torch.stack(labels).to(device)
