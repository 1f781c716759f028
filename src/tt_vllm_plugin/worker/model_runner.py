"""TTModelRunner: turns each vLLM ``SchedulerOutput`` into calls of the TT model contract.

A step, in the order ``execute_model`` runs it (each part one function in its own module):

1. finish the previous step, whose sampled tokens are this step's inputs;
2. ``update_states`` (batch_update.py): bring vLLM's persistent batch in line with the scheduler;
3. ``plan_step`` (step_plan.py): which rows prefill, which decode, which sampler samples the step;
4. ``run_prefill`` (prefill.py): one batched ``prefill_forward`` for every row with prompt tokens to
   compute, honouring ``num_computed_tokens`` for cached prefixes and chunks;
5. ``run_decode`` (decode.py): one ``decode_forward`` over the fixed decode slots. A model declaring
   ``prefill_takes_decode_rows`` (the host models) gets no decode call in a step that prefills: the plan
   puts its decode rows, one token each, into the prefill call (one forward over the step's tokens).

Both write into one :class:`~tt_vllm_plugin.worker.step_data.RowOutputs`. ``sample_tokens`` then
returns a :class:`StepOutput` finished on first demand: by vLLM's engine core when it pops the step from
its batch queue, or by the next ``execute_model``, whichever comes first. Finishing waits for an async
decode's output if it is still on its way (with ``supports_async_decode`` the engine core's host work,
processing the previous step's output and scheduling the next, runs while the device decodes), samples
(sampling.py: vLLM's ``Sampler``, or the tokens the device sampled) and appends the sampled tokens.

The runner knows nothing about the device: only the contract and the model's declared capabilities.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from vllm.config import VllmConfig
from vllm.v1.core.sched.output import GrammarOutput, SchedulerOutput
from vllm.v1.kv_cache_interface import KVCacheConfig, KVCacheSpec
from vllm.v1.outputs import EMPTY_MODEL_RUNNER_OUTPUT, AsyncModelRunnerOutput, ModelRunnerOutput

from tt_vllm_plugin.compat import logits_processors, make_sampler, vllm_v1_runner_parts
from tt_vllm_plugin.compat.multimodal import uses_mrope
from tt_vllm_plugin.device.mesh import kv_heads_per_device
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models import registry
from tt_vllm_plugin.models.contract import (
    PREFILL_TAKES_DECODE_ROWS,
    SUPPORTS_SAMPLE_ON_DEVICE,
    KVCache,
    TTModel,
    capability,
    takes_images,
)
from tt_vllm_plugin.models.device_sampling import device_max_top_k
from tt_vllm_plugin.models.tt_metal.signatures import accepts
from tt_vllm_plugin.models.vllm_multimodal_view import describe_resolution
from tt_vllm_plugin.options import TTOptions
from tt_vllm_plugin.worker.batch_update import append_sampled_tokens, update_states
from tt_vllm_plugin.worker.decode import async_decode_usable, finish_decode_read, run_decode
from tt_vllm_plugin.worker.decode_slots import DecodeLayout, DecodeSlots
from tt_vllm_plugin.worker.fault_injection import FaultInjector
from tt_vllm_plugin.worker.input_batch import TTInputBatch, make_input_batch
from tt_vllm_plugin.worker.kv_cache_layout import KVShape, allocate, layer_groups, per_layer_specs
from tt_vllm_plugin.worker.metrics import StepMetrics
from tt_vllm_plugin.worker.multimodal_inputs import RopeDeltas
from tt_vllm_plugin.worker.prefill import run_prefill
from tt_vllm_plugin.worker.prompt_logprobs import PromptLogprobs
from tt_vllm_plugin.worker.sampling import runner_output, sample_on_host, sampled_on_device
from tt_vllm_plugin.worker.sampling_mode import (
    SamplingOptions,
    SamplingPath,
    choose_sampling_path,
    device_sampling_enabled,
    use_vllm_cpu_sampling_kernel,
)
from tt_vllm_plugin.worker.step_data import PendingStep, RowOutputs, StepContext
from tt_vllm_plugin.worker.step_output import StepOutput
from tt_vllm_plugin.worker.step_plan import plan_step

if TYPE_CHECKING:
    from vllm.v1.worker.gpu_input_batch import CachedRequestState

logger = get_logger(__name__)


class TTModelRunner:
    def __init__(self, vllm_config: VllmConfig, mesh_device: Any, options: TTOptions) -> None:
        self.vllm_config = vllm_config
        self.model_config = vllm_config.model_config
        self.cache_config = vllm_config.cache_config
        self.scheduler_config = vllm_config.scheduler_config
        self.mesh_device = mesh_device

        self.max_num_reqs = self.scheduler_config.max_num_seqs
        self.max_model_len = self.model_config.max_model_len
        self.block_size = self.cache_config.block_size
        self.vocab_size = self.model_config.get_vocab_size()

        # Not `self.model`: vLLM's in-process engine walks `model_runner.model` as an nn.Module at exit.
        self.tt_model: TTModel | None = None
        self.kv_cache: KVCache = []
        self.input_batch: TTInputBatch | None = None
        self.requests: dict[str, CachedRequestState] = {}
        # vLLM's V1 Sampler, or the plugin's host sampler on a vLLM without it (compat.py, 5).
        self.sampler = make_sampler(self.model_config.logprobs_mode, self.model_config.use_fp64_gumbel)
        if vllm_v1_runner_parts():
            # Same random draws as vLLM's CPU platform for the same seeds (see sampling_mode.py).
            use_vllm_cpu_sampling_kernel(self.sampler)
        self.sampling_options = SamplingOptions.of(options)
        # Steps sampled per path ("device" / "host"), for the tt_vllm_sampling_steps_total metric.
        self.sampling_steps: dict[str, int] = {path.value: 0 for path in SamplingPath}
        self.prompt_logprobs = PromptLogprobs(self.vocab_size, self.model_config.logprobs_mode)
        self._pending: PendingStep | None = None
        # The last step's output until it is finished (see StepOutput).
        self._unfinished: StepOutput | None = None
        # Per-step figures (the worker swaps in the ones /metrics exports) and the fault test hook.
        self.metrics = StepMetrics("tt", "unexported")
        self.fault_injector = FaultInjector.from_env()
        self.prefill_batching = options.prefill_batching
        self.decode_slots = DecodeSlots(self.max_num_reqs)
        self.decode_layout = DecodeLayout()
        self.async_decode = False  # set from the model's capabilities in load_model
        # Whether a step with prompt tokens folds its decode rows into its prefill call (load_model).
        self.fold_decode = False
        self.layer_groups: list[int] | None = None  # each layer's KV cache group, when several
        self.takes_images = False  # set in load_model: prefills then get their rows' images
        # M-RoPE checkpoints: each request's delta from prefill to decode (multimodal_inputs.py).
        self.rope_deltas = RopeDeltas() if uses_mrope(self.model_config) else None

    # ---- start-up -------------------------------------------------------------------------------

    def load_model(self) -> None:
        hf_config = self.model_config.hf_config
        model_cls = registry.load_model_class(hf_config.architectures[0])
        start = time.perf_counter()
        self.tt_model = model_cls.initialize_vllm_model(
            hf_config,
            self.mesh_device,
            self.max_num_reqs,
            self.max_model_len,
        )
        logger.info("Loaded %s in %.1f s", model_cls.__name__, time.perf_counter() - start)
        self.takes_images = takes_images(model_cls)
        if self.takes_images:
            # This process (the engine core, spawned) never ran the platform's config check, where the
            # API server registered the TT names; vLLM's multimodal registry here resolves the
            # architecture to its multimodal view (encoder budget, processor), so register them here too.
            registry.register_with_vllm()
            logger.info("%s (its processor prepares the images)", describe_resolution(self.model_config))
        self.async_decode = async_decode_usable(self.tt_model)
        # Not without prefill batching, which exists to measure one request per prefill call.
        self.fold_decode = self.prefill_batching and capability(self.tt_model, PREFILL_TAKES_DECODE_ROWS)

    def kv_cache_shape(self, num_blocks: int) -> tuple[int, int, int, int]:
        """The contract's per-layer K/V shape, per device: (num_blocks, KV heads per device, block_size,
        head_dim). tt-metal's allocate_vllm_kv_cache replicates the shape it gets on every device, so the
        heads are divided over a submesh's devices as Tenstorrent's ``_kv_cache_shape`` does
        (tenstorrent/vllm-tt-plugin e3fc849 model_runner.py); the host device is one device."""
        logical = self.logical_kv_cache_shape(num_blocks)
        heads = kv_heads_per_device(logical[1], self.mesh_device.devices_per_submesh)
        return (logical[0], heads, *logical[2:])

    def logical_kv_cache_shape(self, num_blocks: int) -> tuple[int, int, int, int]:
        """The same with all of the model's KV heads: what vLLM's KV cache spec describes (Tenstorrent's
        spec uses the model's heads too; block counts do not depend on them)."""
        return (
            num_blocks,
            self.model_config.get_total_num_kv_heads(),
            self.block_size,
            self.model_config.get_head_size(),
        )

    def spec_kv_cache_shape(self, spec: KVCacheSpec, num_blocks: int) -> KVShape:
        """``kv_cache_shape`` of one layer's spec (a hybrid model's layers may differ)."""
        heads = kv_heads_per_device(spec.num_kv_heads, self.mesh_device.devices_per_submesh)
        return (num_blocks, heads, spec.block_size, spec.head_size)

    def initialize_kv_cache(self, kv_cache_config: KVCacheConfig) -> None:
        """Allocate the KV cache vLLM planned (``kv_cache_layout.py``) and the persistent batch with one
        block table per KV cache group."""
        assert self.tt_model is not None, "load_model must run before the KV cache is allocated"
        num_layers = self.model_config.get_num_layers(self.vllm_config.parallel_config)
        num_blocks = kv_cache_config.num_blocks
        specs = per_layer_specs(
            kv_cache_config, num_layers, lambda s: self.spec_kv_cache_shape(s, num_blocks)
        )
        self.layer_groups = layer_groups(kv_cache_config, num_layers)
        if self.layer_groups is not None:
            _check_takes_page_tables_per_layer(self.tt_model, len(kv_cache_config.kv_cache_groups))
        self.kv_cache = allocate(self.tt_model, specs)
        groups = kv_cache_config.kv_cache_groups
        self.input_batch = self._make_input_batch([group.kv_cache_spec.block_size for group in groups])
        logger.info(
            "KV cache: %d blocks of %d tokens (%d tokens) over %d layers in %d group(s), %d buffer(s)",
            num_blocks,
            self.block_size,
            num_blocks * self.block_size,
            num_layers,
            len(groups),
            len({idx for *_, idx in specs}),
        )

    def _make_input_batch(self, block_sizes: list[int]) -> TTInputBatch:
        device = torch.device("cpu")  # sampling runs on the host whatever the model's device
        custom = tuple(self.model_config.logits_processors or ())
        return make_input_batch(
            max_num_reqs=self.max_num_reqs,
            max_model_len=self.max_model_len,
            max_num_batched_tokens=self.scheduler_config.max_num_batched_tokens,
            device=device,
            vocab_size=self.vocab_size,
            block_sizes=block_sizes,
            max_num_blocks_per_req=[-(-self.max_model_len // size) for size in block_sizes],
            logitsprocs=logits_processors(self.vllm_config, device, custom),
            logitsprocs_need_output_token_ids=bool(custom),
        )

    # ---- per step -------------------------------------------------------------------------------

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput | None:
        self._finish_previous_step()  # this step's inputs include the previous step's sampled tokens
        batch = self._batch()
        update_states(scheduler_output, batch, self.requests, self.decode_slots, self.prompt_logprobs)
        if scheduler_output.total_num_scheduled_tokens == 0 or batch.num_reqs == 0:
            return EMPTY_MODEL_RUNNER_OUTPUT
        plan = plan_step(
            batch,
            scheduler_output.num_scheduled_tokens,
            self.requests,
            self._sampling_path,
            # Prompt logprobs split a prefill's flat logits by row; decode rows stay out of that.
            fold_decode=self.fold_decode and not self.prompt_logprobs.wanted,
        )
        ctx = self._step_context()
        self.fault_injector.before_model_step()  # TT_VLLM_FAULT_INJECT: fails here, like a model error
        outputs = RowOutputs.for_step(plan.num_reqs, self.vocab_size, plan.device_sampling is not None)
        prompt_logprobs = run_prefill(ctx, plan, outputs, self.prompt_logprobs, self.prefill_batching)
        decode_read = run_decode(ctx, plan, outputs, self.decode_layout, self.max_num_reqs, self.async_decode)
        self._pending = PendingStep(
            scheduler_output, outputs, plan.partial_rows, prompt_logprobs, decode_read
        )
        return None  # the engine calls sample_tokens next, with the grammar bitmask if any

    def sample_tokens(
        self, grammar_output: GrammarOutput | None
    ) -> ModelRunnerOutput | AsyncModelRunnerOutput:
        if self._pending is None:
            return EMPTY_MODEL_RUNNER_OUTPUT
        pending, self._pending = self._pending, None
        path = SamplingPath.DEVICE if pending.outputs.sampled_on_device else SamplingPath.HOST
        self.sampling_steps[path.value] += 1
        self._unfinished = StepOutput(lambda: self._finish_step(pending, grammar_output))
        return self._unfinished

    def _finish_previous_step(self) -> None:
        step, self._unfinished = self._unfinished, None
        if step is not None:
            step.get_output()  # a no-op if vLLM already asked for it

    def _finish_step(self, pending: PendingStep, grammar_output: GrammarOutput | None) -> ModelRunnerOutput:
        """Wait for the device's output if it is still coming, sample, record the sampled tokens."""
        if pending.decode_read is not None:
            read = pending.decode_read
            finish_decode_read(self.tt_model, self.mesh_device, read, pending.outputs, self.metrics)
        batch = self._batch()
        if pending.outputs.sampled_on_device:
            tokens, logprobs = sampled_on_device(pending, grammar_output), None
        else:
            tokens, logprobs = sample_on_host(self.sampler, batch, pending, grammar_output)
        append_sampled_tokens(batch, self.requests, tokens, self.max_model_len)
        return runner_output(batch, tokens, logprobs, pending)

    @property
    def device_sampling_mode(self) -> str | None:
        """``sample_on_device_mode`` when some step may be sampled by the model, else None (warm-up)."""
        return self.sampling_options.sample_on_device_mode if self.may_sample_on_device else None

    @property
    def may_sample_on_device(self) -> bool:
        """Whether any step may be sampled by the model (then its warm-up prepares device sampling)."""
        return device_sampling_enabled(
            model_samples_on_device=capability(self.tt_model, SUPPORTS_SAMPLE_ON_DEVICE),
            sample_on_device_mode=self.sampling_options.sample_on_device_mode,
            always_compat_sampling=self.sampling_options.always_compat_sampling,
        )

    def _sampling_path(self, has_prefill: bool) -> SamplingPath:
        """The sampler of a step of the batch's requests (all of them together)."""
        batch = self._batch()
        return choose_sampling_path(
            model_samples_on_device=capability(self.tt_model, SUPPORTS_SAMPLE_ON_DEVICE),
            sample_on_device_mode=self.sampling_options.sample_on_device_mode,
            always_compat_sampling=self.sampling_options.always_compat_sampling,
            has_prefill=has_prefill,
            custom_logits_processors=bool(self.model_config.logits_processors),
            requests=(self.requests[req_id].sampling_params for req_id in batch.req_ids),
            max_top_k=device_max_top_k(self.tt_model),
        )

    # ---- state --------------------------------------------------------------------------------

    def _batch(self) -> TTInputBatch:
        assert self.input_batch is not None, "the KV cache must be initialised before the first step"
        return self.input_batch

    def _step_context(self) -> StepContext:
        assert self.tt_model is not None, "load_model must run before the first step"
        return StepContext(
            model=self.tt_model,
            kv_cache=self.kv_cache,
            batch=self._batch(),
            requests=self.requests,
            slots=self.decode_slots,
            metrics=self.metrics,
            layer_groups=self.layer_groups,
            takes_images=self.takes_images,
            rope_deltas=self.rope_deltas,
        )


def _check_takes_page_tables_per_layer(model: Any, num_groups: int) -> None:
    """A model whose layers sit in several KV cache groups needs one page table per layer."""
    takes = getattr(model, "takes_keyword", None)  # the adapter answers for the generator behind it
    for method in ("prefill_forward", "decode_forward"):
        name = "page_tables_per_layer"
        if not (takes(method, name) if takes is not None else accepts(getattr(model, method), name)):
            raise NotImplementedError(
                f"{type(model).__name__}: vLLM planned {num_groups} KV cache groups (hybrid attention), but "
                f"its {method} takes no page_tables_per_layer (one page table per layer, each its group's)."
            )
