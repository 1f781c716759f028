"""TTModelRunner: turns each vLLM ``SchedulerOutput`` into calls of the TT model contract.

Per step: update the persistent batch (new, resumed, finished, preempted requests), split the
scheduled requests into one batched prefill call (every request with prompt tokens to compute,
honouring ``num_computed_tokens`` for cached prefixes and chunks) and one decode call, then sample
every request's logits with vLLM's own ``Sampler`` and return a ``ModelRunnerOutput``.

The runner knows nothing about the device: only the contract and the model's declared capabilities.
Sampled tokens are written into the batch before the next step's inputs are built, so those inputs
never wait on the scheduler; that is what makes vLLM's async scheduling safe here.

A step ends in ``sample_tokens``, which returns a :class:`StepOutput` finished on first demand: by
vLLM's engine core when it pops the step from its batch queue, or by the next ``execute_model``,
whichever comes first. With async decode (``supports_async_decode``) the decode's output is still on
the device then, its read already queued behind it, so under vLLM's async scheduling the engine
core's host work (processing the previous step's output, scheduling the next step) runs while the
device decodes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from vllm.config import VllmConfig
from vllm.sampling_params import SamplingType
from vllm.v1.core.sched.output import GrammarOutput, SchedulerOutput
from vllm.v1.outputs import (
    EMPTY_MODEL_RUNNER_OUTPUT,
    AsyncModelRunnerOutput,
    LogprobsTensors,
    ModelRunnerOutput,
)
from vllm.v1.sample.logits_processor import build_logitsprocs
from vllm.v1.sample.sampler import Sampler
from vllm.v1.structured_output.utils import apply_grammar_bitmask
from vllm.v1.worker.gpu_input_batch import CachedRequestState

from tt_vllm_plugin.device.mesh import kv_heads_per_device
from tt_vllm_plugin.log import get_logger
from tt_vllm_plugin.models import registry
from tt_vllm_plugin.models.contract import (
    SUPPORTS_ASYNC_DECODE,
    SUPPORTS_SAMPLE_ON_DEVICE,
    KVCache,
    TTModel,
    capability,
)
from tt_vllm_plugin.models.device_sampling import device_max_top_k
from tt_vllm_plugin.models.tt_metal import async_read_problem
from tt_vllm_plugin.options import tt_options_from_vllm_config
from tt_vllm_plugin.worker.decode_slots import DecodeLayout, DecodeSlots
from tt_vllm_plugin.worker.fault_injection import FaultInjector
from tt_vllm_plugin.worker.input_batch import TTInputBatch
from tt_vllm_plugin.worker.metrics import StepMetrics
from tt_vllm_plugin.worker.prompt_logprobs import PromptLogprobs
from tt_vllm_plugin.worker.sampling_mode import (
    SamplingPath,
    choose_sampling_path,
    device_sampling_enabled,
    device_sampling_params,
    sampling_options,
    use_vllm_cpu_sampling_kernel,
)
from tt_vllm_plugin.worker.step_output import StepOutput
from tt_vllm_plugin.worker.unhandled_work import check_no_unhandled_work

logger = get_logger(__name__)


@dataclass
class _PendingStep:
    """What ``execute_model`` leaves for ``sample_tokens`` (vLLM calls them back to back)."""

    scheduler_output: SchedulerOutput
    logits: torch.Tensor  # (num_reqs, vocab) float32, in batch order
    # Slots whose computed range stops short of their known tokens (a prompt chunk): their sampled
    # token is discarded, as vLLM's GPU runner does.
    partial_rows: np.ndarray
    prompt_logprobs: dict[str, LogprobsTensors | None]
    # Token ids (num_reqs,) when the model sampled on its device; vLLM's sampler is skipped then.
    sampled: torch.Tensor | None = None
    # Async decode: the decode's output with its read under way (host output, events to wait for)
    # and the rows it belongs to.
    decode_read: tuple[Any, list[Any]] | None = None
    decode_rows: np.ndarray | None = None
    decode_slots: np.ndarray | None = None  # the decode slot of each of decode_rows


class TTModelRunner:
    def __init__(self, vllm_config: VllmConfig, mesh_device: Any) -> None:
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
        self.sampler = Sampler(
            logprobs_mode=self.model_config.logprobs_mode,
            use_fp64_gumbel=self.model_config.use_fp64_gumbel,
        )
        # Same random draws as vLLM's CPU platform for the same seeds (see sampling_mode.py).
        use_vllm_cpu_sampling_kernel(self.sampler)
        self.sampling_options = sampling_options(vllm_config)
        # Steps sampled per path ("device" / "host"), for the tt_vllm_sampling_steps_total metric.
        self.sampling_steps: dict[str, int] = {path.value: 0 for path in SamplingPath}
        self.prompt_logprobs = PromptLogprobs(self.vocab_size, self.model_config.logprobs_mode)
        self._pending: _PendingStep | None = None
        # The last step's output until it is finished (see StepOutput).
        self._unfinished: StepOutput | None = None
        # Per-step figures (the worker swaps in the ones /metrics exports) and the fault test hook.
        self.metrics = StepMetrics("tt", "unexported")
        self.fault_injector = FaultInjector.from_env()
        options = tt_options_from_vllm_config(vllm_config)
        self.prefill_batching = options.prefill_batching
        # tt-metal's data-parallel submeshes each own a fixed share of the decode slots.
        self.data_parallel = options.data_parallel
        self.decode_slots = DecodeSlots(self.max_num_reqs)
        self.decode_layout = DecodeLayout()
        self.async_decode = False  # set from the model's capabilities in load_model

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
        self.async_decode = _async_decode_usable(self.tt_model)

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

    def initialize_kv_cache(self, num_blocks: int) -> None:
        assert self.tt_model is not None, "load_model must run before the KV cache is allocated"
        num_layers = self.model_config.get_num_layers(self.vllm_config.parallel_config)
        self.kv_cache = self.tt_model.allocate_kv_cache(
            self.kv_cache_shape(num_blocks), self.model_config.dtype, num_layers
        )
        self.input_batch = self._make_input_batch()
        logger.info(
            "KV cache: %d blocks of %d tokens (%d tokens) over %d layers",
            num_blocks,
            self.block_size,
            num_blocks * self.block_size,
            num_layers,
        )

    def _make_input_batch(self) -> TTInputBatch:
        device = torch.device("cpu")  # sampling runs on the host whatever the model's device
        custom = tuple(self.model_config.logits_processors or ())
        return TTInputBatch(
            max_num_reqs=self.max_num_reqs,
            max_model_len=self.max_model_len,
            max_num_batched_tokens=self.scheduler_config.max_num_batched_tokens,
            device=device,
            vocab_size=self.vocab_size,
            block_sizes=[self.block_size],
            max_num_blocks_per_req=[-(-self.max_model_len // self.block_size)],
            logitsprocs=build_logitsprocs(self.vllm_config, device, False, False, custom),
            logitsprocs_need_output_token_ids=bool(custom),
        )

    # ---- per step -------------------------------------------------------------------------------

    def execute_model(self, scheduler_output: SchedulerOutput) -> ModelRunnerOutput | None:
        # This step's inputs include the previous step's sampled tokens.
        self._finish_previous_step()
        self._update_states(scheduler_output)
        batch = self._batch()
        if scheduler_output.total_num_scheduled_tokens == 0 or batch.num_reqs == 0:
            return EMPTY_MODEL_RUNNER_OUTPUT

        num_reqs = batch.num_reqs
        scheduled = np.array(
            [scheduler_output.num_scheduled_tokens[req_id] for req_id in batch.req_ids], dtype=np.int64
        )
        computed = batch.num_computed_tokens_cpu[:num_reqs].astype(np.int64)
        known = batch.num_tokens_no_spec[:num_reqs].astype(np.int64)
        ends = computed + scheduled
        # A decode feeds exactly the last known token; anything else computes prompt (or, after a
        # preemption, recomputed output) tokens and goes to the batched prefill.
        is_decode = (scheduled == 1) & (ends == known) & (computed >= batch.num_prompt_tokens[:num_reqs])
        decode_rows = np.flatnonzero(is_decode)
        prefill_rows = np.flatnonzero(~is_decode)
        on_device = self._sampling_path(batch, has_prefill=len(prefill_rows) > 0) is SamplingPath.DEVICE
        device_params = None
        if on_device:
            seeds = [self.requests[req_id].sampling_params.seed for req_id in batch.req_ids]
            device_params = device_sampling_params(batch, num_reqs, ends < known, seeds)
        sampled = torch.zeros(num_reqs, dtype=torch.int64) if on_device else None

        self.fault_injector.before_model_step()  # TT_VLLM_FAULT_INJECT: fails here, like a model error
        logits = torch.empty((num_reqs, self.vocab_size), dtype=torch.float32)
        prompt_logprobs: dict[str, LogprobsTensors | None] = {}
        if len(prefill_rows):
            wanted = [int(row) for row in prefill_rows if batch.req_ids[row] in self.prompt_logprobs.wanted]
            # Prompt logprobs need every computed position's logits (models declaring
            # supports_prompt_logprobs return them flat); otherwise only each row's last.
            extra = {"return_all_logits": True} if wanted else {}
            if device_params is not None:  # then no request wants prompt logprobs
                extra = {"sampling_params": device_params.select(torch.from_numpy(prefill_rows))}
            with self.metrics.model_call("prefill", len(prefill_rows)):
                out = self._prefill_forward(prefill_rows, ends[prefill_rows], extra)
            if sampled is not None:
                sampled[prefill_rows] = out.reshape(-1)[: len(prefill_rows)].cpu()
            elif wanted:
                flat = out.to(device="cpu", dtype=torch.float32)[:, : self.vocab_size]
                per_row = dict(
                    zip(prefill_rows.tolist(), flat.split(scheduled[prefill_rows].tolist()), strict=True)
                )
                logits[prefill_rows] = torch.stack([per_row[row][-1] for row in prefill_rows.tolist()])
                for row in wanted:
                    req_id = batch.req_ids[row]
                    done = self.prompt_logprobs.collect(
                        self.requests[req_id], int(computed[row]), int(scheduled[row]), per_row[row]
                    )
                    if done is not None:
                        prompt_logprobs[req_id] = done
            else:
                logits[prefill_rows] = _as_logits(out, len(prefill_rows), self.vocab_size)
        decode_req_ids = [batch.req_ids[row] for row in decode_rows]
        decode_slots = self.decode_slots.of(decode_req_ids)
        decode_read = None
        if len(decode_rows):
            inputs = batch.decode_inputs(decode_rows, self.max_num_reqs, decode_slots)
            extra = {}
            device_sampled = device_params is not None
            reset_batch = self.decode_layout.reset_batch(decode_slots, decode_req_ids, device_sampled)
            if device_params is not None:
                rows = device_params.select(torch.from_numpy(decode_rows))
                extra = {
                    "sampling_params": rows.padded(self.max_num_reqs, torch.from_numpy(decode_slots)),
                    "reset_batch": reset_batch,
                }
            if self.async_decode:
                extra["read_from_device"] = False
            with self.metrics.model_call("decode", len(decode_rows)):
                out = self.tt_model.decode_forward(
                    inputs.tokens, inputs.start_pos, inputs.page_table, self.kv_cache, **extra
                )
                if self.async_decode:
                    decode_read = self._start_decode_read(out)
            if not self.async_decode:
                self._store_decode_output(out, decode_rows, decode_slots, logits, sampled)

        self._pending = _PendingStep(
            scheduler_output,
            logits,
            partial_rows=np.flatnonzero(ends < known),
            prompt_logprobs=prompt_logprobs,
            sampled=sampled,
            decode_read=decode_read,
            decode_rows=decode_rows,
            decode_slots=decode_slots,
        )
        # The engine calls sample_tokens next, with the grammar bitmask if any.
        return None

    def _store_decode_output(
        self,
        out: torch.Tensor,
        rows: np.ndarray,
        slots: np.ndarray,
        logits: torch.Tensor,
        sampled: torch.Tensor | None,
    ) -> None:
        """Put a decode call's host output (logits, or token ids if sampled on device; one per slot)
        in step order: row ``rows[i]`` was decoded in slot ``slots[i]``."""
        where = torch.from_numpy(slots)
        if sampled is not None:
            sampled[rows] = out.reshape(-1)[where].cpu()
        else:
            logits[rows] = _slot_logits(out, where, self.vocab_size)

    def _start_decode_read(self, out: Any) -> tuple[Any, list[Any]]:
        """Queue the read of an async decode's output behind it on the device; returns the host
        output (not ready yet) and the device events that say when it is."""
        assert self.tt_model is not None
        read = self.tt_model.read_decode_output(out, async_read=True)
        if not (isinstance(read, tuple) and len(read) == 2):
            raise TypeError(
                f"{type(self.tt_model).__name__}.read_decode_output(out, async_read=True) returned "
                f"{type(read).__name__}; the contract wants a (host output, events) pair."
            )
        host, events = read
        return host, list(events or ())

    def _finish_decode_read(self, pending: _PendingStep) -> None:
        """Wait for an async decode's output and store it (``supports_async_decode``, contract.py)."""
        assert self.tt_model is not None and pending.decode_read is not None
        assert pending.decode_rows is not None and pending.decode_slots is not None
        host, events = pending.decode_read
        with self.metrics.model_wait():
            self.mesh_device.wait_for_events(events)
            out = self.tt_model.process_decode_output_host(host, is_tokens=pending.sampled is not None)
        if isinstance(out, tuple):  # some generators return (result, extra such as logprobs)
            out = out[0]
        pending.decode_read = None
        self._store_decode_output(
            out, pending.decode_rows, pending.decode_slots, pending.logits, pending.sampled
        )

    def _prefill_forward(self, rows: np.ndarray, ends: np.ndarray, extra: dict[str, Any]) -> torch.Tensor:
        """One ``prefill_forward`` for all ``rows``, or with the ``prefill_batching`` option off one per
        row (Tenstorrent's one-user-at-a-time prefill, kept to measure what batching saves). Either
        way the result is laid out as one batched call's: (rows, 1, vocab), or flat with every logit."""
        batch = self._batch()
        if not self.prefill_batching and len(rows) > 1:
            one_by_one = [
                self._single_prefill(batch, rows[i : i + 1], ends[i : i + 1], _for_row(extra, i))
                for i in range(len(rows))
            ]
            return torch.cat(one_by_one)
        return self._single_prefill(batch, rows, ends, extra)

    def _single_prefill(
        self, batch: TTInputBatch, rows: np.ndarray, ends: np.ndarray, extra: dict[str, Any]
    ) -> torch.Tensor:
        inputs = batch.prefill_inputs(rows, ends)
        # Always the decode slot each prompt fills, as Tenstorrent's runner does (vllm-tt-plugin 2b0c1cc):
        # tt-metal seeds that slot's sampling state from it (default range(B), the prefill rows) and, with
        # data_parallel > 1, picks the submesh (and KV cache) by it (generator.py prefill_forward_text).
        extra = {**extra, "empty_slots": self.decode_slots.of(batch.req_ids[row] for row in rows).tolist()}
        out = self.tt_model.prefill_forward(
            inputs.tokens,
            inputs.page_table,
            self.kv_cache,
            inputs.prompt_lens,
            start_pos=inputs.start_pos,
            **extra,
        )
        # A device may pad its batch (logits or sampled ids): keep only the rows asked for. Flat
        # all-position logits have no padding and no per-request rows.
        return out if extra.get("return_all_logits") else out[: len(rows)]

    def sample_tokens(
        self, grammar_output: GrammarOutput | None
    ) -> ModelRunnerOutput | AsyncModelRunnerOutput:
        if self._pending is None:
            return EMPTY_MODEL_RUNNER_OUTPUT
        pending, self._pending = self._pending, None
        path = SamplingPath.DEVICE if pending.sampled is not None else SamplingPath.HOST
        self.sampling_steps[path.value] += 1
        self._unfinished = StepOutput(lambda: self._finish_step(pending, grammar_output))
        return self._unfinished

    def _finish_previous_step(self) -> None:
        step, self._unfinished = self._unfinished, None
        if step is not None:
            step.get_output()  # a no-op if vLLM already asked for it

    def _finish_step(self, pending: _PendingStep, grammar_output: GrammarOutput | None) -> ModelRunnerOutput:
        """Wait for the device's output if it is still coming, sample, record the sampled tokens."""
        if pending.decode_read is not None:
            self._finish_decode_read(pending)
        if pending.sampled is not None:
            return self._device_sampled_output(pending, grammar_output)
        batch = self._batch()
        logits = pending.logits
        if grammar_output is not None:
            apply_grammar_bitmask(pending.scheduler_output, grammar_output, batch, logits)

        # A discarded sample must not advance a seeded request's generator: keep and restore state.
        saved_rng = {
            int(i): batch.generators[int(i)].get_state()
            for i in pending.partial_rows
            if int(i) in batch.generators
        }
        sampler_output = self.sampler(logits=logits, sampling_metadata=batch.sampling_metadata)
        for row, state in saved_rng.items():
            batch.generators[row].set_state(state)

        sampled = sampler_output.sampled_token_ids.view(-1).tolist()
        sampled_token_ids: list[list[int]] = [[token] for token in sampled]
        for row in pending.partial_rows:
            sampled_token_ids[int(row)] = []
        self._append_sampled_tokens(sampled_token_ids)

        logprobs = None
        if sampler_output.logprobs_tensors is not None:
            logprobs = sampler_output.logprobs_tensors.tolists()

        return ModelRunnerOutput(
            req_ids=batch.req_ids.copy(),
            req_id_to_index=batch.req_id_to_index.copy(),
            sampled_token_ids=sampled_token_ids,
            logprobs=logprobs,
            prompt_logprobs_dict=pending.prompt_logprobs,
        )

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

    def _sampling_path(self, batch: TTInputBatch, has_prefill: bool) -> SamplingPath:
        return choose_sampling_path(
            model_samples_on_device=capability(self.tt_model, SUPPORTS_SAMPLE_ON_DEVICE),
            sample_on_device_mode=self.sampling_options.sample_on_device_mode,
            always_compat_sampling=self.sampling_options.always_compat_sampling,
            has_prefill=has_prefill,
            custom_logits_processors=bool(self.model_config.logits_processors),
            requests=(self.requests[req_id].sampling_params for req_id in batch.req_ids),
            max_top_k=device_max_top_k(self.tt_model),
        )

    def _device_sampled_output(
        self, pending: _PendingStep, grammar_output: GrammarOutput | None
    ) -> ModelRunnerOutput:
        """The step's output when the model sampled on its device (vLLM's sampler skipped)."""
        if grammar_output is not None:  # the path rule sends every structured-output step to the host
            raise RuntimeError("a grammar bitmask arrived for a step the device sampled; this is a bug.")
        assert pending.sampled is not None
        batch = self._batch()
        sampled_token_ids: list[list[int]] = [[token] for token in pending.sampled.tolist()]
        for row in pending.partial_rows:
            sampled_token_ids[int(row)] = []
        self._append_sampled_tokens(sampled_token_ids)
        return ModelRunnerOutput(
            req_ids=batch.req_ids.copy(),
            req_id_to_index=batch.req_id_to_index.copy(),
            sampled_token_ids=sampled_token_ids,
            prompt_logprobs_dict=pending.prompt_logprobs,
        )

    # ---- state --------------------------------------------------------------------------------

    def _batch(self) -> TTInputBatch:
        assert self.input_batch is not None, "the KV cache must be initialised before the first step"
        return self.input_batch

    def _append_sampled_tokens(self, sampled_token_ids: Sequence[list[int]]) -> None:
        """Record each sampled token in the batch and the request state (next step's input)."""
        batch = self._batch()
        for row, tokens in enumerate(sampled_token_ids):
            if not tokens:
                continue
            start = int(batch.num_tokens_no_spec[row])
            if start >= self.max_model_len:
                continue  # async scheduling ran one step past the end; the scheduler drops it
            batch.token_ids_cpu[row, start] = tokens[0]
            batch.is_token_ids[row, start] = True
            batch.num_tokens_no_spec[row] = start + 1
            self.requests[batch.req_ids[row]].output_token_ids.append(tokens[0])

    def _update_states(self, scheduler_output: SchedulerOutput) -> None:
        """Bring the persistent batch in line with the scheduler (mirrors vLLM's GPU runner)."""
        check_no_unhandled_work(scheduler_output)
        batch = self._batch()
        cached = scheduler_output.scheduled_cached_reqs
        # A slot is kept while the request holds KV blocks: freed when it finishes or is preempted
        # (a resumed request is recomputed from scratch, in whichever slot is free then).
        self.decode_slots.release(scheduler_output.finished_req_ids)
        self.decode_slots.release(scheduler_output.preempted_req_ids or ())
        self.decode_slots.release(cached.resumed_req_ids)
        for req_id in scheduler_output.finished_req_ids:
            self.requests.pop(req_id, None)
            self.prompt_logprobs.discard(req_id)
            batch.remove_request(req_id)

        # Requests not scheduled this step (preempted, or waiting for budget) leave the batch but
        # keep their state; they come back through the resumed path.
        scheduled_ids = scheduler_output.num_scheduled_tokens.keys()
        for req_id in batch.req_id_to_index.keys() - (scheduled_ids - cached.resumed_req_ids):
            batch.remove_request(req_id)

        to_add: list[CachedRequestState] = []
        for new in scheduler_output.scheduled_new_reqs:
            params = new.sampling_params
            generator = None
            if params is not None and params.sampling_type == SamplingType.RANDOM_SEED:
                generator = torch.Generator(device="cpu")
                generator.manual_seed(params.seed)
            state = CachedRequestState(
                req_id=new.req_id,
                prompt_token_ids=new.prompt_token_ids,
                mm_features=[],
                sampling_params=params,
                generator=generator,
                block_ids=new.block_ids,
                num_computed_tokens=new.num_computed_tokens,
                output_token_ids=[],
            )
            self.requests[new.req_id] = state
            self.prompt_logprobs.add(state)
            to_add.append(state)

        for i, req_id in enumerate(cached.req_ids):
            state = self.requests[req_id]
            state.num_computed_tokens = cached.num_computed_tokens[i]
            new_block_ids = cached.new_block_ids[i]
            resumed = req_id in cached.resumed_req_ids
            if resumed:
                # A resumed request got a fresh block list; its tokens are recomputed from scratch.
                state.block_ids = new_block_ids
                num_output = cached.num_output_tokens[i]
                all_tokens = cached.all_token_ids.get(req_id)
                if all_tokens is not None and num_output > 0:
                    state.output_token_ids = list(all_tokens[-num_output:])
                else:
                    del state.output_token_ids[num_output:]
                to_add.append(state)
                continue
            if new_block_ids is not None:
                for block_ids, ids in zip(state.block_ids, new_block_ids, strict=True):
                    block_ids.extend(ids)
            row = batch.req_id_to_index.get(req_id)
            num_output = cached.num_output_tokens[i]
            if num_output < len(state.output_token_ids):
                # The scheduler dropped tokens we sampled (e.g. one step past a stop under async
                # scheduling): forget them so the next input is the scheduler's last token.
                del state.output_token_ids[num_output:]
                if row is not None:
                    batch.num_tokens_no_spec[row] = batch.num_prompt_tokens[row] + num_output
            if row is None:  # scheduled again after a step out of the batch
                to_add.append(state)
                continue
            batch.num_computed_tokens_cpu[row] = state.num_computed_tokens
            if new_block_ids is not None:
                batch.block_table.append_row(new_block_ids, row)

        for state in to_add:
            batch.add_request(state)
        batch.condense()
        batch.refresh_metadata()
        for req_id in batch.req_ids:
            self.decode_slots.assign(req_id)


