"""`SpecialTokens`: the N trainable input vectors appended to every input (paper section 3.1).

The tokens are not in the tokenizer or the vocabulary: they are rows of a small fp32 parameter, concatenated after
the text's token embeddings. The first N-K are thought tokens (extra computation), the last K compression tokens
(their final states become the embedding and the decoder prompt). This file does not run the backbone.

Shapes: B batch, N special tokens, H hidden size.
"""

import torch
from torch import nn

# Token ids sampled to estimate the statistics of the vocabulary's input embeddings; enough for a stable mean and
# standard deviation, few enough to stay cheap for 150k-token vocabularies.
EMBEDDING_SAMPLE_SIZE = 4096


class SpecialTokens(nn.Module):
    """N trainable input vectors of size H, stored in fp32 and cast to the backbone dtype where used."""

    def __init__(self, num_special_tokens: int, hidden_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_special_tokens, hidden_size))  # (N, H)

    @torch.no_grad()
    def reset_from_embeddings(self, input_embeddings: nn.Module, vocab_size: int, generator: torch.Generator) -> None:
        """Draw each row from a Gaussian fitted to the vocabulary's input embeddings (mean and per-dimension std).

        The rows then look like ordinary tokens to the frozen LLM, and differ from each other so the positions can
        specialise. Sampling through the embedding module (not its weight) keeps any scaling the module applies.
        """
        device = self.weight.device
        count = min(vocab_size, EMBEDDING_SAMPLE_SIZE)
        token_ids = torch.randperm(vocab_size, generator=generator)[:count]
        embedding_device = next(input_embeddings.parameters()).device
        sample = input_embeddings(token_ids.to(embedding_device)).float().to(device)  # (count, H)
        noise = torch.randn(self.weight.shape, generator=generator).to(device)  # (N, H)
        self.weight.copy_(sample.mean(0) + noise * sample.std(0))

    def forward(self, batch_size: int, dtype: torch.dtype) -> torch.Tensor:
        """The special vectors for a batch, (B, N, H), in the backbone's dtype (gradients flow through the cast)."""
        return self.weight.to(dtype).unsqueeze(0).expand(batch_size, -1, -1)
