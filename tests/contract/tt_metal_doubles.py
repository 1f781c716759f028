"""TEST DOUBLES of tt-metal's vLLM generator classes, in the shapes of two tt-metal releases.

Each double has the real release's method names, signatures, shim structure (generator_vllm.py's classes
hand ``prefill_forward``/``decode_forward`` to a ``Generator`` method through ``(*args, **kwargs)``) and
return types (tuples where tt-metal returns tuples), read from tenstorrent/tt-metal at these commits:

- **current**: ``models/tt_transformers/tt/generator.py`` @ 421a32c198c9ce77908f704f673da5d0a0ffa3f8
  (``Generator``: ``prefill_forward_text`` returns ``(tokens, log_probs)`` when it samples and seeds the
  sampling state of slot ``empty_slots[i] % 32``; ``decode_forward``; ``read_decode_output(tt_out,
  async_read)``; ``process_decode_output_host`` always returns ``(values, log_probs)``;
  ``warmup_model_prefill(kv_cache, enable_trace, can_sample_on_device, non_greedy_decoding_on_device)``),
  ``models/common/warmup/warmup_utils.py`` @ 9f66942977ee00fda5b43291527cf5d8ee6d7a1d
  (``warmup_model_decode``), ``models/tt_transformers/tt/generator_vllm.py`` @
  2a43729eb2eb37d76004e978da0af31e33829840 (``LlamaForCausalLM``: ``decode_forward`` ->
  ``super().decode_forward``, ``initialize_vllm_model(..., n_layers=None, tt_data_parallel=1,
  optimizations="performance")``; capabilities as in the newest stored generator_vllm.py, which adds
  ``supports_sample_on_device``);
- **older**: ``generator.py`` @ d9d95fa357fd2eb79e72ee3fa7daf1214bd9f233 (``prefill_forward_text(tokens,
  page_table, kv_cache, prompt_lens)``, ``decode_forward_text`` without ``reset_batch``, a blocking
  ``read_decode_output(tt_out, unpadded_batch, is_tokens)``) and ``generator_vllm.py`` @
  4d4a062913c5f5273ce33ce93fc7f2bb6543166c (``initialize_vllm_model`` without ``optimizations``, no
  ``model_capabilities``, no warm-up or budget hooks);
- **ttt_compat**: the layout after tt-metal PR #55977 (``models/tt_transformers`` renamed
  ``models/ttt_compat``, no shim): ``models/ttt_compat/tt/generator.py`` @
  1a6b64e03908f3ef0493692a2a6017f74ae06796 (``prefill_forward_text(self, *args, **kwargs)`` is a thin wrapper
  around ``_prefill_forward_text_impl``, which holds the signature; ``decode_forward`` gains ``slot_remap``,
  ``defer_device_sampling``, ``skip_trace_precompile`` and ``**kwargs``; ``warmup_model_prefill(kv_cache,
  enable_trace, can_sample_on_device, greedy_only=False)``) and ``models/ttt_compat/tt/generator_vllm.py`` @
  3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf (``LlamaForCausalLM``/``QwenForCausalLM`` with
  ``supports_chunked_prefill`` and ``max_device_top_k`` 32);
- **newest warm-up**: the newest stored ``warmup_utils.py`` (the index records no commit for it):
  ``warmup_model_decode(..., can_sample_on_device, ..., greedy_only=False, ...)``, and a prefill warm-up
  taking what Tenstorrent's runner passes (vllm-tt-plugin e3fc849: ``kv_cache, enable_trace,
  can_sample_on_device``).

They record what they are given and compute nothing: the values they return only say which row or slot
they came from (logits row ``i`` filled with ``i``, token ``1000 + slot``), enough to check the adapter's
unpacking and slot handling. What tt-metal computes is checked on hardware only.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch

VOCAB = 16
TOKEN_BASE = 1000  # a sampled token says which slot it came from: TOKEN_BASE + slot
SAMPLING_SLOTS = 32  # tt-metal's sampler works on 32 slots per submesh


@dataclass
class OnDevice:
    """Stands for a ttnn device tensor (the runner must never treat it as torch)."""

    value: torch.Tensor

    def cpu(self, blocking: bool = True) -> OnHost:
        return OnHost(self.value)


@dataclass
class OnHost:
    """Stands for a ttnn host tensor (process_decode_output_host turns it into torch)."""

    value: torch.Tensor


def allocate_vllm_kv_cache(kv_cache_shape, dtype, num_layers, dp_model, tt_cache_path):
    """generator_vllm.py's allocator: the given shape on every submesh, ``[submesh][layer][k, v]``."""
    return [
        [[torch.zeros(kv_cache_shape, dtype=dtype) for _ in "kv"] for _ in range(num_layers)]
        for _ in dp_model
    ]


