"""A tt-metal generator class behind our model contract.

tt-metal's vLLM generator classes (found by ``generators.py``) already speak the contract. What sits between
them and our runner, which calls every model the same way:

- :class:`TTMetalModel` (one subclass per generator class, :func:`adapter_for`) takes the TT options
  that travel with the open mesh (:class:`~tt_vllm_plugin.device.ttnn.TTNNDevice`: trace mode,
  optimizations) and turns them into the generator's arguments (``enable_trace``, ``optimizations``),
  passes only the arguments the installed generator accepts (``signatures.py``: their signatures moved
  between tt-metal releases), and forwards the optional hooks, which ``optional_hooks.py`` calls on any
  contract model that offers them;
- on-device sampling: the runner's :class:`~tt_vllm_plugin.models.device_sampling.DeviceSamplingParams`
  become tt-metal's own ``SamplingParams`` (``sampling.py``);
- images: each image class gets the per-row features its prefill reads, in the form it reads them
  (``images.py``), and declares it (``supports_multimodal``, and Qwen2.5-VL's and Qwen3-VL's one image
  per prompt in ``mm_limits_per_prompt``); their ``(logits, rope_deltas)`` comes back whole and their
  ``rope_deltas_all_users`` goes to their decode; Qwen3-VL prefills one row per call.

None of this has run against tt-metal here (no card, no ``models`` package on these machines); the
adapter is exercised around host models by the conformance suite (tests/contract), which is also how
a Tenstorrent developer checks it against a real generator on hardware.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import torch

from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models.contract import (
    MM_LIMITS_PER_PROMPT,
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_SAMPLE_ON_DEVICE,
    TAKES_IMAGES,
    KVCache,
)
from tt_vllm_plugin.models.optional_hooks import (
    ASYNC_DECODE_HOOKS,
    KV_CACHE_HOOKS,
    OPTIONAL_HOOKS,
    TraceFlags,
    async_read_problem,
    trace_flags,
)
from tt_vllm_plugin.models.tt_metal import images
from tt_vllm_plugin.models.tt_metal.images import ImageConvention, Packing
from tt_vllm_plugin.models.tt_metal.sampling import for_generator
from tt_vllm_plugin.models.tt_metal.signatures import accepts, forward_chain, initialize_kwargs

logger = get_logger(__name__)


@functools.cache
def adapter_for(generator_cls: type) -> type[TTMetalModel]:
    """The contract class the runner uses for ``generator_cls`` (one per generator class)."""
    capabilities = dict(getattr(generator_cls, "model_capabilities", None) or {})
    if capabilities.get(SUPPORTS_ASYNC_DECODE) and (problem := async_read_problem(generator_cls)):
        logger.warning("%s: %s; decoding synchronously.", generator_cls.__name__, problem)
        capabilities[SUPPORTS_ASYNC_DECODE] = False
    attributes: dict[str, Any] = {"generator_cls": generator_cls, "model_capabilities": capabilities}
    convention = images.convention_for(generator_cls)
    if convention is not None:
        attributes |= {"image_convention": convention, TAKES_IMAGES: True}
        if convention.max_images is not None:
            attributes[MM_LIMITS_PER_PROMPT] = {"image": convention.max_images}
        if not convention.prefill_samples and capabilities.get(SUPPORTS_SAMPLE_ON_DEVICE):
            # Its prefill returns logits whatever sampling_params it gets: sample on the host instead.
            logger.info("%s: its prefill does not sample; sampling on the host.", generator_cls.__name__)
            capabilities[SUPPORTS_SAMPLE_ON_DEVICE] = False
    spec_hook = getattr(generator_cls, "get_kv_cache_spec", None)
    if spec_hook is not None:  # a classmethod of the generator (tt-metal's hybrid models)
        attributes["get_kv_cache_spec"] = staticmethod(spec_hook)
    return type(f"TTMetal{generator_cls.__name__}", (TTMetalModel,), attributes)


def _primary(out: Any) -> Any:
    """The tokens or logits of a generator's output: with on-device sampling tt-metal returns
    ``(tokens, log_probs)`` from prefill_forward_text, and process_decode_output_host returns
    ``(logits or tokens, log_probs)`` (generator.py at 421a32c1); the runner wants the first."""
    return out[0] if isinstance(out, tuple) else out


def _row_of(tables: list[torch.Tensor] | None, i: int) -> list[torch.Tensor] | None:
    return None if tables is None else [table[i : i + 1] for table in tables]


def _concatenate_rows(outs: list[Any], with_rope_deltas: bool) -> Any:
    """One-row prefill outputs laid out as one batched call's (``(logits, rope_deltas)`` pairs too)."""
    if not with_rope_deltas:
        return torch.cat(outs)
    logits = torch.cat([out[0] for out in outs])
    deltas = torch.cat([torch.as_tensor(out[1]).reshape(1, -1) for out in outs])
    return logits, deltas


