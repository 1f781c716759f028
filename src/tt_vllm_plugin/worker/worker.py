"""TTWorker: the device, the model and the KV cache, for vLLM's v1 engine.

vLLM calls, in order: ``init_device`` -> ``load_model`` -> ``get_kv_cache_spec`` ->
``get_supported_kv_cache_layouts`` -> ``determine_available_memory`` -> ``initialize_from_config``
-> ``compile_or_warm_up_model``; then ``execute_model`` / ``sample_tokens`` every step.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil
from vllm.config import VllmConfig
from vllm.v1.core.sched.output import GrammarOutput, SchedulerOutput
from vllm.v1.kv_cache_interface import KVCacheConfig, KVCacheSpec
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.worker.worker_base import CompilationTimes, WorkerBase

from tt_vllm_plugin.activation import DeviceChoice, resolve_device
from tt_vllm_plugin.compat import memory_utilization
from tt_vllm_plugin.device.host import open_host_device, tolerate_missing_accelerator
from tt_vllm_plugin.device.ttnn import close_ttnn_device, open_ttnn_device
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models.optional_hooks import kv_token_budget, trace_flags, warm_up
from tt_vllm_plugin.options import tt_options_from_vllm_config
from tt_vllm_plugin.worker.fault_injection import record_engine_failure
from tt_vllm_plugin.worker.kv_cache_layout import bytes_per_block, full_attention_spec, kv_cache_spec
from tt_vllm_plugin.worker.metrics import engine_metrics
from tt_vllm_plugin.worker.model_runner import TTModelRunner
from tt_vllm_plugin.worker.startup_phases import EnginePhase, report_phase

logger = get_logger(__name__)

# Tenstorrent's fallback KV budget when a model names none (max_tokens_all_users).
DEFAULT_KV_CACHE_TOKENS = 131072
# The KV layout the contract uses per layer: (blocks, kv heads, tokens, head dim).
CONTRACT_KV_LAYOUT = "LBHNC"


class TTWorker(WorkerBase):
    def __init__(
        self,
        vllm_config: VllmConfig,
        local_rank: int,
        rank: int,
        distributed_init_method: str,
        is_driver_worker: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(vllm_config, local_rank, rank, distributed_init_method, is_driver_worker)
        self.options = tt_options_from_vllm_config(vllm_config)
        self.model_runner: TTModelRunner | None = None
        self.device_choice: DeviceChoice | None = None
        self._ttnn_device: Any = None  # the open mesh on the ttnn device, closed once in shutdown

    # ---- start-up -------------------------------------------------------------------------------

    def init_device(self) -> None:
        report_phase(EnginePhase.OPENING_DEVICE)
        self.device_choice = resolve_device()
        tolerate_missing_accelerator()
        if self.device_choice is DeviceChoice.TTNN:
            device = self._ttnn_device = open_ttnn_device(self.options)
        else:
            device = open_host_device(self.model_config.dtype)
        try:
            logger.info("tt worker on the %s device", device.name)
            self.model_runner = TTModelRunner(self.vllm_config, device, self.options)
            self.model_runner.metrics = engine_metrics(self.device_choice.value)
        except BaseException:
            # A mesh left open wedges the board for the next process: close it (the start-up error
            # is the one to report; a close error is only logged).
            try:
                self._close_ttnn_device()
            except Exception as error:
                logger.error("Closing the Tenstorrent mesh after a failed start also failed: %s", error)
            raise

    def load_model(self, *, load_dummy_weights: bool = False) -> None:
        report_phase(EnginePhase.LOADING_WEIGHTS, self.model_config.model)
        self._runner().load_model()

    def get_model(self) -> Any:
        return self._runner().tt_model

    def get_model_inspection(self) -> str:
        model = self._runner().tt_model
        return f"{type(model).__module__}.{type(model).__qualname__} on the tt platform"

    def get_kv_cache_spec(self) -> dict[str, KVCacheSpec]:
        """The model class's own ``get_kv_cache_spec(vllm_config)`` (hybrid models), else a full-attention
        spec per layer with the model's KV heads, as Tenstorrent's; the allocation is per device
        (``kv_cache_shape``). See ``kv_cache_layout.py``."""
        runner = self._runner()

        def from_config() -> dict[str, KVCacheSpec]:
            _, num_kv_heads, block_size, head_size = runner.logical_kv_cache_shape(1)
            num_layers = self.model_config.get_num_layers(self.parallel_config)
            return full_attention_spec(
                num_layers, block_size, num_kv_heads, head_size, self.model_config.dtype
            )

        return kv_cache_spec(type(runner.tt_model), self.vllm_config, from_config)

    def get_supported_kv_cache_layouts(self) -> list[str]:
        # vLLM would ask its attention backends, which the TT runner does not use.
        return [CONTRACT_KV_LAYOUT]

    def determine_available_memory(self) -> int:
        """Bytes for the KV pool: a token budget (TT option ``kv_cache_tokens``, or vLLM's
        ``--kv-cache-memory-bytes``, or the model's ``get_max_tokens_all_users``, or Tenstorrent's
        131072-token default). On the host device never more than ``--gpu-memory-utilization`` of the
        host memory left after loading the model."""
        # vLLM counts blocks as the pool's bytes over the bytes a block takes across the layers.
        block_bytes = bytes_per_block(self.vllm_config, self.get_kv_cache_spec())
        explicit = self.cache_config.kv_cache_memory_bytes
        if explicit is not None:
            return int(explicit)
        runner = self._runner()
        model_budget = kv_token_budget(
            runner.tt_model,
            model_name=self.model_config.model,
            num_devices=runner.mesh_device.num_devices,
            tt_data_parallel=self.options.data_parallel,
            max_model_len=self.model_config.max_model_len,
            max_num_seqs=runner.max_num_reqs,
        )
        if model_budget is not None:
            # Plus one block per request, as Tenstorrent does, so max_num_seqs requests that each end
            # mid-block still fit.
            model_budget += runner.block_size * runner.max_num_reqs
            logger.info("KV budget from %s: %d tokens", type(runner.tt_model).__name__, model_budget)
        tokens = self.options.kv_cache_tokens or model_budget or DEFAULT_KV_CACHE_TOKENS
        wanted = tokens * block_bytes // self.cache_config.block_size
        if self.device_choice is DeviceChoice.TTNN:
            return wanted  # the pool lives in device DRAM, sized by the budget, not by host memory
        memory = psutil.virtual_memory()
        rss = psutil.Process(os.getpid()).memory_info().rss
        limit = int(memory.total * memory_utilization(self.cache_config)) - rss
        limit = min(limit, memory.available)
        if wanted > limit:
            logger.warning(
                "KV budget of %d tokens (%.2f GiB) exceeds the memory allowed (%.2f GiB); using the latter",
                tokens,
                wanted / 2**30,
                limit / 2**30,
            )
        return max(0, min(wanted, limit))

    def initialize_from_config(self, kv_cache_config: KVCacheConfig) -> None:
        report_phase(EnginePhase.ALLOCATING_KV_CACHE, f"{kv_cache_config.num_blocks} blocks")
        self._runner().initialize_kv_cache(kv_cache_config)
        self._runner().metrics.set_num_blocks(kv_cache_config.num_blocks)

    def compile_or_warm_up_model(self) -> CompilationTimes:
        """Run the model's warm-up hooks (tt-metal compiles kernels and captures traces there) when it
        has them and the TT option ``enable_model_warmup`` allows; host models have none."""
        if not self.options.enable_model_warmup:
            return CompilationTimes(language_model=0.0, encoder=0.0)
        runner = self._runner()
        trace = trace_flags(self.options.trace_mode)
        traced = self.device_choice is DeviceChoice.TTNN and (trace.prefill or trace.decode)
        report_phase(EnginePhase.WARMING_UP, "capturing traces" if traced else "")
        start = time.perf_counter()
        ran = warm_up(
            runner.tt_model,
            kv_cache=runner.kv_cache,
            trace=trace,
            max_batch_size=runner.max_num_reqs,
            num_blocks=-(-runner.max_model_len // runner.block_size),
            sample_on_device_mode=runner.device_sampling_mode,
        )
        elapsed = time.perf_counter() - start
        if ran:
            logger.info("Warmed up %s in %.1f s", type(runner.tt_model).__name__, elapsed)
        return CompilationTimes(language_model=elapsed if ran else 0.0, encoder=0.0)

    def update_max_model_len(self, max_model_len: int) -> None:
        self.model_config.max_model_len = max_model_len
        self._runner().max_model_len = max_model_len

    def get_supported_tasks(self) -> tuple[str, ...]:
        return ("generate",)

    def get_cache_block_size_bytes(self) -> int:
        spec = next(iter(self.get_kv_cache_spec().values()))
        return spec.page_size_bytes

    # ---- per step -------------------------------------------------------------------------------

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput | None:
        # Timed here, around the whole runner, so host overhead = runner time - model calls.
        runner = self._runner()
        runner.metrics.begin_step(scheduler_output)
        try:
            return runner.execute_model(scheduler_output)
        except Exception as error:
            record_engine_failure(error)  # vLLM's server exits 0 after this; tt-serve reads why
            raise
        finally:
            runner.metrics.end_execute()

    def sample_tokens(self, grammar_output: GrammarOutput | None) -> ModelRunnerOutput:
        runner = self._runner()
        runner.metrics.begin_sample()
        try:
            return runner.sample_tokens(grammar_output)
        except Exception as error:
            record_engine_failure(error)
            raise
        finally:
            runner.metrics.end_step(runner.sampling_steps)

    def check_health(self) -> None:
        return

    def shutdown(self) -> None:
        if self.model_runner is not None:
            self.model_runner.kv_cache = []
            self.model_runner.tt_model = None
        # After the model and KV cache that live on the mesh are released.
        self._close_ttnn_device()

    def _close_ttnn_device(self) -> None:
        """Close the mesh, if one is open, exactly once."""
        device, self._ttnn_device = self._ttnn_device, None
        if device is not None:
            close_ttnn_device(device)

    def _runner(self) -> TTModelRunner:
        if self.model_runner is None:
            raise RuntimeError("TTWorker.init_device must run first")
        return self.model_runner
