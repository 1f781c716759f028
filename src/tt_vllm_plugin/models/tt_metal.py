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


# ------------------------------------------------------------------------------------- signatures
#
# tt-metal's signatures moved between releases, and what a generator class shows is often a shim:
# generator_vllm.py's classes define ``prefill_forward(self, *args, **kwargs)`` returning
# ``super().prefill_forward_text(...)``, and ``decode_forward`` returning ``super().decode_forward_text``
# (tenstorrent/tt-metal 0015d62ba229715e1a2490489c17fce1ed317338) or, in current releases,
# ``super().decode_forward(...)`` (2a43729eb2eb37d76004e978da0af31e33829840, with Generator.decode_forward
# at 421a32c198c9ce77908f704f673da5d0a0ffa3f8). The real signature is where the shim leads, so the adapter
# follows the shim instead of guessing a name. And a real signature's ``**kwargs`` (prefill_forward_text
# at 421a32c1 hands them on to ``prepare_inputs_prefill``) does not mean "takes anything": an optional
# argument is passed only where the target names it.

_PASS_THROUGH = [inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD]
_MAX_SHIM_DEPTH = 8


def accepts(function: Callable[..., Any], name: str) -> bool:
    """Whether ``function`` names keyword parameter ``name`` (``**kwargs`` alone does not count)."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return True  # builtins without a signature: let the call decide
    parameter = parameters.get(name)
    return parameter is not None and parameter.kind is not inspect.Parameter.POSITIONAL_ONLY


def _is_pass_through(function: Callable[..., Any]) -> bool:
    """``(self, *args, **kwargs)`` and nothing else: a shim that hands everything to another method."""
    try:
        kinds = [p.kind for p in inspect.signature(function).parameters.values()]
    except (TypeError, ValueError):
        return False
    return kinds[-2:] == _PASS_THROUGH and len(kinds) <= 3


def _class_function(mro: tuple[type, ...], name: str, start: int) -> tuple[int, Any] | None:
    """The first definition of ``name`` in ``mro[start:]``, with its index (staticmethod etc. unwrapped)."""
    for index in range(start, len(mro)):
        found = vars(mro[index]).get(name)
        if found is not None:
            return index, getattr(found, "__func__", found)
    return None


def _shim_callee(function: Any, name: str) -> tuple[str, bool] | None:
    """Which method a pass-through ``name`` calls (``<name>_text`` or ``name``) and whether via super()."""
    names = getattr(getattr(function, "__code__", None), "co_names", ())
    via_super = "super" in names
    for callee in (f"{name}_text", name):
        if callee in names and (callee != name or via_super):
            return callee, via_super
    return None


def forward_target(generator: Any, method: str) -> Callable[..., Any]:
    """The function whose signature says what ``generator.<method>(...)`` really takes."""
    own = getattr(generator, "__dict__", {})
    if method in own:  # set on the instance (tests wrap calls this way)
        return own[method]
    mro, name, start = type(generator).__mro__, method, 0
    function: Any = getattr(generator, method)
    for _ in range(_MAX_SHIM_DEPTH):
        found = _class_function(mro, name, start)
        if found is None:
            break
        index, function = found
        callee = _shim_callee(function, name) if _is_pass_through(function) else None
        if callee is None:
            break
        name, via_super = callee
        start = index + 1 if via_super else 0
    return function


# ------------------------------------------------------------------------------------------ adapter


def _primary(out: Any) -> Any:
    """The tokens or logits of a generator's output: with on-device sampling tt-metal returns
    ``(tokens, log_probs)`` from prefill_forward_text, and process_decode_output_host returns
    ``(logits or tokens, log_probs)`` (generator.py at 421a32c1); the runner wants the first."""
    return out[0] if isinstance(out, tuple) else out


def initialize_kwargs(
    initialize: Callable[..., Any], n_layers: int | None, tt_data_parallel: int, optimizations: str | None
) -> dict[str, Any]:
    """The keyword arguments of ``initialize_vllm_model`` this release takes.

    ``n_layers`` goes only when set (Tenstorrent's loader never passes it); ``tt_data_parallel`` and
    ``optimizations`` wherever the signature names them, ``optimizations=None`` when the TT option is unset,
    as Tenstorrent's loader passes it (vllm-tt-plugin e3fc849 loader.py). Generators without them
    (generator_vllm.py at 4d4a062913c5f5273ce33ce93fc7f2bb6543166c has no ``optimizations``; its Mllama
    class no ``n_layers``) get nothing, unless a value they cannot honour was asked for.
    """
    kwargs: dict[str, Any] = {}
    wanted = {"n_layers": n_layers, "tt_data_parallel": tt_data_parallel, "optimizations": optimizations}
    unset = {"n_layers": None, "tt_data_parallel": 1, "optimizations": None}
    for name, value in wanted.items():
        if accepts(initialize, name):
            if name != "n_layers" or value is not None:
                kwargs[name] = value
        elif value != unset[name]:
            raise TypeError(
                f"{getattr(initialize, '__qualname__', initialize)} takes no {name} (this tt-metal release), "
                f"but {name}={value!r} was asked for."
            )
    return kwargs


class TTMetalModel:
    """A tt-metal generator seen through the contract (see ``contract.py``); build with
    :func:`adapter_for`. Calls go to the generator with the arguments its release takes, and its outputs
    come back in the contract's types."""

    generator_cls: ClassVar[type]
    model_capabilities: ClassVar[dict[str, Any]] = {}

    def __init__(self, generator: Any, trace: TraceFlags, data_parallel: int = 1) -> None:
        self.generator = generator
        self.trace = trace
        self.data_parallel = data_parallel
        self._accepted: dict[tuple[str, str], bool] = {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the adapter lacks: expose the generator's optional hooks, so
        # getattr(model, hook, None) is None exactly when the generator has no such hook.
        generator = self.__dict__.get("generator")
        if generator is None or name not in OPTIONAL_HOOKS + ASYNC_DECODE_HOOKS:
            raise AttributeError(name)
        hook = getattr(generator, name)
        if name != "process_decode_output_host":
            return hook

        @functools.wraps(hook)
        def processed(*args: Any, **kwargs: Any) -> Any:
            return _primary(hook(*args, **kwargs))

        return processed

    def _takes(self, method: str, name: str) -> bool:
        key = (method, name)
        if key not in self._accepted:
            self._accepted[key] = accepts(forward_target(self.generator, method), name)
        return self._accepted[key]

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config: Any,
        mesh_device: Any,
        max_batch_size: int,
        max_seq_len: int,
        n_layers: int | None = None,
        tt_data_parallel: int = 1,
        optimizations: str | None = None,
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
        initialize = cls.generator_cls.initialize_vllm_model
        kwargs = initialize_kwargs(initialize, n_layers, tt_data_parallel, optimizations)
        generator = initialize(hf_config, mesh, max_batch_size, max_seq_len, **kwargs)
        return cls(generator, trace_flags(trace_mode), tt_data_parallel)

    def allocate_kv_cache(
        self, kv_cache_shape: tuple[int, int, int, int], dtype: torch.dtype, num_layers: int
    ) -> KVCache:
        # kv_cache_shape is per device (device/mesh.py kv_heads_per_device): tt-metal's
        # allocate_vllm_kv_cache replicates it on every device of every submesh.
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
        empty_slots: Sequence[int] | None = None,
        **extra: Any,
    ) -> torch.Tensor:
        """Generator.prefill_forward_text (tt-metal generator.py); ``extra`` (arguments beyond
        Tenstorrent's contract) goes to the generator unchanged. Returns logits, or the sampled tokens
        when ``sampling_params`` is given (tt-metal's ``(tokens, log_probs)``: its first element)."""
        kwargs: dict[str, Any] = {"page_table": page_table, "kv_cache": kv_cache, "prompt_lens": prompt_lens}
        starts = [] if start_pos is None else [int(s) for s in torch.as_tensor(start_pos).tolist()]
        if any(starts):
            if not self._takes("prefill_forward", "start_pos"):
                raise NotImplementedError(
                    f"{self.generator_cls.__name__} cannot prefill after a cached prefix (no start_pos)."
                )
            kwargs["start_pos"] = starts  # tt-metal takes a list of ints
        if self._takes("prefill_forward", "enable_trace"):
            kwargs["enable_trace"] = self.trace.prefill if enable_trace is None else enable_trace
        if empty_slots is not None:
            kwargs.update(self._slots_kwargs(list(empty_slots)))
        if sampling_params is not None:
            kwargs["sampling_params"] = for_generator(sampling_params)
        return _primary(self.generator.prefill_forward(tokens, **kwargs, **extra))

    def _slots_kwargs(self, empty_slots: list[int]) -> dict[str, Any]:
        """``empty_slots`` where the generator takes it: tt-metal seeds a slot's sampling state from it
        and picks the data-parallel submesh by it (default ``range(B)``). Releases without it (generator.py
        at d9d95fa357fd2eb79e72ee3fa7daf1214bd9f233) keep no per-slot state, which is fine on one submesh."""
        if self._takes("prefill_forward", "empty_slots"):
            return {"empty_slots": empty_slots}
        if self.data_parallel > 1:
            raise NotImplementedError(
                f"{self.generator_cls.__name__} takes no empty_slots, so it cannot prefill into the submesh "
                f"of a decode slot: TT option data_parallel={self.data_parallel} needs a newer tt-metal."
            )
        return {}

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
        """Generator.decode_forward (decode_forward_text in older releases). Read from the device, the
        output is logits or tokens (tt-metal's ``(out, log_probs)``: its first element); unread, the
        device output goes back unchanged for ``read_decode_output``."""
        kwargs: dict[str, Any] = {
            "page_table": page_table,
            "kv_cache": kv_cache,
            "enable_trace": self.trace.decode if enable_trace is None else enable_trace,
            "read_from_device": read_from_device,
            "sampling_params": for_generator(sampling_params),
        }
        # Older generators take no reset_batch (generator.py at d9d95fa3: they re-upload their traced
        # decode inputs every step unless they sample on the device, which they only do greedy).
        if reset_batch and self._takes("decode_forward", "reset_batch"):
            kwargs["reset_batch"] = True
        out = self.generator.decode_forward(tokens, start_pos, **kwargs)
        return _primary(out) if read_from_device else out


# ---------------------------------------------------------------------------------- optional hooks


def call_with_accepted(
    hook: Callable[..., Any], offered: dict[str, Any], named_only: frozenset[str] = frozenset()
) -> Any:
    """Call ``hook`` with the keyword arguments of ``offered`` it takes; its signatures differ between
    tt-metal releases. A hook with ``**kwargs`` gets everything but ``named_only`` (arguments only some
    releases know, passed only where named). A required argument we cannot supply is an error naming it."""
    try:
        parameters = inspect.signature(hook).parameters
    except (TypeError, ValueError):
        return hook(**{name: value for name, value in offered.items() if name not in named_only})
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return hook(**{k: v for k, v in offered.items() if k not in named_only or k in parameters})
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
    """The model's own KV budget in tokens across all users (``get_max_tokens_all_users``), or None.
    Offered the keywords Tenstorrent's worker passes (vllm-tt-plugin e3fc849 worker.py
    ``get_num_available_blocks_tt``); tt-metal's classes take them through ``**kwargs``."""
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


@dataclass(frozen=True)
class WarmUpOffer:
    """What one warm-up hook is offered (call_with_accepted passes what its release takes)."""

    offered: dict[str, Any]
    named_only: frozenset[str]


# Warm-up arguments only some tt-metal releases know: warmup_model_prefill/decode's
# ``non_greedy_decoding_on_device`` (generator.py at 421a32c1, models/common/warmup/warmup_utils.py at
# 9f66942977ee00fda5b43291527cf5d8ee6d7a1d), ``greedy_only`` (the newest warmup_utils.py),
# DecodeWarmupMixin's ``num_gpu_blocks`` and ``sample_on_device_mode`` (models/common/warmup/
# decode_warmup.py at 276fab7c586c357e51ed201c420028ba378210b6).
_PREFILL_NAMED_ONLY = frozenset({"non_greedy_decoding_on_device"})
_DECODE_NAMED_ONLY = _PREFILL_NAMED_ONLY | {"greedy_only", "num_gpu_blocks", "sample_on_device_mode"}


def warm_up_offers(
    model: Any, kv_cache: KVCache, max_batch_size: int, num_blocks: int, sample_on_device_mode: str | None
) -> tuple[WarmUpOffer, WarmUpOffer]:
    """The prefill and decode warm-up arguments (without ``enable_trace``).

    As Tenstorrent's ``warmup_model`` (vllm-tt-plugin e3fc849 model_runner.py): prefill prepares device
    sampling only for mode "all" (prefill samples on the device only then), decode for "all" and
    "decode_only". ``sample_on_device_mode`` is None unless the runner may ask the model to sample.
    Random sampling is warmed up too unless the model is greedy-only (``max_device_top_k`` 0).
    """
    prefill_samples = sample_on_device_mode == "all"
    decode_samples = sample_on_device_mode in ("all", "decode_only")
    random_ok = device_max_top_k(model) > 0
    prefill = {
        "kv_cache": kv_cache,
        "can_sample_on_device": prefill_samples,
        "non_greedy_decoding_on_device": prefill_samples and random_ok,
    }
    decode = {
        "kv_cache": kv_cache,
        "max_batch_size": max_batch_size,
        "num_blocks": num_blocks,
        "can_sample_on_device": decode_samples,
        "non_greedy_decoding_on_device": decode_samples and random_ok,
        "greedy_only": decode_samples and not random_ok,
        "num_gpu_blocks": num_blocks,
        "sample_on_device_mode": sample_on_device_mode if decode_samples else None,
    }
    return WarmUpOffer(prefill, _PREFILL_NAMED_ONLY), WarmUpOffer(decode, _DECODE_NAMED_ONLY)


def _rearm_prefill_warm_up(model: Any) -> None:
    """tt-metal's Generator runs its prefill warm-up once (``already_warmed_up_prefill``); clear the flag
    so the trace-capture phase runs it again, as Tenstorrent's runner does."""
    target = getattr(model, "__dict__", {}).get("generator", model)
    if hasattr(target, "already_warmed_up_prefill"):
        target.already_warmed_up_prefill = False


def warm_up(
    model: Any,
    *,
    kv_cache: KVCache,
    trace: TraceFlags,
    max_batch_size: int,
    num_blocks: int,
    sample_on_device_mode: str | None = None,
) -> bool:
    """Run the model's warm-up hooks if it has any; True if one ran.

    Two phases, as Tenstorrent's ``warmup_model``: every hook untraced first (all kernels compiled),
    then, for what ``trace`` traces, again with ``enable_trace=True`` to capture the traces, so no
    compilation allocates behind a captured trace (tt-metal 5043de3df5, cited there). ``num_blocks`` is
    the decode page table's width, which the captured trace keeps.
    """
    prefill = getattr(model, "warmup_model_prefill", None)
    decode = getattr(model, "warmup_model_decode", None)
    if prefill is None and decode is None:
        return False
    prefill_offer, decode_offer = warm_up_offers(
        model, kv_cache, max_batch_size, num_blocks, sample_on_device_mode
    )
    phases = [(False, True, True), (True, trace.prefill, trace.decode)]
    for enable_trace, run_prefill, run_decode in phases:
        if prefill is not None and run_prefill:
            _run_warm_up(prefill, prefill_offer, enable_trace)
        if decode is not None and run_decode:
            _run_warm_up(decode, decode_offer, enable_trace)
        if not enable_trace:
            _rearm_prefill_warm_up(model)
    return True


def _run_warm_up(hook: Callable[..., Any], offer: WarmUpOffer, enable_trace: bool) -> None:
    call_with_accepted(hook, {**offer.offered, "enable_trace": enable_trace}, offer.named_only)
