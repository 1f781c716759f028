"""TTPlatform: what vLLM asks of a hardware platform, for Tenstorrent devices and the host device.

vLLM keeps scheduling, tokenising, the OpenAI server and metrics. This class tells vLLM which worker
runs the model, which of vLLM's features the TT runner can honour (and refuses the rest with a clear
message before the engine starts), and rewrites the model architecture to its ``TT``-prefixed
implementation.
"""

# ruff: noqa: E402 (vLLM is imported through compat first; see below)
from __future__ import annotations

from tt_vllm_plugin.compat import import_vllm_aside

# Before this module's own vLLM imports: vLLM 0.25.1, 0.26.0 and 0.34 import this module while vLLM itself
# is being imported, which fails while this module is only half executed (see compat.import_vllm_aside).
import_vllm_aside(__name__)

import os
from typing import TYPE_CHECKING, Any

import psutil
import torch
from vllm.platforms.interface import Platform, PlatformEnum

from tt_vllm_plugin.activation import DeviceChoice, resolve_device
from tt_vllm_plugin.compat import multimodal as mm_compat
from tt_vllm_plugin.device.cpu_dtype import REDUCED_PRECISION, CpuArithmetic, decide_compute_dtype
from tt_vllm_plugin.device.host import HOST_GOMP_SPINCOUNT, host_torch_device
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models import registry
from tt_vllm_plugin.models.contract import (
    MM_LIMITS_PER_PROMPT,
    SUPPORTS_CHUNKED_PREFILL,
    SUPPORTS_PREFIX_CACHING,
    SUPPORTS_PROMPT_LOGPROBS,
    takes_images,
)
from tt_vllm_plugin.options import report_ignored_options, tt_options_from_vllm_config
from tt_vllm_plugin.refusals import (
    HOST_SAMPLER_UNSUPPORTED,
    PREFIX,
    UnsupportedConfiguration,
    host_sampler_refusal,
    reject_images_without_processor,
    reject_multimodal_without_images,
    reject_unsupported,
    reject_unsupported_caching,
)
from tt_vllm_plugin.version_check import check_vllm_version

if TYPE_CHECKING:
    from vllm.config import VllmConfig

logger = get_logger(__name__)

WORKER_QUALNAME = "tt_vllm_plugin.worker.worker.TTWorker"
# Tenstorrent's server and examples use 64-token KV blocks; the host models run any size, and vLLM's
# prefix cache hits land on block boundaries, so the host device keeps vLLM's smaller default.
TTNN_BLOCK_SIZE = 64
HOST_BLOCK_SIZE = 16


def _tune_openmp_for_the_engine_process() -> None:
    """Set a short OpenMP spin-wait for the engine core (it inherits the environment at spawn).

    The engine core's OpenMP threads share the cores with the API-server (or ``vllm.LLM``) process and
    with whatever else runs on the machine. A thread that spins while its partner is preempted burns its
    time slice, and every barrier of the step (each matmul, norm and attention call is one) then waits
    for a time slice; a thread that sleeps too soon pays a wake-up at every barrier instead (on a
    virtual machine an idle vCPU halts, and waking it costs tens of microseconds). Measured on a 2-core
    VM (issue 29, bf16 32 x 128 / 1 x 128 tok/s, benchmarks/RESULTS.md): libgomp's default (300,000)
    and 10,000 collapse as soon as another process wants a core (one busy loop beside it: 213 / 12
    with 10,000); 100 sleeps too soon on an idle machine (777-823 / 50-53); 1,000 is within noise of
    the best idle figures (868-971 / 70-83), the best with two busy loops beside it (427 / 37 against
    334 / 38 with 100), and in between with one (476 / 38 against 545 / 64 with 100). No spin at all
    (OMP_WAIT_POLICY=PASSIVE) costs batch 1 on an idle machine. vLLM's native CPU platform is
    unaffected by this variable. A value the user set, or OMP_WAIT_POLICY, wins.
    """
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", HOST_GOMP_SPINCOUNT)