def _async_decode_usable(model: Any) -> bool:
    """Whether to read decode outputs when the step is finished (the model declares it and has the reads)."""
    if not capability(model, SUPPORTS_ASYNC_DECODE):
        return False
    problem = async_read_problem(model)
    if problem is not None:
        logger.warning("%s: %s; decoding synchronously.", type(model).__name__, problem)
        return False
    return True


def _for_row(extra: dict[str, Any], i: int) -> dict[str, Any]:
    """``extra`` for row ``i`` of a batched prefill called alone (per-row device sampling parameters)."""
    params = extra.get("sampling_params")
    return extra if params is None else {**extra, "sampling_params": params.select(slice(i, i + 1))}


def _as_logits(out: torch.Tensor, rows: int, vocab_size: int) -> torch.Tensor:
    """The contract's (B, 1, vocab) logits as (rows, vocab) float32 on the host."""
    out = out.reshape(out.shape[0], -1)[:rows, :vocab_size]
    return out.to(device="cpu", dtype=torch.float32)


def _slot_logits(out: torch.Tensor, slots: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """The (max_batch, 1, vocab) decode logits of ``slots``, as (len(slots), vocab) float32 on the host."""
    out = out.reshape(out.shape[0], -1)[slots.to(out.device), :vocab_size]
    return out.to(device="cpu", dtype=torch.float32)
