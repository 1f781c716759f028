"""Host (PyTorch) implementation of the Llama family behind the TT model contract.

One core, :class:`HostLlamaFamilyModel`, covers Llama, Mistral, Qwen2 and Qwen3: they share the
decoder (RMSNorm, RoPE, GQA attention, SwiGLU MLP) and differ only in biases, Qwen3's per-head
q/k norm and which configs they accept. The thin per-architecture classes at the bottom say which.

Linear layers are :class:`~tt_vllm_plugin.models.host_linear.HostLinear` (vLLM's prepacked CPU GEMMs,
else ``F.linear``); q/k/v and gate/up are fused into one matrix each at load time because fewer,
bigger matmuls are faster on a CPU. Between the matmuls, RMSNorm (fused with the residual add), RoPE
and SwiGLU run on vLLM's fused CPU kernels where they exist (:mod:`~tt_vllm_plugin.models.host_ops`),
which agree with transformers' float32 numerics to about 1e-6.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tt_vllm_plugin.models.contract import (
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_PROMPT_LOGPROBS,
    SUPPORTS_SAMPLE_ON_DEVICE,
    KVCache,
)
from tt_vllm_plugin.models.cpu_attention import KernelBatch, host_attention_choice, kernel_block_size_ok
from tt_vllm_plugin.models.device_sampling import DeviceSamplingParams, sample_on_device
from tt_vllm_plugin.models.host_linear import HostLinear
from tt_vllm_plugin.models.host_ops import (
    HostOps,
    RotaryEmbedding,
    RotateFn,
    fused_kernels_available,
    rms_norm,
)
from tt_vllm_plugin.models.paged_attention import (
    block_coordinates,
    decode_attention,
    prefill_attention,
    write_kv,
)

SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


# --------------------------------------------------------------------------------------------- RoPE


def rope_parameters(config: Any) -> dict[str, Any]:
    """The RoPE settings of ``config`` as one dict with ``rope_type`` and ``rope_theta``.

    transformers 5 keeps them in ``rope_parameters``; older configs use ``rope_scaling`` (with
    ``type`` or ``rope_type``) plus a top-level ``rope_theta``.
    """
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params["rope_type"] = params.get("rope_type") or params.get("type") or "default"
    if "rope_theta" not in params:
        params["rope_theta"] = getattr(config, "rope_theta", None) or 10000.0
    return params


def rope_inv_freq(config: Any, head_dim: int) -> torch.Tensor:
    """Inverse frequencies (head_dim // 2,) in float32, as transformers computes them."""
    params = rope_parameters(config)
    rope_type = params["rope_type"]
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise NotImplementedError(
            f"RoPE type '{rope_type}' is not implemented for host models "
            f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})."
        )
    if params.get("partial_rotary_factor", 1.0) != 1.0:
        raise NotImplementedError("partial_rotary_factor != 1 is not implemented for host models.")
    base = float(params["rope_theta"])
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    if rope_type == "linear":
        return inv_freq / float(params["factor"])
    if rope_type == "llama3":
        return _llama3_scale(inv_freq, params)
    return inv_freq


def _llama3_scale(inv_freq: torch.Tensor, params: dict[str, Any]) -> torch.Tensor:
    """Llama 3.1 frequency scaling: long wavelengths slowed by ``factor``, short kept, smooth between."""
    factor = float(params["factor"])
    low_freq_factor = float(params["low_freq_factor"])
    high_freq_factor = float(params["high_freq_factor"])
    old_context_len = float(params["original_max_position_embeddings"])
    low_freq_wavelen = old_context_len / low_freq_factor
    high_freq_wavelen = old_context_len / high_freq_factor

    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context_len / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    is_medium = ~(wavelen < high_freq_wavelen) * ~(wavelen > low_freq_wavelen)
    return torch.where(is_medium, smoothed, scaled)


# ------------------------------------------------------------------------------------------ weights


@dataclass(frozen=True)
class FamilyLayout:
    """Which optional tensors an architecture has (what differs inside the Llama family)."""

    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False


