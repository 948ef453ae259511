"""The backbone's decoder layers and the two switches that act on them: activation checkpointing and compilation.

Both are speed/memory trade-offs that leave every number unchanged (tested): checkpointing recomputes each layer
in the backward pass instead of keeping its activations; compilation runs each layer through `torch.compile`.
What this file does not do: decide when to use them (`train.activation_checkpointing`, `train.compile`).
"""

import contextlib
import functools
import logging
from collections.abc import Iterator

import torch
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

logger = logging.getLogger(__name__)


def decoder_layers(backbone: nn.Module) -> list[nn.Module]:
    """The backbone's decoder layers (the modules transformers can checkpoint), in order."""
    return [module for module in backbone.modules() if isinstance(module, GradientCheckpointingLayer)]


def compile_layers(backbone: nn.Module) -> bool:
    """Compile each decoder layer with `torch.compile`, in place; False when the backbone has no layers genvec finds.

    Every layer runs the same code, so one compiled graph (shapes dynamic) serves all layers and all batches. It
    serves the passes without a KV cache (reconstruction, encode); passes with a cache run under `eager` (below),
    since the cache's per-layer state would make every layer a graph of its own.
    """
    layers = decoder_layers(backbone)
    if not layers:
        logger.warning("compile_layers: %s has no decoder layers genvec can find; nothing was compiled.",
                       type(backbone).__name__)
        return False
    for layer in layers:
        # An instance attribute from the start: the checkpointing switch would otherwise change what the compiled
        # graph's guards see after the first step, and compile it a second time.
        layer.gradient_checkpointing = layer.gradient_checkpointing
        layer.compile(dynamic=True)
    return True


def eager(is_compiled: bool) -> contextlib.AbstractContextManager:
    """Run compiled layers eagerly inside (the passes with a KV cache, see `compile_layers`)."""
    return torch.compiler.set_stance("force_eager") if is_compiled else contextlib.nullcontext()


@contextlib.contextmanager
def checkpointing(backbone: nn.Module, enabled: bool) -> Iterator[None]:
    """Recompute each decoder layer in the backward pass instead of storing its activations, if `enabled`.

    transformers checkpoints a layer only when that layer is in training mode, and the backbone stays in eval mode.
    So the flag is set on the layer modules alone (not their children, so no dropout turns on), and only for the
    duration of the block: the caller wraps the reconstruction forward, which uses no KV cache.
    """
    layers = decoder_layers(backbone)
    if not enabled or not torch.is_grad_enabled() or not layers:
        yield
        return
    checkpoint = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    saved = [(layer.gradient_checkpointing, layer.training) for layer in layers]
    for layer in layers:
        layer.gradient_checkpointing, layer.training = True, True
        layer._gradient_checkpointing_func = checkpoint
    try:
        # A compiled layer's checkpoint is traced as one region that may not mutate outer Python state, but the
        # `kernels` wrapper of transformers' attention modules (rotary kernels) sets and resets a module-level
        # routing variable in every forward: without this the compiled layer breaks its graph there. Nothing is
        # lost by not replaying that set-and-reset in the backward's recomputation. (transformers has imported
        # torch._dynamo already; the patch costs microseconds and only matters to compiled layers.)
        with torch._dynamo.config.patch(skip_fwd_side_effects_in_bwd_under_checkpoint=True):
            yield
    finally:
        for layer, (was_enabled, was_training) in zip(layers, saved):
            layer.gradient_checkpointing, layer.training = was_enabled, was_training
