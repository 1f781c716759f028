"""The model contract between the runner and a TT model (host or tt-metal).

It mirrors the generator interface tt-metal's ``models/ttt_compat/tt/generator_vllm.py`` classes
(formerly ``models/tt_transformers``) offer to vLLM, so the same runner drives our host models and
Tenstorrent's ttnn models. The runner only ever talks to a model through this contract and the model's
declared ``model_capabilities``.

Conventions (all tensors on the host, in torch):

``allocate_kv_cache(kv_cache_shape, dtype, num_layers)``
    ``kv_cache_shape = (num_blocks, num_kv_heads, block_size, head_dim)``; returns one ``[K, V]`` pair per
    layer. Block 0 is vLLM's null block: the KV cache manager's ``BlockPool`` takes it off the free list
    at start-up and never gives it to a request. That is why the zero padding of every page table below
    is safe: a padded entry names a block no request owns, so whatever a model reads from it or writes
    to it for a padded position touches no request's tokens.

``prefill_forward(tokens, page_table, kv_cache, prompt_lens, start_pos=None, ...)``
    ``tokens``: (B, S) int64, row ``i`` holds request ``i``'s tokens from position 0 up to
    ``prompt_lens[i]`` (zero padded after). ``start_pos[i]`` tokens of that row are already in the KV
    cache (cached prefix or earlier prefill chunk): the model computes positions
    ``start_pos[i] .. prompt_lens[i] - 1`` only, writes their K/V, and returns the logits of position
    ``prompt_lens[i] - 1`` as (B, 1, vocab) float32, or (B,) sampled token ids when ``sampling_params``
    is given (see below). ``page_table``: (B, max_blocks) int32, zero padded,
    covering at least ``ceil(prompt_lens[i] / block_size)`` blocks of each row. All B requests are
    one call: a model must not assume B == 1. With TT option ``data_parallel`` > 1 the runner adds
    ``empty_slots`` (tt-metal's argument): the decode slot row ``i`` will occupy, which picks the
    data-parallel submesh (and KV cache) tt-metal prefills it on.

``decode_forward(tokens, start_pos, page_table, kv_cache, ...)``
    ``tokens``: (max_batch, 1) int64; ``start_pos``: (max_batch,) int32 position of the token fed
    (= number of tokens already cached), ``-1`` for an empty slot (the model must not write K/V for it
    and its output row is meaningless); ``page_table``: (max_batch, max_blocks) int32, zero padded.
    Shapes are padded to constants so a device trace can be replayed. A request keeps its slot from
    its first step until it finishes or is preempted (``worker/decode_slots.py``), so empty slots may
    sit between busy ones. Returns (max_batch, 1, vocab)
    float32 logits, or (max_batch,) sampled token ids when ``sampling_params`` is given and the model
    samples on device.

``read_decode_output(out, async_read=False)`` and ``process_decode_output_host(out, is_tokens=False)``
    (capability ``supports_async_decode``, tt-metal's current signatures): the runner calls
    ``decode_forward(..., read_from_device=False)`` in vLLM's ``execute_model``, which returns with
    the output still on the device, and at once ``read_decode_output(out, async_read=True)``, which
    queues the copy to the host and returns ``(host_output, events)``. The step is finished later
    (worker/step_output.py): the runner's device waits for the events (``wait_for_events``), then
    ``process_decode_output_host(host_output, is_tokens=...)`` gives what a reading ``decode_forward``
    would have returned (a ``(result, extra)`` tuple is accepted too; ``extra`` is ignored). Under
    vLLM's async scheduling the engine core processes the previous step's output and schedules the
    next step in between, while the device decodes. tt-metal releases whose ``read_decode_output``
    takes ``(tt_out, unpadded_batch, is_tokens)`` instead decode synchronously
    (``optional_hooks.async_read_problem``).

``get_kv_cache_spec(vllm_config)`` (optional classmethod), ``allocate_kv_cache_per_layer(specs)`` and
``page_tables_per_layer`` (hybrid attention, ``worker/kv_cache_layout.py``)
    A class with the classmethod gives vLLM its KV cache spec (``{"model.layers.<i>.self_attn": spec}``);
    without it, every layer is one ``FullAttentionSpec``. A model with ``allocate_kv_cache_per_layer`` is
    allocated through it: ``specs`` is ``[(shape, dtype, tensor_idx)]`` in layer order, layers with one
    ``tensor_idx`` share one buffer; it returns one ``[K, V]`` per layer. When vLLM plans several KV cache
    groups (a spec mixing attention types), ``prefill_forward`` and ``decode_forward`` also get
    ``page_tables_per_layer``: one (max_batch, blocks) int32 table per layer, its group's block ids for
    the call's rows (prefill rows in order, decode rows at their slots), zero padded; ``page_table`` is
    group 0's.

Images (class attribute ``supports_multimodal``, :data:`TAKES_IMAGES`; optional ``mm_limits_per_prompt``)
    ``prefill_forward`` also gets vLLM's processed image features the way Tenstorrent's runner passes
    them to tt-metal's generators (vllm-tt-plugin ``_gather_multi_modal_inputs``): one keyword per field
    of vLLM's image items (``pixel_values``; ``image_grid_thw`` for Qwen2.5-VL), each a list with one
    entry per prefill row: ``None`` for a row without images, else one tensor per image of that row, in
    prompt order. An image is never split between two prefill calls. M-RoPE models (Qwen2.5-VL) return
    ``(logits, rope_deltas)`` from prefill (one delta per row) and take ``rope_deltas_all_users`` (one
    per decode slot) in ``decode_forward``.

``sampling_params`` (capability ``supports_sample_on_device``)
    The runner passes it only for steps whose every request needs no more than greedy / temperature /
    top-k / top-p / seed (``worker/sampling_mode.py``); host models take a
    :class:`~tt_vllm_plugin.models.device_sampling.DeviceSamplingParams` with one entry per input row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import torch

# Keys of ``model_capabilities``; an absent key means "unsupported" (Tenstorrent's convention).
SUPPORTS_PREFIX_CACHING = "supports_prefix_caching"
SUPPORTS_CHUNKED_PREFILL = "supports_chunked_prefill"
SUPPORTS_ASYNC_DECODE = "supports_async_decode"
SUPPORTS_SAMPLE_ON_DEVICE = "supports_sample_on_device"
# Ours, not Tenstorrent's: ``prefill_forward(..., return_all_logits=True)`` returns the logits of every
# computed position, flat (sum of new tokens, vocab), which vLLM's prompt_logprobs need.
SUPPORTS_PROMPT_LOGPROBS = "supports_prompt_logprobs"
# Ours: ``prefill_forward`` computes a row of one token after its cached ones exactly as
# ``decode_forward`` would (position, KV write, logits). A step with prompt tokens then folds its decode
# rows into the one prefill call: one forward over all the step's tokens, as vLLM's own runners do,
# instead of a prefill and a decode one after the other.
PREFILL_TAKES_DECODE_ROWS = "prefill_takes_decode_rows"

KVCache = list[list[torch.Tensor]]  # per layer: [K, V]


@runtime_checkable
class TTModel(Protocol):
    """What the runner needs from a model; tt-metal's generator classes satisfy it as they are."""

    model_capabilities: dict[str, bool]

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config: Any,
        mesh_device: Any,
        max_batch_size: int,
        max_seq_len: int,
        n_layers: int | None = None,
        tt_data_parallel: int = 1,
        optimizations: str = "performance",
    ) -> TTModel: ...

    def allocate_kv_cache(
        self, kv_cache_shape: tuple[int, int, int, int], dtype: torch.dtype, num_layers: int
    ) -> KVCache: ...

    def prefill_forward(
        self,
        tokens: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        prompt_lens: torch.Tensor | Sequence[int],
        start_pos: torch.Tensor | Sequence[int] | None = None,
        enable_trace: bool = False,
        sampling_params: Any = None,
    ) -> torch.Tensor: ...

    def decode_forward(
        self,
        tokens: torch.Tensor,
        start_pos: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        enable_trace: bool = False,
        read_from_device: bool = True,
        sampling_params: Any = None,
        reset_batch: bool = False,
    ) -> torch.Tensor: ...


# The class attribute a model that takes images sets (vLLM's SupportsMultiModal marker).
TAKES_IMAGES = "supports_multimodal"
# The optional class attribute capping the images per prompt: {"image": n}.
MM_LIMITS_PER_PROMPT = "mm_limits_per_prompt"


def takes_images(model_cls: Any) -> bool:
    """Whether the TT class (or model) declares it takes images."""
    return getattr(model_cls, TAKES_IMAGES, False) is True


def capability(model: Any, name: str) -> bool:
    """Whether ``model`` declares capability ``name`` (absent key or no dict: unsupported)."""
    caps = getattr(model, "model_capabilities", None) or {}
    return bool(caps.get(name, False))
