"""tt-metal's models behind our model contract, and the contract's optional hooks.

tt-metal's ``models/tt_transformers/tt/generator_vllm.py`` classes already speak the contract. Two things
sit between them and our runner, which calls every model the same way:

- :class:`TTMetalModel` (one subclass per generator class) takes the TT options that travel with the
  open mesh (:class:`~tt_vllm_plugin.device.ttnn.TTNNDevice`: trace mode, optimizations) and turns them
  into the generator's arguments (``enable_trace``, ``optimizations``), passes only the arguments the
  installed generator accepts (their signatures moved between tt-metal releases), and forwards the
  optional hooks (``get_max_tokens_all_users``, ``warmup_model_prefill``, ``warmup_model_decode``);
- :func:`kv_token_budget` and :func:`warm_up` call those hooks on any contract model that offers them
  (host models offer none, so nothing changes there);
- on-device sampling: the runner's :class:`~tt_vllm_plugin.models.device_sampling.DeviceSamplingParams`
  become tt-metal's own ``SamplingParams`` (:func:`to_tt_metal_sampling_params`).

None of this has run against tt-metal here (no ttnn, no ``models`` package on these machines); the
adapter is exercised around host models by the conformance suite (tests/contract), which is also how
a Tenstorrent developer checks it against a real generator on hardware.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models.contract import SUPPORTS_ASYNC_DECODE, KVCache
from tt_vllm_plugin.models.device_sampling import (
    GREEDY_TEMPERATURE,
    UNSEEDED,
    DeviceSamplingParams,
    device_max_top_k,
)

logger = get_logger(__name__)

GENERATOR_MODULE = "models.tt_transformers.tt.generator_vllm"

# TT architecture -> class names in generator_vllm.py, first one present wins (tt-metal once named its
# Qwen generator Qwen2ForCausalLM). Gemma3 is left out on purpose: generator_vllm only has
# Gemma3ForConditionalGeneration, a multimodal generator whose prefill takes images, and the platform
# refuses multimodal models.
TT_METAL_GENERATORS: dict[str, tuple[str, ...]] = {
    "TTLlamaForCausalLM": ("LlamaForCausalLM",),
    "TTMistralForCausalLM": ("MistralForCausalLM",),
    "TTQwen2ForCausalLM": ("QwenForCausalLM", "Qwen2ForCausalLM"),
    "TTQwen3ForCausalLM": ("QwenForCausalLM",),
}

# Optional generator methods the adapter forwards when (and only when) the generator has them.
OPTIONAL_HOOKS = ("get_max_tokens_all_users", "warmup_model_prefill", "warmup_model_decode")
# Read the output of decode_forward(read_from_device=False) (capability supports_async_decode).
ASYNC_DECODE_HOOKS = ("read_decode_output", "process_decode_output_host")

# Where tt-metal defines the per-row sampling parameters its generators take (``sampling_params=``):
# models/common/sampling in current releases, the generator module in older ones. First found wins.
SAMPLING_PARAMS_CLASSES = (
    "models.common.sampling.sampling_params:SamplingParams",
    "models.tt_transformers.tt.generator:SamplingParams",
)


class TTMetalUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class TraceFlags:
    prefill: bool
    decode: bool


def trace_flags(trace_mode: str) -> TraceFlags:
    """Which calls run as device traces: "all" both, "decode_only" decode, "none" neither."""
    return TraceFlags(prefill=trace_mode == "all", decode=trace_mode in ("all", "decode_only"))


# ---------------------------------------------------------------------------------- finding classes


@functools.cache
def generator_module() -> Any:
    """tt-metal's generator_vllm module, or an error saying why it cannot be used."""
    try:
        found = importlib.util.find_spec(GENERATOR_MODULE) is not None
    except ModuleNotFoundError:  # a parent package (models, models.tt_transformers) is missing
        found = False
    if not found:
        raise TTMetalUnavailable(
            f"tt-metal's models are not importable (no module {GENERATOR_MODULE!r}): put a tt-metal checkout "
            "on PYTHONPATH (its root holds the `models` package) and set TT_METAL_HOME, or set "
            "TT_VLLM_DEVICE=host."
        )
    try:
        return importlib.import_module(GENERATOR_MODULE)
    except Exception as error:
        raise TTMetalUnavailable(
            f"{GENERATOR_MODULE} failed to import ({type(error).__name__}: {error}); tt-metal's vLLM "
            "generators are written against a particular vLLM version, so check that this tt-metal "
            "release supports the installed vLLM."
        ) from error