def _logits(batch: int) -> torch.Tensor:
    return torch.arange(batch, dtype=torch.float32).view(batch, 1, 1).expand(batch, 1, VOCAB).clone()


def _written_slots(start_pos) -> list[int]:
    """The slots whose KV cache a decode writes: paged_update_cache skips every user whose position is
    -1, wherever it sits in the batch (``if (raw_update_idx == (uint32_t)-1) skip_update = true``, per
    user index; ttnn/cpp/ttnn/operations/experimental/paged_cache/device/kernels/dataflow/
    writer_update_cache_interleaved_start_id.cpp @ 06bd3735f7df2921d8195d732c14eba433e4a32d)."""
    return [slot for slot, pos in enumerate(torch.as_tensor(start_pos).tolist()) if pos != -1]


def _build(cls, mesh_device, max_batch_size: int, tt_data_parallel: int):
    """What both releases' ``initialize_vllm_model`` build: one model (and its args) per submesh."""
    args = [SimpleNamespace(max_batch_size=max_batch_size // tt_data_parallel, vocab_size=VOCAB)]
    return cls([f"submesh {i}" for i in range(tt_data_parallel)], args * tt_data_parallel, mesh_device)


class _VllmKVCache:
    """``allocate_kv_cache`` as every generator_vllm.py class has it (same in both releases)."""

    @property
    def cache_path(self):
        return "cache"

    def allocate_kv_cache(self, *args, **kwargs):
        return allocate_vllm_kv_cache(*args, **kwargs, dp_model=self.model, tt_cache_path=self.cache_path)


class _Recording:
    def _record(self, name: str, **arguments: Any) -> None:
        self.calls.append((name, arguments))


# ------------------------------------------------------------------------- current: generator.py @ 421a32c1


class CurrentGenerator(_Recording):
    """``models.tt_transformers.tt.generator.Generator`` @ 421a32c1 (the vLLM-facing part)."""

    model_capabilities = {"supports_prefix_caching": True}

    def __init__(self, model, model_args, mesh_device, processor=None, tokenizer=None):
        self.model = model
        self.model_args = model_args
        self.mesh_device = mesh_device
        self.data_parallel = len(self.model)
        self.already_warmed_up_prefill = False
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.seeded_slots: list[int] = []  # slots whose sampling state a prefill reset

    def warmup_model_prefill(
        self, kv_cache, enable_trace, can_sample_on_device, non_greedy_decoding_on_device
    ):
        if self.already_warmed_up_prefill:
            return
        self.already_warmed_up_prefill = True
        self._record(
            "warmup_model_prefill",
            enable_trace=enable_trace,
            can_sample_on_device=can_sample_on_device,
            non_greedy_decoding_on_device=non_greedy_decoding_on_device,
        )

    # warmup_utils.py @ 9f669429 (WarmupForwardMixin)
    def warmup_model_decode(
        self,
        kv_cache,
        enable_trace,
        max_batch_size,
        num_blocks,
        can_sample_on_device,
        non_greedy_decoding_on_device,
    ):
        self._record(
            "warmup_model_decode",
            enable_trace=enable_trace,
            max_batch_size=max_batch_size,
            num_blocks=num_blocks,
            can_sample_on_device=can_sample_on_device,
            non_greedy_decoding_on_device=non_greedy_decoding_on_device,
        )

    def prefill_forward_text(
        self,
        tokens: torch.Tensor,
        page_table=None,
        kv_cache=None,
        prompt_lens=None,
        empty_slots=None,
        enable_trace=True,
        model_id_warmup=None,
        sampling_params=None,
        start_pos: list[int] = None,
        return_hidden_states=False,
        warmup_prefill=True,
        **kwargs,
    ):
        if kwargs:  # the real one hands them on to Transformer.prepare_inputs_prefill
            raise TypeError(f"prepare_inputs_prefill() got unexpected keyword arguments {sorted(kwargs)}")
        batch = tokens.shape[0]
        if empty_slots is None:
            empty_slots = list(range(batch))
        self._record(
            "prefill_forward_text",
            empty_slots=list(empty_slots),
            enable_trace=enable_trace,
            sampling_params=sampling_params,
            start_pos=start_pos,
        )
        if sampling_params is None:
            return _logits(batch)
        self.seeded_slots += [slot % SAMPLING_SLOTS for slot in empty_slots]  # _apply_prefill_sampling_state
        output_tokens = torch.tensor([[TOKEN_BASE + slot] for slot in empty_slots], dtype=torch.int64)
        return output_tokens, torch.ones(batch, 1, dtype=torch.float32)

    def prefill_forward(
        self,
        vision_images,
        vision_masks,
        tokens,
        xattn_caches,
        total_lens,
        prompt_lens,
        page_table=None,
        kv_cache=None,
        cross_page_table=None,
        empty_slots=None,
        **kwargs,
    ):
        raise AssertionError(
            "Generator.prefill_forward is the vision prefill; text goes to prefill_forward_text"
        )

    def decode_forward(
        self,
        tokens,
        start_pos,
        page_table=None,
        kv_cache=None,
        enable_trace=True,
        read_from_device=True,
        sampling_params=None,
        reset_batch=False,
        prompt_tokens: torch.Tensor | None = None,
        output_tokens: torch.Tensor | None = None,
    ):
        self._record(
            "decode_forward",
            enable_trace=enable_trace,
            read_from_device=read_from_device,
            sampling_params=sampling_params,
            reset_batch=reset_batch,
            written_slots=_written_slots(start_pos),
        )
        per_submesh = tokens.shape[0] // self.data_parallel
        device_out = []
        for i in range(self.data_parallel):
            slots = torch.arange(i * per_submesh, (i + 1) * per_submesh)
            values = (TOKEN_BASE + slots).view(-1, 1) if sampling_params is not None else _logits(len(slots))
            device_out.append((OnDevice(values), OnDevice(torch.ones(len(slots), 1))))
        if read_from_device:
            host = self.read_decode_output(device_out)
            return self.process_decode_output_host(host, is_tokens=(sampling_params is not None))
        return device_out

    def read_decode_output(self, tt_out, async_read=False):
        host = [(out.cpu(blocking=not async_read), log_probs.cpu()) for out, log_probs in tt_out]
        if not async_read:
            return host
        return host, [f"read event {i}" for i in range(self.data_parallel)]

    def process_decode_output_host(self, tt_out, is_tokens=False):
        values = torch.cat([out.value for out, _ in tt_out], 0)
        log_probs = torch.cat([log_probs.value for _, log_probs in tt_out], 0)
        return values, log_probs


class CurrentLlama(_VllmKVCache, CurrentGenerator):
    """``generator_vllm.LlamaForCausalLM`` @ 2a43729e (capabilities of the newest stored version)."""

    model_capabilities = {
        "supports_prefix_caching": True,
        "supports_async_decode": True,
        "supports_sample_on_device": True,
    }

    @classmethod
    def get_max_tokens_all_users(
        cls, model_name: str = "", num_devices: int = 1, tt_data_parallel: int = 1, **kwargs
    ):
        return 131_072  # ModelCapabilitiesMixin's fallback

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config,
        mesh_device,
        max_batch_size,
        max_seq_len,
        n_layers=None,
        tt_data_parallel=1,
        optimizations: str = "performance",
    ):
        if optimizations not in (None, "performance", "accuracy"):  # DecodersPrecision.from_string
            raise ValueError(f"unknown optimizations {optimizations!r}")
        generator = _build(cls, mesh_device, max_batch_size, tt_data_parallel)
        generator.init = {
            "args": (hf_config, mesh_device, max_batch_size, max_seq_len),
            "n_layers": n_layers,
            "tt_data_parallel": tt_data_parallel,
            "optimizations": optimizations,
        }
        return generator

    def prefill_forward(self, *args, **kwargs):
        return super().prefill_forward_text(*args, **kwargs)

    def decode_forward(self, *args, **kwargs):
        return super().decode_forward(*args, **kwargs)


class AssertsNoOptimizations(CurrentLlama):
    """generator_vllm.py's Mistral3/GptOss classes: ``optimizations: str = None`` and
    ``assert optimizations is None, "Custom optimizations are not supported for this model"``."""

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config,
        mesh_device,
        max_batch_size,
        max_seq_len,
        n_layers=None,
        tt_data_parallel=1,
        optimizations=None,
    ):
        assert optimizations is None, "Custom optimizations are not supported for this model"
        return super().initialize_vllm_model(
            hf_config, mesh_device, max_batch_size, max_seq_len, n_layers, tt_data_parallel, optimizations
        )