@dataclass
class LayerWeights:
    input_norm: torch.Tensor
    qkv: HostLinear  # q, k, v projections stacked on the output dim
    o: HostLinear
    q_norm: torch.Tensor | None
    k_norm: torch.Tensor | None
    post_norm: torch.Tensor
    gate_up: HostLinear  # gate and up projections stacked on the output dim
    down: HostLinear


@dataclass
class ModelWeights:
    embed: torch.Tensor
    layers: list[LayerWeights]
    norm: torch.Tensor
    lm_head: HostLinear  # over the embedding itself when tied


def model_folder(hf_config: Any) -> Path:
    """The local folder holding the checkpoint ``hf_config`` was read from.

    A hub id (not a local folder) is looked up in the Hugging Face cache without network access:
    vLLM downloads the checkpoint there before the model is built.
    """
    name = getattr(hf_config, "_name_or_path", None) or getattr(hf_config, "name_or_path", None)
    if not name:
        raise ValueError("hf_config has no _name_or_path: cannot tell where the model weights are.")
    path = Path(str(name)).expanduser()
    if path.is_dir():
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name), local_files_only=True))
    except Exception as error:
        raise FileNotFoundError(
            f"Model weights folder '{name}' does not exist and is not in the Hugging Face cache."
        ) from error


def safetensors_locations(folder: Path) -> dict[str, Path]:
    """Tensor name -> file holding it, from ``model.safetensors.index.json`` or the ``*.safetensors``."""
    from safetensors import safe_open

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(
            f"No safetensors weights found in '{folder}' (looked for model.safetensors.index.json "
            "and *.safetensors); host models load Hugging Face safetensors checkpoints only."
        )
    locations: dict[str, Path] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            locations.update(dict.fromkeys(handle.keys(), file))
    return locations


def load_tensors(
    folder: Path, names: Sequence[str], dtype: torch.dtype, device: torch.device
) -> dict[str, torch.Tensor]:
    """Read exactly ``names`` (cast to ``dtype``, on ``device``); each shard is opened once."""
    from safetensors import safe_open

    locations = safetensors_locations(folder)
    missing = [name for name in names if name not in locations]
    if missing:
        shown = ", ".join(missing[:10]) + (
            f" ... ({len(missing)} missing in all)" if len(missing) > 10 else ""
        )
        raise ValueError(f"Checkpoint in '{folder}' lacks tensors the model needs: {shown}")
    by_file: dict[Path, list[str]] = {}
    for name in names:
        by_file.setdefault(locations[name], []).append(name)
    tensors: dict[str, torch.Tensor] = {}
    for file, file_names in by_file.items():
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for name in file_names:
                tensors[name] = handle.get_tensor(name).to(device=device, dtype=dtype)
    return tensors


def layer_tensor_names(index: int, layout: FamilyLayout) -> list[str]:
    prefix = f"model.layers.{index}."
    names = [prefix + "input_layernorm.weight", prefix + "post_attention_layernorm.weight"]
    names += [f"{prefix}self_attn.{p}_proj.weight" for p in "qkvo"]
    names += [f"{prefix}mlp.{p}_proj.weight" for p in ("gate", "up", "down")]
    if layout.qkv_bias:
        names += [f"{prefix}self_attn.{p}_proj.bias" for p in "qkv"]
    if layout.o_bias:
        names.append(prefix + "self_attn.o_proj.bias")
    if layout.mlp_bias:
        names += [f"{prefix}mlp.{p}_proj.bias" for p in ("gate", "up", "down")]
    if layout.qk_norm:
        names += [prefix + "self_attn.q_norm.weight", prefix + "self_attn.k_norm.weight"]
    return names