def generator_targets() -> dict[str, str]:
    """TT architecture -> ``"module:Class"`` for every generator the installed tt-metal has."""
    module = generator_module()
    targets = {}
    for tt_arch, names in TT_METAL_GENERATORS.items():
        present = next((name for name in names if hasattr(module, name)), None)
        if present is not None:
            targets[tt_arch] = f"{GENERATOR_MODULE}:{present}"
    return targets


def load_generator_class(target: str) -> type:
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


@functools.cache
def adapter_for(generator_cls: type) -> type[TTMetalModel]:
    """The contract class the runner uses for ``generator_cls`` (one per generator class)."""
    capabilities = dict(getattr(generator_cls, "model_capabilities", None) or {})
    if capabilities.get(SUPPORTS_ASYNC_DECODE) and (problem := async_read_problem(generator_cls)):
        logger.warning("%s: %s; decoding synchronously.", generator_cls.__name__, problem)
        capabilities[SUPPORTS_ASYNC_DECODE] = False
    name = f"TTMetal{generator_cls.__name__}"
    return type(name, (TTMetalModel,), {"generator_cls": generator_cls, "model_capabilities": capabilities})


def async_read_problem(model: Any) -> str | None:
    """Why ``model`` (a model or generator class, or an instance) cannot do the runner's async decode
    read, or None if it can.

    The runner queues the read with ``read_decode_output(out, async_read=True)`` (-> host output and
    events) and finishes it with ``process_decode_output_host``. Older tt-metal generators read and
    process in one blocking ``read_decode_output(tt_out, unpadded_batch, is_tokens)``.
    """
    read = getattr(model, "read_decode_output", None)
    if read is None:
        return "it declares supports_async_decode but has no read_decode_output"
    if not accepts(read, "async_read"):
        return "its read_decode_output takes no async_read (an older tt-metal release)"
    if not hasattr(model, "process_decode_output_host"):
        return "it declares supports_async_decode but has no process_decode_output_host"
    return None


# ------------------------------------------------------------------------------- device sampling


@functools.cache
def tt_metal_sampling_params_class() -> type | None:
    """tt-metal's ``SamplingParams`` class, or None when tt-metal is not importable (then the adapter
    hands the runner's :class:`DeviceSamplingParams` to the generator unchanged, as for host models)."""
    for target in SAMPLING_PARAMS_CLASSES:
        module_name, class_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except Exception:  # not installed, or its import failed (no ttnn): try the next place
            continue
        found = getattr(module, class_name, None)
        if isinstance(found, type):
            return found
    return None


def to_tt_metal_sampling_params(params: DeviceSamplingParams, params_cls: type) -> Any:
    """``params`` as tt-metal's ``SamplingParams``: one list entry per row.

    tt-metal's conventions (``format_sampling_params`` in models/common/sampling/generator.py): a
    temperature of 0 means greedy; it pads the lists to its sampling batch itself. Greedy rows are sent
    as temperature 0, top-k 1, top-p 1. Random rows reach here only with 1 <= top_k <= the device's
    limit (``worker/sampling_mode.py`` sends every other request to vLLM's sampler). ``seed`` (when the
    installed class has it) is each row's request seed, None for requests without one, as
    Tenstorrent's own runner passes it: tt-metal's SeedManager seeds the slot's stream when the
    request is prefilled into it and advances it every decode, so a seeded request's tokens depend on
    its seed and its slot's stream only (the runner keeps a request in one slot, decode_slots.py).
    Penalties and logprobs keep the class's defaults: steps that need them never sample on the device.
    """
    accepted = inspect.signature(params_cls).parameters
    missing = [name for name in ("temperature", "top_k", "top_p") if name not in accepted]
    if missing:
        raise TypeError(
            f"{params_cls.__module__}.{params_cls.__qualname__} has no field(s) {missing}; this tt-metal "
            "release's sampling parameters are not supported: unset sample_on_device_mode."
        )
    greedy = params.temperature < GREEDY_TEMPERATURE
    values: dict[str, Any] = {
        "temperature": torch.where(greedy, 0.0, params.temperature).tolist(),
        "top_k": torch.where(greedy, 1, params.top_k).tolist(),
        "top_p": torch.where(greedy, 1.0, params.top_p).tolist(),
    }
    if "seed" in accepted:
        values["seed"] = [None if s == UNSEEDED else s for s in params.request_seeds.tolist()]
    return params_cls(**values)