# ----------------------------------------- ttt_compat: generator.py @ 1a6b64e0, generator_vllm.py @ 3dfeae94


class TttCompatGenerator(CurrentGenerator):
    """``models.ttt_compat.tt.generator.Generator`` @ 1a6b64e0 (the vLLM-facing part): the prefill body is
    the current one, behind the wrapper that flushes deferred trace captures."""

    def warmup_model_prefill(self, kv_cache, enable_trace, can_sample_on_device, greedy_only: bool = False):
        if self.already_warmed_up_prefill:
            return
        self.already_warmed_up_prefill = True
        self._record(
            "warmup_model_prefill",
            enable_trace=enable_trace,
            can_sample_on_device=can_sample_on_device,
            greedy_only=greedy_only,
        )

    def prefill_forward_text(self, *args, **kwargs):
        return self._prefill_forward_text_impl(*args, **kwargs)

    def _prefill_forward_text_impl(
        self,
        tokens: torch.Tensor,
        page_table=None,
        kv_cache=None,
        prompt_lens=None,
        empty_slots=None,
        enable_trace=True,
        model_id_warmup=None,
        sampling_params=None,
        start_pos: list[int] = None,
        return_hidden_states=False,
        warmup_prefill=True,
        **kwargs,
    ):
        return CurrentGenerator.prefill_forward_text(
            self,
            tokens,
            page_table=page_table,
            kv_cache=kv_cache,
            prompt_lens=prompt_lens,
            empty_slots=empty_slots,
            enable_trace=enable_trace,
            sampling_params=sampling_params,
            start_pos=start_pos,
            **kwargs,
        )

    def decode_forward(
        self,
        tokens,
        start_pos,
        page_table=None,
        kv_cache=None,
        enable_trace=True,
        read_from_device=True,
        sampling_params=None,
        reset_batch=False,
        prompt_tokens: torch.Tensor | None = None,
        output_tokens: torch.Tensor | None = None,
        slot_remap=None,
        defer_device_sampling: bool = False,
        skip_trace_precompile: bool = False,
        **kwargs,
    ):
        return CurrentGenerator.decode_forward(
            self, tokens, start_pos, page_table, kv_cache, enable_trace, read_from_device, sampling_params,
            reset_batch,
        )  # fmt: skip