def build_layer(tensors: dict[str, torch.Tensor], index: int, layout: FamilyLayout) -> LayerWeights:
    """Assemble (and fuse) one layer's weights, consuming its entries from ``tensors``."""
    prefix = f"model.layers.{index}."

    def take(name: str) -> torch.Tensor:
        return tensors.pop(prefix + name)

    def fused(names: Sequence[str]) -> torch.Tensor:
        return torch.cat([take(name) for name in names], dim=0)

    def linear(weight: torch.Tensor, bias: torch.Tensor | None) -> HostLinear:
        # Prepacked for the GEMM kernel; the plain weight is dropped then (it would double the memory).
        return HostLinear(weight, bias, keep_weight=False)

    attn, mlp = "self_attn.", "mlp."
    return LayerWeights(
        input_norm=take("input_layernorm.weight"),
        qkv=linear(
            fused([f"{attn}{p}_proj.weight" for p in "qkv"]),
            fused([f"{attn}{p}_proj.bias" for p in "qkv"]) if layout.qkv_bias else None,
        ),
        o=linear(take(attn + "o_proj.weight"), take(attn + "o_proj.bias") if layout.o_bias else None),
        q_norm=take(attn + "q_norm.weight") if layout.qk_norm else None,
        k_norm=take(attn + "k_norm.weight") if layout.qk_norm else None,
        post_norm=take("post_attention_layernorm.weight"),
        gate_up=linear(
            fused([f"{mlp}{p}_proj.weight" for p in ("gate", "up")]),
            fused([f"{mlp}{p}_proj.bias" for p in ("gate", "up")]) if layout.mlp_bias else None,
        ),
        down=linear(
            take(mlp + "down_proj.weight"), take(mlp + "down_proj.bias") if layout.mlp_bias else None
        ),
    )