class TTPlatform(Platform):
    _enum = PlatformEnum.OOT
    device_name: str = "tt"
    # The runner works on host tensors and hands them to the model contract; "cpu" is the torch
    # device type vLLM uses for its own buffers (a custom name would need torch's privateuse1).
    device_type: str = "cpu"
    dispatch_key: str = "CPU"
    dist_backend: str = "gloo"
    simple_compile_backend: str = "eager"
    # The served model's declared capabilities, known once check_and_update_config has run; the
    # per-request checks in validate_request (a classmethod, given no config) read them.
    _model_capabilities: dict[str, bool] = {}
    _vocab_size: int = 0  # the served model's, for validate_request; 0 = unknown

    @property
    def supported_dtypes(self) -> list[torch.dtype]:
        # fp32 first: an fp32 checkpoint with dtype "auto" stays fp32 (vLLM's default puts bf16 first).
        return [torch.float32, torch.bfloat16, torch.float16]

    @classmethod
    def get_device_name(cls, device_id: int = 0) -> str:
        return "tt"

    @classmethod
    def get_device_total_memory(cls, device_id: int = 0) -> int:
        return psutil.virtual_memory().total

    @classmethod
    def set_device(cls, device: torch.device) -> None:
        pass  # one device per worker; nothing to select

    @classmethod
    def manual_seed_all(cls, seed: int) -> None:
        torch.manual_seed(seed)

    @classmethod
    def is_pin_memory_available(cls) -> bool:
        return False

    @classmethod
    def support_hybrid_kv_cache(cls) -> bool:
        """Yes, as Tenstorrent's platform says: a model whose ``get_kv_cache_spec`` mixes attention types
        gets several KV cache groups and one page table per layer (``worker/kv_cache_layout.py``). With
        False (vLLM's default), vLLM turns its hybrid KV cache manager off and merges sliding-window specs
        into full attention. A model with one spec type gets one group either way."""
        return True

    @classmethod
    def import_kernels(cls) -> None:
        pass  # the TT runner uses no vLLM custom ops

    @classmethod
    def pre_register_and_update(cls, parser: Any = None) -> None:
        """Called before vLLM builds its ModelConfig: make the TT architectures, and the bare names
        TT_MODEL_CLASS_OVERRIDES names, known to vLLM's registry (Tenstorrent's plugin registers there
        too), so a checkpoint whose architecture only an override serves gets past vLLM's own checks."""
        super().pre_register_and_update(parser)
        try:
            registry.register_with_vllm()
        except Exception as error:  # check_and_update_config raises it again, where it stops the start
            logger.warning("TT models not registered with vLLM yet: %s", error)

    @classmethod
    def update_block_size_for_backend(cls, vllm_config: VllmConfig) -> None:
        pass  # set in check_and_update_config; vLLM's version asks attention backends we do not use

    @classmethod
    def check_and_update_config(cls, vllm_config: VllmConfig) -> None:
        vllm_version = check_vllm_version()
        device = resolve_device()
        # Refuse bad TT options before the engine starts; say once which ones this device ignores.
        options = tt_options_from_vllm_config(vllm_config)
        report_ignored_options(options, device)
        reject_unsupported(vllm_config)

        # A forked engine core deadlocks in OpenMP when the parent already ran torch ops (a test that
        # computed a reference, an app that preprocessed with torch); vLLM's CPU platform does the same.
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        if device is DeviceChoice.HOST:
            _tune_openmp_for_the_engine_process()
        # Before the engine core starts: it inherits where to write the tt_vllm_* metrics, and this
        # process's /metrics collects them (see worker/metrics.py for why).
        from tt_vllm_plugin.worker.metrics import export_engine_metrics

        export_engine_metrics()

        parallel = vllm_config.parallel_config
        if parallel.worker_cls == "auto":
            parallel.worker_cls = WORKER_QUALNAME

        from vllm.config import CompilationMode
        from vllm.config.compilation import CUDAGraphMode

        # vLLM compiles and graph-captures its own model code; the TT runner does not run it.
        compilation = vllm_config.compilation_config
        compilation.mode = CompilationMode.NONE
        compilation.cudagraph_mode = CUDAGraphMode.NONE
        compilation.cudagraph_capture_sizes = []

        cache = vllm_config.cache_config
        if not cache.user_specified_block_size:
            cache.block_size = TTNN_BLOCK_SIZE if device is DeviceChoice.TTNN else HOST_BLOCK_SIZE

        model_config = vllm_config.model_config
        if model_config is not None and device is DeviceChoice.HOST:
            _choose_host_compute_dtype(model_config)
        if model_config is not None:
            model_cls = _rewrite_architecture(model_config)
            _check_model_config(model_cls, model_config)
            reject_multimodal_without_images(model_config, model_cls)
            _gate_on_capabilities(vllm_config, model_cls)
            if takes_images(model_cls):
                reject_images_without_processor(model_config.hf_config.architectures[0])
                _configure_images(vllm_config, model_cls)
            reject_unsupported_caching(vllm_config, device, options)
            cls._model_capabilities = dict(model_cls.model_capabilities)
            cls._vocab_size = model_config.get_vocab_size()

        logger.info(
            "Platform tt (tt-vllm-plugin) active on the %s device; vLLM %s",
            device.value,
            vllm_version,
        )

    @classmethod
    def validate_request(cls, processed_inputs: Any, params: Any) -> None:
        # VLLMValidationError, not ValueError: vLLM's async engine turns only its client errors into
        # HTTP 400s; anything else becomes an empty 500.
        from vllm.exceptions import VLLMValidationError
        from vllm.sampling_params import SamplingParams

        if not isinstance(params, SamplingParams):
            raise VLLMValidationError(
                f"{type(params).__name__} requests (pooling/embedding) are not supported on the tt platform; "
                "only text generation is."
            )
        if (problem := host_sampler_refusal(params)) is not None:
            field = next(name for name in HOST_SAMPLER_UNSUPPORTED if problem.startswith(name))
            raise VLLMValidationError(problem, parameter=field)
        if params.prompt_logprobs is not None and not cls._model_capabilities.get(
            SUPPORTS_PROMPT_LOGPROBS, False
        ):
            # Tenstorrent's contract returns last-position logits only; our host models can do more.
            raise VLLMValidationError(
                "prompt_logprobs is not supported by this model on the tt platform; "
                "remove it from the request.",
                parameter="prompt_logprobs",
            )
        # vLLM checks prompt ids against max(tokenizer, model) vocab, and not at all without a tokenizer
        # (--skip-tokenizer-init); an id past the model's embedding table kills the engine core.
        prompt_ids = processed_inputs.get("prompt_token_ids") if isinstance(processed_inputs, dict) else None
        vocab = cls._vocab_size
        if prompt_ids and vocab and (min(prompt_ids) < 0 or max(prompt_ids) >= vocab):
            bad = next(t for t in prompt_ids if t < 0 or t >= vocab)
            raise VLLMValidationError(
                f"Prompt token id {bad} is outside the model's vocabulary (0..{vocab - 1}); "
                "send only token ids the model knows.",
                parameter="prompt",
                value=bad,
            )