class TttCompatLlama(_VllmKVCache, TttCompatGenerator):
    """``generator_vllm.LlamaForCausalLM`` @ 3dfeae94 (``QwenForCausalLM`` there is the same shape)."""

    model_capabilities = {
        "supports_prefix_caching": True,
        "supports_async_decode": True,
        "supports_sample_on_device": True,
        "max_device_top_k": 32,
        "supports_chunked_prefill": True,
    }
    # The same as CurrentLlama's, bound to this class.
    get_max_tokens_all_users = classmethod(CurrentLlama.get_max_tokens_all_users.__func__)
    initialize_vllm_model = classmethod(CurrentLlama.initialize_vllm_model.__func__)

    def prefill_forward(self, *args, **kwargs):
        return super().prefill_forward_text(*args, **kwargs)

    def decode_forward(self, *args, **kwargs):
        return super().decode_forward(*args, **kwargs)


# ---------------------------------------------------------------- newest warm-up (warmup_utils.py, newest)


class NewestWarmupLlama(CurrentLlama):
    """The decode warm-up of the newest stored warmup_utils.py (``greedy_only`` instead of
    ``non_greedy_decoding_on_device``) and a prefill warm-up taking what Tenstorrent's runner passes."""

    def warmup_model_prefill(self, kv_cache, enable_trace, can_sample_on_device):
        if self.already_warmed_up_prefill:
            return
        self.already_warmed_up_prefill = True
        self._record(
            "warmup_model_prefill", enable_trace=enable_trace, can_sample_on_device=can_sample_on_device
        )

    def warmup_model_decode(
        self,
        kv_cache,
        enable_trace,
        max_batch_size,
        num_blocks,
        can_sample_on_device,
        can_sample_device_grammar: bool = False,
        read_from_device=True,
        greedy_only: bool = False,
        skip_trace_precompile: bool = False,
        sampling_trace_variants_prepared: bool = False,
    ):
        self._record(
            "warmup_model_decode",
            enable_trace=enable_trace,
            can_sample_on_device=can_sample_on_device,
            greedy_only=greedy_only,
        )