class TTMetalModel:
    """A tt-metal generator seen through the contract (see ``contract.py``); build with
    :func:`adapter_for`. Calls go to the generator with the arguments its release takes, and its outputs
    come back in the contract's types."""

    generator_cls: ClassVar[type]
    model_capabilities: ClassVar[dict[str, Any]] = {}
    image_convention: ClassVar[ImageConvention | None] = None

    def __init__(self, generator: Any, trace: TraceFlags, data_parallel: int = 1) -> None:
        self.generator = generator
        self.trace = trace
        self.data_parallel = data_parallel
        self._accepted: dict[tuple[str, str], bool] = {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the adapter lacks: expose the generator's optional hooks, so
        # getattr(model, hook, None) is None exactly when the generator has no such hook.
        generator = self.__dict__.get("generator")
        if generator is None or name not in OPTIONAL_HOOKS + ASYNC_DECODE_HOOKS + KV_CACHE_HOOKS:
            raise AttributeError(name)
        hook = getattr(generator, name)
        if name != "process_decode_output_host":
            return hook

        @functools.wraps(hook)
        def processed(*args: Any, **kwargs: Any) -> Any:
            return _primary(hook(*args, **kwargs))

        return processed

    def takes_keyword(self, method: str, name: str) -> bool:
        """Whether ``generator.<method>`` takes ``name``: a shim on the way names it (tt-metal's hybrid
        classes take ``page_tables_per_layer`` themselves) or the method the call ends in does. The
        runner asks this of any model that answers it."""
        key = (method, name)
        if key not in self._accepted:
            chain = forward_chain(self.generator, method)
            self._accepted[key] = any(accepts(function, name) for function in chain)
        return self._accepted[key]

    _takes = takes_keyword

    def _per_layer_kwargs(
        self, method: str, page_tables_per_layer: list[torch.Tensor] | None
    ) -> dict[str, Any]:
        """``page_tables_per_layer`` (several KV cache groups) where the generator takes it."""
        if page_tables_per_layer is None:
            return {}
        if not self._takes(method, "page_tables_per_layer"):
            raise NotImplementedError(
                f"{self.generator_cls.__name__}.{method} takes no page_tables_per_layer, but its KV cache "
                "has several groups (hybrid attention)."
            )
        return {"page_tables_per_layer": page_tables_per_layer}

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
        adapter = cls(generator, trace_flags(trace_mode), tt_data_parallel)
        if tt_data_parallel > 1 and not adapter._places_rows():
            # Refused at start, not at the first prefill (which would fail the request and the engine).
            raise ValueError(
                f"{cls.generator_cls.__name__}'s prefill takes no empty_slots in the installed tt-metal, so "
                f"its rows cannot go to a data-parallel submesh: set TT option data_parallel=1 for this "
                f"model (it is {tt_data_parallel})."
            )
        return adapter

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
        page_tables_per_layer: list[torch.Tensor] | None = None,
        **extra: Any,
    ) -> torch.Tensor:
        """Generator.prefill_forward_text (tt-metal generator.py); image features (per-row keywords,
        ``contract.py``) in the form the class reads them (``images.py``); the rest of ``extra``
        (arguments beyond Tenstorrent's contract) goes to the generator unchanged. Returns logits, or the
        sampled tokens when ``sampling_params`` is given (tt-metal's ``(tokens, log_probs)``: its first
        element); Qwen2.5-VL's and Qwen3-VL's ``(logits, rope_deltas)`` whole. A class that takes one row
        per call (``one_row_per_call``) gets one call per row, their outputs concatenated."""
        features = images.take_image_fields(extra)
        convention = self._image_convention(features, tokens.shape[0])
        if sampling_params is not None and convention is not None and not convention.prefill_samples:
            raise ValueError(
                f"{self.generator_cls.__name__}'s prefill does not sample (it returns logits); "
                "sample on the host (its model_capabilities say so)."
            )
        if convention is not None and convention.one_row_per_call and tokens.shape[0] > 1:
            outs = [
                self.prefill_forward(
                    tokens[i : i + 1],
                    page_table[i : i + 1],
                    kv_cache,
                    prompt_lens[i : i + 1],
                    start_pos=None if start_pos is None else start_pos[i : i + 1],
                    enable_trace=enable_trace,
                    empty_slots=None if empty_slots is None else list(empty_slots)[i : i + 1],
                    page_tables_per_layer=_row_of(page_tables_per_layer, i),
                    **{name: per_row[i : i + 1] for name, per_row in features.items()},
                    **extra,
                )
                for i in range(tokens.shape[0])
            ]
            return _concatenate_rows(outs, convention.returns_rope_deltas)
        if convention is not None and convention.packing is Packing.MISTRAL3_IMAGES:
            return self._prefill_mistral3(tokens, page_table, kv_cache, prompt_lens, start_pos, features)
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
            if features and convention is not None and not convention.traced_with_images:
                kwargs["enable_trace"] = False
        if empty_slots is not None:
            kwargs.update(self._slots_kwargs(list(empty_slots)))
        if sampling_params is not None:
            kwargs["sampling_params"] = for_generator(sampling_params)
        kwargs.update(self._per_layer_kwargs("prefill_forward", page_tables_per_layer))
        if convention is not None:
            kwargs.update(images.per_row_keywords(convention, features))
        out = self.generator.prefill_forward(tokens, **kwargs, **extra)
        return out if convention is not None and convention.returns_rope_deltas else _primary(out)

    def _image_convention(self, features: dict[str, Any], batch: int) -> ImageConvention | None:
        """This class's image convention; images for a class without one are an error naming it."""
        if features and self.image_convention is None:
            raise ValueError(
                f"{self.generator_cls.__name__} takes no images, but the prefill has {sorted(features)}."
            )
        images.check_rows(features, batch, self.generator_cls.__name__)
        return self.image_convention

    def _prefill_mistral3(
        self,
        tokens: torch.Tensor,
        page_table: torch.Tensor,
        kv_cache: KVCache,
        prompt_lens: torch.Tensor | Sequence[int],
        start_pos: torch.Tensor | Sequence[int] | None,
        features: dict[str, Any],
    ) -> torch.Tensor:
        """tt-metal's Mistral3 prefill reads ``tokens``, ``prompt_lens``, ``page_table``, ``kv_cache`` and
        ``images`` from its keywords and drops everything else (generator_vllm.py @ 3dfeae94)."""
        name = self.generator_cls.__name__
        if start_pos is not None and any(int(s) for s in torch.as_tensor(start_pos).tolist()):
            raise NotImplementedError(
                f"{name} cannot prefill after a cached prefix (its prefill drops start_pos)."
            )
        # Its prefill drops empty_slots: data_parallel > 1 was refused at start (_places_rows).
        kwargs: dict[str, Any] = {"page_table": page_table, "kv_cache": kv_cache, "prompt_lens": prompt_lens}
        if "pixel_values" in features:
            kwargs["images"] = images.mistral3_images(features["pixel_values"])
        return _primary(self.generator.prefill_forward(tokens=tokens, **kwargs))

    def _places_rows(self) -> bool:
        """Whether the generator's prefill reads ``empty_slots`` (by name, or through ``**kwargs`` as its
        image convention says), which is how tt-metal picks each row's data-parallel submesh. Mistral 3's
        prefill drops every keyword but its own (generator_vllm.py @ 3dfeae94)."""
        convention = self.image_convention
        if convention is not None and convention.packing is Packing.MISTRAL3_IMAGES:
            return False
        through_kwargs = convention.reads_through_kwargs if convention else ()
        return self._takes("prefill_forward", "empty_slots") or "empty_slots" in through_kwargs

    def _slots_kwargs(self, empty_slots: list[int]) -> dict[str, Any]:
        """``empty_slots`` where the generator takes it: tt-metal seeds a slot's sampling state from it
        and picks the data-parallel submesh by it (default ``range(B)``). Releases without it (generator.py
        at d9d95fa357fd2eb79e72ee3fa7daf1214bd9f233) keep no per-slot state, which is fine on one submesh
        (more than one was refused at start: initialize_vllm_model)."""
        return {"empty_slots": empty_slots} if self._places_rows() else {}

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
        page_tables_per_layer: list[torch.Tensor] | None = None,
        rope_deltas_all_users: list[int] | None = None,
    ) -> torch.Tensor:
        """Generator.decode_forward (decode_forward_text in older releases). Read from the device, the
        output is logits or tokens (tt-metal's ``(out, log_probs)``: its first element); unread, the
        device output goes back unchanged for ``read_decode_output``. ``rope_deltas_all_users`` (one
        M-RoPE delta per slot) goes to the classes that take it (Qwen2.5-VL, Qwen3-VL)."""
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
        kwargs.update(self._per_layer_kwargs("decode_forward", page_tables_per_layer))
        if rope_deltas_all_users is not None:
            decode_keywords = self.image_convention.decode_keywords if self.image_convention else ()
            if images.ROPE_DELTAS not in decode_keywords:
                raise NotImplementedError(f"{self.generator_cls.__name__} takes no {images.ROPE_DELTAS}.")
            kwargs[images.ROPE_DELTAS] = list(rope_deltas_all_users)
        out = self.generator.decode_forward(tokens, start_pos, **kwargs)
        return _primary(out) if read_from_device else out