def _choose_host_compute_dtype(model_config: Any) -> None:
    """On a CPU, compute in float32 where the model's bf16/fp16 arithmetic would be emulated (see
    device/cpu_dtype.py); the KV cache and the weights follow ``model_config.dtype``. Said in one line
    whenever the model is bf16/fp16, whichever way it is decided."""
    if host_torch_device().type != "cpu":
        return
    decision = decide_compute_dtype(model_config.dtype, CpuArithmetic.of_this_machine())
    if decision.model_dtype in REDUCED_PRECISION:
        logger.info(
            "Host device computes in %s: %s", str(decision.dtype).removeprefix("torch."), decision.reason
        )
    model_config.dtype = decision.dtype


def _rewrite_architecture(model_config: Any) -> type:
    """Point the model at its TT implementation (``LlamaForCausalLM`` -> ``TTLlamaForCausalLM``)."""
    hf_config = model_config.hf_config
    architectures = list(getattr(hf_config, "architectures", None) or [])
    if not architectures:
        raise UnsupportedConfiguration(
            f"The model config of {model_config.model!r} names no architecture; "
            f"supported architectures: {', '.join(registry.supported_architectures())}."
        )
    arch = architectures[0]
    tt_arch = arch if arch.startswith("TT") else registry.tt_architecture(arch)
    model_cls = registry.load_model_class(tt_arch)  # raises listing the supported architectures
    registry.register_with_vllm()
    hf_config.architectures = [tt_arch]
    return model_cls