# ------------------------------------------ older: generator.py @ d9d95fa3, generator_vllm.py @ 4d4a0629


@dataclass(frozen=True)
class OlderSamplingParams:
    """generator.py @ d9d95fa3's SamplingParams: scalars, greedy only on the device."""

    temperature: float
    top_k: int
    top_p: float


class OlderGenerator(_Recording):
    """``Generator`` @ d9d95fa3 (the vLLM-facing part)."""

    def __init__(self, model, model_args, mesh_device, tokenizer=None, formatter=None):
        self.model = model
        self.model_args = model_args
        self.mesh_device = mesh_device
        self.data_parallel = len(self.model)
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def prefill_forward_text(self, tokens: torch.Tensor, page_table=None, kv_cache=None, prompt_lens=None):
        self._record("prefill_forward_text")
        return _logits(tokens.shape[0])

    def decode_forward_text(
        self,
        tokens,
        start_pos,
        page_table=None,
        kv_cache=None,
        enable_trace=True,
        read_from_device=True,
        sampling_params: OlderSamplingParams = None,
    ):
        assert sampling_params is None or sampling_params.temperature == 0, "Currently only greedy on device"
        self._record(
            "decode_forward_text",
            enable_trace=enable_trace,
            read_from_device=read_from_device,
            written_slots=_written_slots(start_pos),
        )
        device_out = [OnDevice(_logits(tokens.shape[0]))]
        if read_from_device:
            return self.read_decode_output(
                device_out, tokens.shape[0], is_tokens=(sampling_params is not None)
            )
        return device_out

    def read_decode_output(self, tt_out, unpadded_batch, is_tokens=False):
        return torch.cat([out.value for out in tt_out])[:unpadded_batch]


class OlderLlama(_VllmKVCache, OlderGenerator):
    """``generator_vllm.LlamaForCausalLM`` @ 4d4a0629 (no model_capabilities there)."""

    @classmethod
    def initialize_vllm_model(
        cls, hf_config, mesh_device, max_batch_size, max_seq_len=131072, n_layers=None, tt_data_parallel=1
    ):
        generator = _build(cls, mesh_device, max_batch_size, tt_data_parallel)
        generator.init = {"n_layers": n_layers, "tt_data_parallel": tt_data_parallel}
        return generator

    def prefill_forward(self, *args, **kwargs):
        return super().prefill_forward_text(*args, **kwargs)

    def decode_forward(self, *args, **kwargs):
        return super().decode_forward_text(*args, **kwargs)


class VisionOnlyInit(OlderLlama):
    """generator_vllm.py @ 4d4a0629's Mllama signature: no ``n_layers``."""

    @classmethod
    def initialize_vllm_model(
        cls, hf_config, mesh_device, max_batch_size, max_seq_len=131072, tt_data_parallel=1
    ):
        return super().initialize_vllm_model(
            hf_config, mesh_device, max_batch_size, max_seq_len, None, tt_data_parallel
        )


RELEASES = {"ttt_compat": TttCompatLlama, "current": CurrentLlama, "older": OlderLlama}