def for_generator(sampling_params: Any) -> Any:
    """What the generator gets for the runner's ``sampling_params`` (None stays None)."""
    params_cls = tt_metal_sampling_params_class()
    if isinstance(sampling_params, DeviceSamplingParams) and params_cls is not None:
        return to_tt_metal_sampling_params(sampling_params, params_cls)
    return sampling_params


# ------------------------------------------------------------------------------------------ adapter


def accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` takes keyword ``name`` (explicitly or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True  # builtins without a signature: let the call decide
    if name in parameters:
        return parameters[name].kind is not inspect.Parameter.POSITIONAL_ONLY
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())


def _forward_target(generator: Any, method: str) -> Callable[..., Any]:
    # tt_transformers' prefill_forward/decode_forward are (*args, **kwargs) shims over *_text methods;
    # the real signature is there.
    return getattr(generator, f"{method}_text", None) or getattr(generator, method)


class TTMetalModel:
    """A tt-metal generator seen through the contract (see ``contract.py``); build with
    :func:`adapter_for`. Calls go to the generator with the arguments it accepts."""

    generator_cls: ClassVar[type]
    model_capabilities: ClassVar[dict[str, Any]] = {}

    def __init__(self, generator: Any, trace: TraceFlags) -> None:
        self.generator = generator
        self.trace = trace

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the adapter lacks: expose the generator's optional hooks, so
        # getattr(model, hook, None) is None exactly when the generator has no such hook.
        generator = self.__dict__.get("generator")
        if generator is not None and (name in OPTIONAL_HOOKS or name in ASYNC_DECODE_HOOKS):
            return getattr(generator, name)
        raise AttributeError(name)

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
    ) -> TTMetalModel:
        """Build the generator on ``mesh_device``: a ``TTNNDevice`` (its TT options win over the
        arguments) or a bare mesh (trace everything, as tt-metal's own defaults do)."""
        mesh, trace_mode = mesh_device, "all"
        if hasattr(mesh_device, "mesh") and hasattr(mesh_device, "trace_mode"):
            mesh, trace_mode = mesh_device.mesh, mesh_device.trace_mode
            tt_data_parallel, optimizations = mesh_device.data_parallel, mesh_device.optimizations
        if max_batch_size % tt_data_parallel:
            # tt-metal gives each data-parallel submesh max_batch_size / data_parallel decode slots.
            raise ValueError(
                f"max_num_seqs={max_batch_size} does not split evenly over TT option "
                f"data_parallel={tt_data_parallel}; use a multiple of {tt_data_parallel}."
            )
        generator = cls.generator_cls.initialize_vllm_model(
            hf_config,
            mesh,
            max_batch_size,
            max_seq_len,
            n_layers=n_layers,
            tt_data_parallel=tt_data_parallel,
            optimizations=optimizations,
        )
        return cls(generator, trace_flags(trace_mode))

    def allocate_kv_cache(
        self, kv_cache_shape: tuple[int, int, int, int], dtype: torch.dtype, num_layers: int
    ) -> KVCache:
        return self.generator.allocate_kv_cache(kv_cache_shape, dtype, num_layers)

    def prefill_forward(
        self,
        tokens: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        prompt_lens: torch.Tensor | Sequence[int],
        start_pos: torch.Tensor | Sequence[int] | None = None,
        enable_trace: bool | None = None,
        sampling_params: Any = None,
        **extra: Any,
    ) -> torch.Tensor:
        """``extra`` (arguments beyond Tenstorrent's contract) goes to the generator unchanged."""
        target = _forward_target(self.generator, "prefill_forward")
        kwargs: dict[str, Any] = {"page_table": page_table, "kv_cache": kv_cache, "prompt_lens": prompt_lens}
        starts = [] if start_pos is None else [int(s) for s in torch.as_tensor(start_pos).tolist()]
        if any(starts):
            if not accepts(target, "start_pos"):
                raise NotImplementedError(
                    f"{self.generator_cls.__name__} cannot prefill after a cached prefix (no start_pos)."
                )
            kwargs["start_pos"] = starts  # tt-metal takes a list of ints
        if accepts(target, "enable_trace"):
            kwargs["enable_trace"] = self.trace.prefill if enable_trace is None else enable_trace
        if sampling_params is not None:
            kwargs["sampling_params"] = for_generator(sampling_params)
        return self.generator.prefill_forward(tokens, **kwargs, **extra)

    def decode_forward(
        self,
        tokens: torch.Tensor,
        start_pos: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        enable_trace: bool | None = None,
        read_from_device: bool = True,
        sampling_params: Any = None,
        reset_batch: bool = False,
    ) -> torch.Tensor:
        target = _forward_target(self.generator, "decode_forward")
        kwargs: dict[str, Any] = {
            "page_table": page_table,
            "kv_cache": kv_cache,
            "enable_trace": self.trace.decode if enable_trace is None else enable_trace,
            "read_from_device": read_from_device,
            "sampling_params": for_generator(sampling_params),
        }
        # Older generators take no reset_batch (the one read for this re-uploads its traced decode
        # inputs every step unless it samples on the device, which it only does greedy).
        if reset_batch and accepts(target, "reset_batch"):
            kwargs["reset_batch"] = True
        return self.generator.decode_forward(tokens, start_pos, **kwargs)


# ---------------------------------------------------------------------------------- optional hooks


def call_with_accepted(hook: Callable[..., Any], offered: dict[str, Any]) -> Any:
    """Call ``hook`` with the keyword arguments of ``offered`` it takes; its signatures differ between
    tt-metal models. A required argument we cannot supply is an error naming it."""
    try:
        parameters = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        return hook(**offered)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return hook(**offered)
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        and name not in offered
    ]
    if missing:
        raise TypeError(f"{getattr(hook, '__qualname__', hook)} needs argument(s) we do not have: {missing}")
    return hook(**{name: value for name, value in offered.items() if name in parameters})


def kv_token_budget(
    model: Any,
    *,
    model_name: str,
    num_devices: int,
    max_model_len: int,
    max_num_seqs: int,
    tt_data_parallel: int = 1,
) -> int | None:
    """The model's own KV budget in tokens across all users (``get_max_tokens_all_users``), or None."""
    hook = getattr(model, "get_max_tokens_all_users", None)
    if hook is None:
        return None
    offered = {
        "model_name": model_name,
        "num_devices": num_devices,
        "tt_data_parallel": tt_data_parallel,
        "max_model_len": max_model_len,
        "max_num_seqs": max_num_seqs,
    }
    tokens = int(call_with_accepted(hook, offered))
    if tokens < 1:
        raise ValueError(f"{type(model).__name__}.get_max_tokens_all_users returned {tokens}; need >= 1.")
    return tokens


def warm_up(
    model: Any,
    *,
    kv_cache: KVCache,
    trace: TraceFlags,
    max_batch_size: int,
    num_blocks: int,
    sample_on_device: bool = False,
) -> bool:
    """Run the model's warm-up hooks (compile, capture traces) if it has any; True if one ran.

    ``sample_on_device``: whether the runner may ask the model to sample (``sample_on_device_mode`` set
    and the model declares ``supports_sample_on_device``); the hooks then also prepare on-device
    sampling, random (top-k / top-p / temperature) too unless the model is greedy-only
    (``max_device_top_k`` 0).
    """
    common = {
        "kv_cache": kv_cache,
        "can_sample_on_device": sample_on_device,
        "non_greedy_decoding_on_device": sample_on_device and device_max_top_k(model) > 0,
    }
    ran = False
    prefill = getattr(model, "warmup_model_prefill", None)
    if prefill is not None:
        call_with_accepted(prefill, {**common, "enable_trace": trace.prefill})
        ran = True
    decode = getattr(model, "warmup_model_decode", None)
    if decode is not None:
        offered = {
            **common,
            "enable_trace": trace.decode,
            "max_batch_size": max_batch_size,
            "num_blocks": num_blocks,
        }
        call_with_accepted(decode, offered)
        ran = True
    return ran