def _check_model_config(model_cls: type, model_config: Any) -> None:
    """The host models refuse configs they cannot compute exactly (quantized weights, windows or RoPE
    they do not do) in their ``check_config``; asked here as well, so the refusal comes before the
    engine starts instead of when the worker loads the model. tt-metal's classes have no such hook."""
    check = getattr(model_cls, "check_config", None)
    if callable(check):
        try:
            check(model_config.hf_config, model_config.max_model_len)
        except NotImplementedError as error:
            raise UnsupportedConfiguration(f"{PREFIX}{error}") from error


def _gate_on_capabilities(vllm_config: VllmConfig, model_cls: type) -> None:
    """Turn off prefix caching / chunked prefill when the model does not declare them."""
    capabilities = model_cls.model_capabilities
    cache = vllm_config.cache_config
    if cache.enable_prefix_caching and not capabilities.get(SUPPORTS_PREFIX_CACHING, False):
        logger.info("Prefix caching disabled: %s does not support it", model_cls.__name__)
        cache.enable_prefix_caching = False
    scheduler = vllm_config.scheduler_config
    if scheduler.enable_chunked_prefill and not capabilities.get(SUPPORTS_CHUNKED_PREFILL, False):
        logger.info("Chunked prefill disabled: %s does not support it", model_cls.__name__)
        scheduler.enable_chunked_prefill = False
        # Without chunking, one prompt must fit in a step.
        scheduler.max_num_batched_tokens = max(
            scheduler.max_num_batched_tokens, vllm_config.model_config.max_model_len
        )


# Modalities vLLM's processors take that the runner does not pass to a model (it gathers images only).
_REFUSED_MODALITIES = ("video", "audio")


def _configure_images(vllm_config: VllmConfig, model_cls: type) -> None:
    """A model that takes images: vLLM's processor refuses, with a 400 naming the limit, more images per
    prompt than the class allows (``mm_limits_per_prompt``) and any video or audio, before anything reaches
    the device; with chunked prefill an image is never split between two chunks (a model computes an
    image's tokens together: bidirectional attention inside Gemma 3's images, one vision pass per image).
    Prefix caching may stay on: vLLM's block hashes include the images' hashes (``mm_features``).
    The processor makes ``pixel_values`` as transformers' does (rescaled, normalised): tt-metal's
    generators and the host models take them so, not vLLM's raw pixels for its own models' forward."""
    limits = {modality: 0 for modality in _REFUSED_MODALITIES}
    image_limit = (getattr(model_cls, MM_LIMITS_PER_PROMPT, None) or {}).get("image")
    if image_limit is not None:
        limits["image"] = int(image_limit)
    mm_config = vllm_config.model_config.multimodal_config
    if mm_config is not None:
        mm_compat.limit_mm_per_prompt(mm_config, limits)
        mm_compat.processor_normalizes_images(mm_config)
    scheduler = vllm_config.scheduler_config
    if scheduler.enable_chunked_prefill:
        scheduler.disable_chunked_mm_input = True