def load_model_weights(
    folder: Path,
    num_layers: int,
    layout: FamilyLayout,
    tie_word_embeddings: bool,
    dtype: torch.dtype,
    device: torch.device,
) -> ModelWeights:
    """Load the first ``num_layers`` decoder layers plus embedding, final norm and LM head."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not tie_word_embeddings:
        names.append("lm_head.weight")
    for index in range(num_layers):
        names += layer_tensor_names(index, layout)
    tensors = load_tensors(folder, names, dtype, device)
    layers = [build_layer(tensors, index, layout) for index in range(num_layers)]
    embed = tensors["model.embed_tokens.weight"]
    return ModelWeights(
        embed=embed,
        layers=layers,
        norm=tensors["model.norm.weight"],
        # Tied: the embedding stays needed, so the LM head keeps the same tensor as its plain weight.
        lm_head=HostLinear(embed if tie_word_embeddings else tensors["lm_head.weight"]),
    )


# -------------------------------------------------------------------------------------------- model

# Attention of one layer: (layer index, q (N, heads, hd), k, v (N, kv_heads, hd)) -> (N, heads * hd).
AttendFn = Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _as_int_list(values: torch.Tensor | Sequence[int]) -> list[int]:
    return [int(v) for v in (values.tolist() if isinstance(values, torch.Tensor) else values)]


class HostLlamaFamilyModel:
    """The shared Llama-family decoder implementing the TT model contract (see ``contract.py``)."""

    model_capabilities: dict[str, bool] = {
        SUPPORTS_PREFIX_CACHING: True,
        SUPPORTS_CHUNKED_PREFILL: True,
        SUPPORTS_PROMPT_LOGPROBS: True,
        # sampling_params=DeviceSamplingParams: greedy / temperature / top-k / top-p with per-row seeds.
        SUPPORTS_SAMPLE_ON_DEVICE: True,
        # decode_forward(read_from_device=False) + read_decode_output(async_read=True): on CUDA the
        # kernels and the copy are queued; on the CPU they are done when decode_forward returns.
        SUPPORTS_ASYNC_DECODE: True,
    }

    def __init__(
        self,
        config: Any,
        weights: ModelWeights,
        torch_device: torch.device,
        dtype: torch.dtype,
        max_batch_size: int,
        max_seq_len: int,
    ) -> None:
        self.config = config
        self.weights = weights
        self.device = torch_device
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.max_seq_len = max_seq_len
        self.num_heads = int(config.num_attention_heads)
        self.num_kv_heads = int(getattr(config, "num_key_value_heads", None) or self.num_heads)
        self.head_dim = head_dim_of(config)
        self.eps = float(config.rms_norm_eps)
        self.scale = self.head_dim**-0.5
        self.ops = HostOps(fused_kernels_available(torch_device))
        self.rope = RotaryEmbedding(
            rope_inv_freq(config, self.head_dim),
            self.head_dim,
            max_seq_len,
            dtype,
            torch_device,
            self.ops.fused,
        )
        # vLLM's CPU attention kernels where they run (per cache block size, see kernel_block_size_ok),
        # else plain torch: fixed for a cache's life, because the two store K differently in a block.
        self.vllm_attention = host_attention_choice(torch_device, dtype, self.head_dim) == "vllm"

    # ---- construction

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        """Optional tensors of this architecture; Llama's follow its config flags."""
        attention_bias = bool(getattr(config, "attention_bias", False))
        return FamilyLayout(
            qkv_bias=attention_bias, o_bias=attention_bias, mlp_bias=bool(getattr(config, "mlp_bias", False))
        )

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        """Refuse configs whose math this implementation does not do, instead of computing wrongly."""
        act = getattr(config, "hidden_act", "silu")
        if act != "silu":
            raise NotImplementedError(f"{cls.__name__}: hidden_act '{act}' is not implemented (only 'silu').")
        layer_types = getattr(config, "layer_types", None) or []
        other = sorted({kind for kind in layer_types if kind != "full_attention"})
        if other or getattr(config, "use_sliding_window", False):
            kinds = ", ".join(other) or "use_sliding_window"
            raise NotImplementedError(
                f"{cls.__name__}: sliding-window attention layers ({kinds}) are not implemented "
                "for host models."
            )

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
    ) -> HostLlamaFamilyModel:
        """Load the checkpoint ``hf_config`` came from onto the host device.

        ``mesh_device`` is a :class:`~tt_vllm_plugin.device.host.HostDevice`. ``tt_data_parallel``
        and ``optimizations`` are accepted for the contract; the host computes all rows at once, so
        they change nothing observable.
        """
        if not hasattr(mesh_device, "torch_device") or not hasattr(mesh_device, "dtype"):
            raise TypeError(f"{cls.__name__} runs on a HostDevice, got {type(mesh_device).__name__}.")
        cls.check_config(hf_config, max_seq_len)
        num_layers = int(hf_config.num_hidden_layers)
        if n_layers is not None:
            num_layers = min(num_layers, int(n_layers))
        weights = load_model_weights(
            model_folder(hf_config),
            num_layers,
            cls.family_layout(hf_config),
            bool(getattr(hf_config, "tie_word_embeddings", False)),
            mesh_device.dtype,
            mesh_device.torch_device,
        )
        return cls(
            hf_config, weights, mesh_device.torch_device, mesh_device.dtype, max_batch_size, max_seq_len
        )

    # ---- contract

    def allocate_kv_cache(
        self, kv_cache_shape: tuple[int, int, int, int], dtype: torch.dtype, num_layers: int
    ) -> KVCache:
        """Zeroed [K, V] per layer: zeros (not empty) so masked-out slots never hold NaN, which
        would leak through ``0 * NaN`` in the attention-weighted sum."""
        _, kv_heads, _, head_dim = kv_cache_shape
        if (kv_heads, head_dim) != (self.num_kv_heads, self.head_dim):
            raise ValueError(
                f"KV cache shape {tuple(kv_cache_shape)} does not fit the model "
                f"(num_kv_heads={self.num_kv_heads}, head_dim={self.head_dim})."
            )
        return [
            [torch.zeros(kv_cache_shape, dtype=dtype, device=self.device) for _ in range(2)]
            for _ in range(num_layers)
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
    ) -> torch.Tensor:
        """Compute positions ``start_pos[i] .. prompt_lens[i] - 1`` of every row in one pass and
        return the logits of each row's last position, (B, 1, vocab) float32. With
        ``return_all_logits`` (capability ``supports_prompt_logprobs``): the logits of every computed
        position instead, flat (sum of new tokens, vocab), row after row.

        The rows' new tokens are concatenated (no padding), so linear layers run on real tokens only.
        ``empty_slots`` (the decode slots the rows will use, for tt-metal's data parallelism) changes
        nothing here: the host has one KV cache for every slot.
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
            blocks, offsets = block_coordinates(page_table, rows, positions, kv_cache[0][0].shape[2])

            def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                k_cache, v_cache = kv_cache[layer]
                write_kv(k_cache, v_cache, blocks, offsets, k, v)
                return prefill_attention(q, k, v, k_cache, v_cache, page_table, starts, new_lens, self.scale)

            if self.vllm_attention and kernel_block_size_ok(kv_cache[0][0].shape[2]):
                attend = self._kernel_attention(kv_cache, page_table, blocks, offsets, new_lens, lens)

            hidden = self._forward(ids, positions, attend)
            if return_all_logits:
                return self._logits(hidden)
            last = torch.tensor(new_lens, device=self.device).cumsum(0) - 1
            if sampling_params is not None:  # sampled on the device: (B,) token ids
                return self._sample(self._logits(hidden[last]), sampling_params, len(lens))
            return self._logits(hidden[last])[:, None, :]

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
                (tokens.shape[0], 1, self.weights.lm_head.out_features),
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
            active_table = page_table[active]
            rows = torch.arange(active.numel(), device=self.device)
            blocks, offsets = block_coordinates(active_table, rows, positions, kv_cache[0][0].shape[2])

            def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
                k_cache, v_cache = kv_cache[layer]
                write_kv(k_cache, v_cache, blocks, offsets, k, v)
                return decode_attention(q, k_cache, v_cache, active_table, positions, self.scale)

            if self.vllm_attention and kernel_block_size_ok(kv_cache[0][0].shape[2]):
                seq_lens = (positions + 1).tolist()
                attend = self._kernel_attention(
                    kv_cache, active_table, blocks, offsets, [1] * len(seq_lens), seq_lens
                )

            hidden = self._forward(tokens[active, 0], positions, attend)
            if sampling_params is not None:
                out[active] = self._sample(self._logits(hidden), sampling_params, tokens.shape[0], active)
                return out
            out[active, 0] = self._logits(hidden)
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

    # ---- the decoder

    def _check_positions(self, max_position: int) -> None:
        if max_position >= self.max_seq_len:
            raise ValueError(
                f"Position {max_position} is beyond max_seq_len={self.max_seq_len} the model was built for."
            )

    def _kernel_attention(
        self,
        kv_cache: KVCache,
        page_table: torch.Tensor,
        blocks: torch.Tensor,
        offsets: torch.Tensor,
        new_lens: Sequence[int],
        seq_lens: Sequence[int],
    ) -> AttendFn:
        """Attention through vLLM's CPU kernels: one metadata build per pass, one call per layer."""
        block_size = kv_cache[0][0].shape[2]
        batch = KernelBatch.build(
            new_lens=new_lens,
            seq_lens=seq_lens,
            page_table=page_table,
            slot_mapping=blocks * block_size + offsets,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            block_size=block_size,
            dtype=kv_cache[0][0].dtype,
            scale=self.scale,
        )

        def attend(layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            k_cache, v_cache = kv_cache[layer]
            return batch.attend(q, k, v, k_cache, v_cache)

        return attend

    def _forward(self, ids: torch.Tensor, positions: torch.Tensor, attend: AttendFn) -> torch.Tensor:
        """Hidden states (N, hidden) after the final norm, for flat tokens ``ids`` at ``positions``.

        Each residual add is fused with the norm after it (the next sublayer's input norm, or the
        final norm after the last layer)."""
        rotate = self.rope.at(positions)
        layers = self.weights.layers
        residual = F.embedding(ids, self.weights.embed)
        if not layers:
            return self.ops.rms_norm(residual, self.weights.norm, self.eps)
        x = self.ops.rms_norm(residual, layers[0].input_norm, self.eps)
        for index, layer in enumerate(layers):
            attn = self._attention(index, layer, x, rotate, attend)
            x, residual = self.ops.add_rms_norm(attn, residual, layer.post_norm, self.eps)
            next_norm = layers[index + 1].input_norm if index + 1 < len(layers) else self.weights.norm
            x, residual = self.ops.add_rms_norm(self._mlp(layer, x), residual, next_norm, self.eps)
        return x

    def _attention(
        self, index: int, layer: LayerWeights, x: torch.Tensor, rotate: RotateFn, attend: AttendFn
    ) -> torch.Tensor:
        n = x.shape[0]
        q_size, kv_size = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        qkv = layer.qkv(x)
        q, k = qkv[:, :q_size], qkv[:, q_size : q_size + kv_size]
        v = qkv[:, q_size + kv_size :].reshape(n, self.num_kv_heads, self.head_dim)
        if layer.q_norm is not None and layer.k_norm is not None:  # Qwen3: per-head norm before RoPE
            q = rms_norm(q.reshape(n, self.num_heads, -1), layer.q_norm, self.eps).reshape(n, -1)
            k = rms_norm(k.reshape(n, self.num_kv_heads, -1), layer.k_norm, self.eps).reshape(n, -1)
        q, k = rotate(q, k)
        q = q.reshape(n, self.num_heads, self.head_dim)
        k = k.reshape(n, self.num_kv_heads, self.head_dim)
        return layer.o(attend(index, q, k, v))

    def _mlp(self, layer: LayerWeights, x: torch.Tensor) -> torch.Tensor:
        return layer.down(self.ops.silu_and_mul(layer.gate_up(x)))

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.weights.lm_head(hidden).float()

    def _sample(
        self, logits: torch.Tensor, params: Any, num_rows: int, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Sample ``logits`` (one per computed row) on the device; ``rows``: their slots."""
        if not isinstance(params, DeviceSamplingParams):
            raise TypeError(f"sampling_params must be a DeviceSamplingParams, got {type(params).__name__}.")
        if params.num_rows < num_rows:
            raise ValueError(f"sampling_params has {params.num_rows} rows; this call has {num_rows}.")
        chosen = params.select(slice(0, num_rows) if rows is None else rows.cpu())
        return sample_on_device(logits, chosen)


def head_dim_of(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


# ---------------------------------------------------------------------------- per-architecture classes


class TTLlamaForCausalLM(HostLlamaFamilyModel):
    """Llama (1/2/3.x), and anything saved as LlamaForCausalLM (e.g. SmolLM2)."""


class TTMistralForCausalLM(HostLlamaFamilyModel):
    """Mistral: Llama math, plus a sliding window this implementation does not do."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        return FamilyLayout()

    @classmethod
    def check_config(cls, config: Any, max_seq_len: int) -> None:
        super().check_config(config, max_seq_len)
        window = getattr(config, "sliding_window", None)
        # A window at least max_seq_len long never takes effect, so plain causal attention is exact.
        if window is not None and window < max_seq_len:
            raise NotImplementedError(
                f"{cls.__name__}: sliding_window={window} < max_seq_len={max_seq_len} is not implemented "
                f"for host models; use max_seq_len <= {window}."
            )


class TTQwen2ForCausalLM(HostLlamaFamilyModel):
    """Qwen2 / Qwen2.5: q/k/v projections always carry a bias, o_proj never does."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        return FamilyLayout(qkv_bias=True)


class TTQwen3ForCausalLM(HostLlamaFamilyModel):
    """Qwen3 (dense): per-head RMSNorm on q and k before RoPE; biases only if attention_bias."""

    @classmethod
    def family_layout(cls, config: Any) -> FamilyLayout:
        attention_bias = bool(getattr(config, "attention_bias", False))
        return FamilyLayout(qkv_bias=attention_bias, o_bias=attention_bias, qk_norm=True)
