"""The TT model contract (``contract.py``) for every host family: loading onto the host device, the KV
cache, ``prefill_forward`` / ``decode_forward`` over the paged cache, sampling on the "device" when asked
(``device_sampling.py``) and the async decode read.

A family's model is ``class Host<Family>Model(HostContractModel, <Family>Decoder)``: the decoder is the
family's math, built as ``Decoder(config, weights, torch_device, dtype, max_seq_len)``, and provides
``forward(ids, positions, kv_cache, attention)`` (hidden states of flat tokens), ``logits(hidden)``
(float32), ``vocab_size``, ``num_kv_heads``, ``head_dim``, ``device``, ``max_seq_len`` and ``attention``
(``attention.py``); the family's model class says which configs it takes (:meth:`check_config`) and how
its checkpoint is read (:meth:`load_weights`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tt_vllm_plugin.device.host import HostDevice, zeroed_tensor
from tt_vllm_plugin.models.contract import (
    PREFILL_TAKES_DECODE_ROWS,
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_PROMPT_LOGPROBS,
    SUPPORTS_SAMPLE_ON_DEVICE,
    KVCache,
)
from tt_vllm_plugin.models.device_sampling import sample_rows
from tt_vllm_plugin.models.host.attention import HostAttention
from tt_vllm_plugin.models.host.bidirectional import Spans
from tt_vllm_plugin.models.host.paged_attention import PassContext


def _as_int_list(values: torch.Tensor | Sequence[int]) -> list[int]:
    return [int(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]


@dataclass(frozen=True)
class PrefillImages:
    """What a prefill's images change: the embeddings of its flat new tokens (image features merged in)
    and, per row, the image blocks attended bidirectionally (``bidirectional.py``)."""

    embeds: torch.Tensor
    bidirectional: list[Spans]


class HostContractModel:
    """The contract hooks of a host model, on its family's decoder (see the module docstring)."""

    model_capabilities: dict[str, bool] = {
        SUPPORTS_PREFIX_CACHING: True,
        SUPPORTS_CHUNKED_PREFILL: True,
        SUPPORTS_PROMPT_LOGPROBS: True,
        # sampling_params=DeviceSamplingParams: greedy / temperature / top-k / top-p with per-row seeds.
        SUPPORTS_SAMPLE_ON_DEVICE: True,
        # decode_forward(read_from_device=False) + read_decode_output(async_read=True): on CUDA the
        # kernels and the copy are queued; on the CPU they are done when decode_forward returns.
        SUPPORTS_ASYNC_DECODE: True,
        # A decode row is a one-token prefill over its cached prefix (the chunked-prefill path).
        PREFILL_TAKES_DECODE_ROWS: True,
    }

    # What the family's decoder provides (besides forward, logits and vocab_size; see the module docstring).
    device: torch.device
    max_seq_len: int
    num_kv_heads: int
    head_dim: int
    attention: HostAttention

    # ---- construction

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        """Refuse configs whose math this implementation does not do, instead of computing wrongly."""

    @classmethod
    def load_weights(cls, config: Any, num_layers: int, device: HostDevice) -> Any:
        """The first ``num_layers`` layers' weights (and the rest of the model) from the checkpoint."""
        raise NotImplementedError

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
    ) -> HostContractModel:
        """Load the checkpoint ``hf_config`` came from onto the host device.

        ``mesh_device`` is a :class:`~tt_vllm_plugin.device.host.HostDevice`. ``max_batch_size``,
        ``tt_data_parallel`` and ``optimizations`` are accepted for the contract; the host computes all
        rows at once, so they change nothing observable.
        """
        num_layers = cls.layers_to_load(hf_config, mesh_device, max_seq_len, n_layers)
        weights = cls.load_weights(hf_config, num_layers, mesh_device)
        return cls(hf_config, weights, mesh_device.torch_device, mesh_device.dtype, max_seq_len)

    @classmethod
    def layers_to_load(
        cls, decoder_config: Any, mesh_device: Any, max_seq_len: int, n_layers: int | None
    ) -> int:
        """The decoder layers to load (the checkpoint's, or ``n_layers`` if fewer), once the device is
        the host's and the class can compute ``decoder_config`` (``check_config``)."""
        if not isinstance(mesh_device, HostDevice):
            raise TypeError(f"{cls.__name__} runs on a HostDevice, got {type(mesh_device).__name__}.")
        cls.check_config(decoder_config, max_seq_len)
        num_layers = int(decoder_config.num_hidden_layers)
        return num_layers if n_layers is None else min(num_layers, int(n_layers))

    # ---- contract

    def allocate_kv_cache(
        self, kv_cache_shape: tuple[int, int, int, int], dtype: torch.dtype, num_layers: int
    ) -> KVCache:
        """Zeroed [K, V] per layer: zeros (not empty) so masked-out slots never hold NaN, which
        would leak through ``0 * NaN`` in the attention-weighted sum (zero pages on the CPU, written
        only when a block is first used: ``zeroed_tensor``)."""
        _, kv_heads, _, head_dim = kv_cache_shape
        if (kv_heads, head_dim) != (self.num_kv_heads, self.head_dim):
            raise ValueError(
                f"KV cache shape {tuple(kv_cache_shape)} does not fit the model "
                f"(num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim})."
            )
        # The kernels take only some block sizes; whatever this cache gets, it keeps (host_attention.py).
        self.attention = self.attention.for_block_size(kv_cache_shape[2])
        return [
            [zeroed_tensor(kv_cache_shape, dtype, self.device) for _ in range(2)] for _ in range(num_layers)
        ]

    def prefill_forward(
        self,
        tokens: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        prompt_lens: torch.Tensor | Sequence[int],
        start_pos: torch.Tensor | Sequence[int] | None = None,
        enable_trace: bool = False,
        sampling_params: Any = None,
        return_all_logits: bool = False,
        empty_slots: Sequence[int] | None = None,
        **image_features: Any,
    ) -> torch.Tensor:
        """Compute positions ``start_pos[i] .. prompt_lens[i] - 1`` of every row in one pass and
        return the logits of each row's last position, (B, 1, vocab) float32. With
        ``return_all_logits`` (capability ``supports_prompt_logprobs``): the logits of every computed
        position instead, flat (sum of new tokens, vocab), row after row.

        The rows' new tokens are concatenated (no padding), so linear layers run on real tokens only.
        ``empty_slots`` (the decode slots the rows will use, for tt-metal's data parallelism) changes
        nothing here: the host has one KV cache for every slot. ``image_features``: per-row image
        features (``contract.py``, "Images"), for models that take images (:meth:`prefill_images`).
        """
        if sampling_params is not None and return_all_logits:
            raise ValueError("prefill_forward: sampling_params and return_all_logits exclude each other.")
        lens = _as_int_list(prompt_lens)
        starts = [0] * len(lens) if start_pos is None else _as_int_list(start_pos)
        spans = list(zip(starts, lens, strict=True))
        for row, (start, end) in enumerate(spans):
            if not 0 <= start < end:
                raise ValueError(f"prefill row {row}: need 0 <= start_pos < prompt_len, got {start}, {end}.")
        self._check_positions(max(lens) - 1)
        new_lens = [end - start for start, end in spans]

        with torch.inference_mode():
            tokens = tokens.to(self.device)
            page_table = page_table.to(self.device)
            ids = torch.cat([tokens[row, start:end] for row, (start, end) in enumerate(spans)])
            positions = torch.cat([torch.arange(start, end, device=self.device) for start, end in spans])
            rows = torch.repeat_interleave(
                torch.arange(len(lens), device=self.device), torch.tensor(new_lens, device=self.device)
            )
            images = self.prefill_images(tokens, spans, image_features)
            context = PassContext.build(
                page_table, rows, positions, new_lens, lens, kv_cache, decode=False,
                bidirectional=None if images is None else images.bidirectional,
            )  # fmt: skip
            attention = self.attention.for_pass(context)
            if images is None:
                hidden = self.forward(ids, positions, kv_cache, attention)
            else:
                hidden = self.forward(ids, positions, kv_cache, attention, embeds=images.embeds)
            if return_all_logits:
                return self.logits(hidden)
            last = torch.tensor(new_lens, device=self.device).cumsum(0) - 1
            if sampling_params is not None:  # sampled on the device: (B,) token ids
                return sample_rows(self.logits(hidden[last]), sampling_params, len(lens))
            return self.logits(hidden[last])[:, None, :]

    def prefill_images(
        self, tokens: torch.Tensor, spans: list[tuple[int, int]], features: dict[str, Any]
    ) -> PrefillImages | None:
        """The images of a prefill (rows' ``spans``: [start, end) of their new tokens): None for a
        model without images, which refuses any it is given."""
        if any(rows is not None and any(row for row in rows) for rows in features.values()):
            raise ValueError(
                f"{type(self).__name__} takes no images, but the prefill has {sorted(features)}."
            )
        return None

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
    ) -> torch.Tensor:
        """One token per active slot (``start_pos >= 0``); returns (max_batch, 1, vocab) float32.

        Empty slots are skipped entirely (no compute, no K/V write) and get zero logits. With
        ``sampling_params`` (a :class:`DeviceSamplingParams`, one row per slot): (max_batch,) int64 token
        ids instead, 0 in empty slots.
        """
        with torch.inference_mode():
            tokens = tokens.to(self.device)
            start_pos = torch.as_tensor(start_pos, device=self.device)
            page_table = page_table.to(self.device)
            out = torch.zeros(
                (tokens.shape[0], 1, self.vocab_size),
                dtype=torch.float32,
                device=self.device,
            )
            if sampling_params is not None:
                out = torch.zeros(tokens.shape[0], dtype=torch.int64, device=self.device)
            active = torch.nonzero(start_pos >= 0).squeeze(1)
            if active.numel() == 0:
                return out
            positions = start_pos[active].long()
            self._check_positions(int(positions.max().item()))
            seq_lens = (positions + 1).tolist()
            context = PassContext.build(
                page_table[active],
                torch.arange(active.numel(), device=self.device),
                positions,
                [1] * len(seq_lens),
                seq_lens,
                kv_cache,
                decode=True,
            )
            hidden = self.forward(tokens[active, 0], positions, kv_cache, self.attention.for_pass(context))
            if sampling_params is not None:
                out[active] = sample_rows(self.logits(hidden), sampling_params, tokens.shape[0], active)
                return out
            out[active, 0] = self.logits(hidden)
            return out

    # ---- async decode: the output of decode_forward(read_from_device=False), read later

    def read_decode_output(self, tt_out: torch.Tensor, async_read: bool = False) -> Any:
        """The decode output on the host; with ``async_read``, ``(tensor, events)`` as tt-metal's
        generators return: the copy is queued and the tensor is valid once the events are done (a
        CUDA event recorded after the copy; none on the CPU, where the tensor is ready)."""
        if not async_read:
            return tt_out.to("cpu")
        host = tt_out.to("cpu", non_blocking=True)
        if tt_out.device.type != "cuda":
            return host, []
        copied = torch.cuda.Event()
        copied.record()
        return host, [copied]

    def process_decode_output_host(self, tt_out: torch.Tensor, is_tokens: bool = False) -> torch.Tensor:
        """Host tensor -> what a reading ``decode_forward`` returns (already that shape here)."""
        return tt_out

    def _check_positions(self, max_position: int) -> None:
        if max_position >= self.max_seq_len:
            raise ValueError(
                f"Position {max_position} is beyond max_seq_len={self.max_seq_len} the model was built for."
            )
