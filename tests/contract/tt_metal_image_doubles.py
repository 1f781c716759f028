"""TEST DOUBLES of tt-metal's three image generator classes, their signatures, shims and return types read
from tenstorrent/tt-metal (written here, not copied; ``docs/tenstorrent-runner-parity.md`` "Images"):

- ``ImageGenerator``: ``models/ttt_compat/tt/generator.py`` @ 1a6b64e03908f3ef0493692a2a6017f74ae06796,
  ``_prefill_forward_text_impl``: for each prefill row ``idx``, when ``pixel_values`` is not None it hands
  ``pixel_values[idx]`` (and ``image_grid_thw[idx]``, ``image_sizes[idx]`` where given) to the model's
  ``prepare_inputs_prefill(**kwargs)``. The double records, per row, what that call would get.
- ``Gemma3ForConditionalGeneration``: ``models/ttt_compat/tt/generator_vllm.py`` @
  3dfeae9445a24e18e75ff2de2313c7a30bfe2bcf: ``prefill_forward(self, *args, page_tables_per_layer=None,
  **kwargs)`` -> ``Generator.prefill_forward_text`` while hybrid groups are disabled (they are there);
  ``initialize_vllm_model(hf_config, mesh_device, max_batch_size, max_seq_len=131072, n_layers=None,
  tt_data_parallel=1, optimizations="performance")``; no prefix caching, async decode, sample on device.
- ``Mistral3ForConditionalGeneration`` (same file): ``prefill_forward(self, *args, **kwargs)`` reads
  ``kwargs["tokens"]``, ``kwargs["prompt_lens"]``, ``kwargs.get("images")``, ``page_table``, ``kv_cache``;
  pads each row after its prompt with the tokenizer's pad id; builds ``pixel_values``/``image_sizes`` from
  ``images`` only if ``images[0]`` has ``pixel_values``; calls ``prefill_forward_text(tokens=, page_table=,
  kv_cache=, prompt_lens=, pixel_values=, image_sizes=)`` and nothing else; ``initialize_vllm_model``
  without ``n_layers``, asserting ``optimizations is None``.
- ``Qwen2_5_VLForConditionalGeneration``: ``models/demos/qwen25_vl/tt/generator_vllm.py`` @
  00493af661ce7390e6c91d36e54e5691327952b7 on ``QwenVLGenerator``, its base
  ``models/demos/qwen25_vl/tt/generator.py`` (the newest stored version; no commit in the index):
  ``prefill_forward(self, tokens, page_table, kv_cache, prompt_lens, enable_trace, **kwargs)`` pops
  ``empty_slots``, asserts every ``start_pos`` is 0, concatenates the image rows' ``pixel_values`` and
  stacks their ``(3,)`` grids (asserting their shape), returns ``(logits, rope_deltas)``, never reads
  ``sampling_params``; ``decode_forward(self, *args, **kwargs)`` pops ``rope_deltas_all_users``
  (``update_rope_deltas``) and ``slot_remap``, then ``QwenVLGenerator.decode_forward(tokens, start_pos,
  page_table, kv_cache, enable_trace, read_from_device, sampling_params, reset_batch, prompt_tokens,
  output_tokens)``.
- ``Qwen3VLForConditionalGeneration``: ``models/demos/qwen3_vl/tt/generator_vllm.py``, the newest stored
  version (its prefill loops over users; the index gives no commit for it; older @
  1d1ec00206d670c05ec43719a52b0d3de7015de5), on ``models/demos/qwen3_vl/tt/generator.py`` @
  5f866a08c2bfd043c3e4188e1461688dbaf25029: ``prefill_forward(self, tokens, page_table, kv_cache,
  prompt_lens, enable_trace, **kwargs)`` asserts every ``start_pos`` is 0, sets ``enable_trace = False``,
  writes the tokenizer's pad id after each prompt, and per row ``user_id`` with
  ``pixel_values[user_id]`` not None concatenates that row's images and stacks its ``(3,)`` grids for the
  vision tower; returns ``(logits (B, 1, vocab), rope_deltas (B, 1))``; reads neither ``empty_slots`` nor
  ``sampling_params``. ``decode_forward(self, *args, **kwargs)`` pops ``rope_deltas_all_users``
  (``update_rope_deltas``: padded with 0 to the batch) and calls the base's ``decode_forward(tokens,
  start_pos, page_table, kv_cache, enable_trace, read_from_device, sampling_params)`` (no
  ``reset_batch``). ``initialize_vllm_model(hf_config, mesh_device, max_batch_size, max_seq_len,
  tt_data_parallel=1, optimizations=None)`` asserts ``optimizations is None`` and builds one model
  whatever ``tt_data_parallel`` says. ``Qwen3VLRowZero`` (same class name) is the stored version between:
  the same loop, but ``has_images`` decided from row 0 for every row.

They compute nothing: logits say which row they came from (``tt_metal_doubles``), Qwen's rope delta of
row ``i`` is ``ROPE_DELTA_BASE - i``; Qwen3-VL's logits and rope delta of a row follow its prompt length
(``ROPE_DELTA_BASE - prompt_len``), so they can be told apart when rows go one per call.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import torch

from tests.contract import tt_metal_doubles as doubles

IMAGE_KEYS = ("pixel_values", "image_grid_thw", "image_sizes")
MISTRAL_PAD_ID = 11  # the tokenizer's pad id its prefill writes after each prompt
QWEN3_VL_PAD_ID = 12  # likewise for Qwen3-VL
ROPE_DELTA_BASE = -100


class ImageGenerator(doubles.TttCompatGenerator):
    """The ttt_compat ``Generator`` double, with ``_prefill_forward_text_impl``'s per-row image indexing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepared: list[dict[str, Any]] = []  # per prefill row: the image keywords its model got

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
        given = {key: kwargs.pop(key) for key in IMAGE_KEYS if key in kwargs}
        for idx in range(tokens.shape[0]):
            local = dict(given)
            if local.get("pixel_values") is not None:
                local["pixel_values"] = local["pixel_values"][idx]
                if "image_grid_thw" in local:
                    local["image_grid_thw"] = local["image_grid_thw"][idx]
                if local.get("image_sizes") is not None:
                    local["image_sizes"] = local["image_sizes"][idx]
            self.prepared.append(local)
        return super()._prefill_forward_text_impl(
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


class Gemma3ForConditionalGeneration(doubles._VllmKVCache, ImageGenerator):
    model_capabilities = {
        "supports_prefix_caching": False,
        "supports_async_decode": True,
        "supports_sample_on_device": True,
        "max_device_top_k": 32,
    }

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config,
        mesh_device,
        max_batch_size,
        max_seq_len=131072,
        n_layers=None,
        tt_data_parallel=1,
        optimizations: str = "performance",
    ):
        return doubles._build(cls, mesh_device, max_batch_size, tt_data_parallel)

    def prefill_forward(self, *args, page_tables_per_layer=None, **kwargs):
        return super().prefill_forward_text(*args, **kwargs)

    def decode_forward(self, *args, page_tables_per_layer=None, **kwargs):
        return super().decode_forward(*args, **kwargs)


class Mistral3ForConditionalGeneration(doubles._VllmKVCache, ImageGenerator):
    model_capabilities = {
        "supports_prefix_caching": False,
        "supports_sample_on_device": True,
        "max_device_top_k": 32,
    }

    @classmethod
    def initialize_vllm_model(
        cls,
        hf_config,
        mesh_device,
        max_batch_size,
        max_seq_len=131072,
        tt_data_parallel=1,
        optimizations=None,
    ):
        assert optimizations is None, "Custom optimizations are not supported for this model"
        return doubles._build(cls, mesh_device, max_batch_size, tt_data_parallel)

    def prefill_forward(self, *args, **kwargs):
        tokens = kwargs["tokens"]
        prompt_lens = kwargs["prompt_lens"]
        data = kwargs.get("images", None)
        for i in range(tokens.shape[0]):
            tokens[i][prompt_lens[i] :] = MISTRAL_PAD_ID
        pixel_values, image_sizes = None, None
        if data and hasattr(data[0], "pixel_values"):
            pixel_values = [im.pixel_values for im in data if hasattr(im, "pixel_values")]
            image_sizes = [im.image_sizes for im in data if hasattr(im, "image_sizes")]
        self._record("mistral3_prefill", given=sorted(kwargs))
        return super().prefill_forward_text(
            tokens=tokens,
            page_table=kwargs.get("page_table", None),
            kv_cache=kwargs.get("kv_cache", None),
            prompt_lens=prompt_lens,
            pixel_values=pixel_values if pixel_values else None,
            image_sizes=image_sizes if image_sizes else None,
        )

    def decode_forward(self, *args, **kwargs):
        return super().decode_forward(*args, **kwargs)


class QwenVLGenerator(doubles._Recording):
    """``models/demos/qwen25_vl/tt/generator.py``'s ``Generator`` (composition over tt-metal's Generator)."""

    def __init__(self, model, model_args, mesh_device, processor=None, tokenizer=None):
        self._ttt_generator = doubles.CurrentGenerator(model, model_args, mesh_device)
        self.calls = self._ttt_generator.calls
        self.rope_deltas: list[list[int]] = []  # what update_rope_deltas received, call by call

    @property
    def data_parallel(self):
        return self._ttt_generator.data_parallel

    def prefill_forward_text(
        self,
        tokens,
        rot_mats,
        page_table=None,
        kv_cache=None,
        prompt_lens=None,
        enable_trace=True,
        empty_slots=None,
    ):
        self._record("qwen_prefill_forward_text", enable_trace=enable_trace, empty_slots=empty_slots)
        return doubles._logits(tokens.shape[0])

    def update_rope_deltas(self, rope_deltas_list: list):
        self.rope_deltas.append(list(rope_deltas_list))

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
        prompt_tokens=None,
        output_tokens=None,
    ):
        return self._ttt_generator.decode_forward(
            tokens,
            start_pos,
            page_table,
            kv_cache,
            enable_trace,
            read_from_device,
            sampling_params,
            reset_batch,
        )

    def read_decode_output(self, tt_out, async_read=False):
        return self._ttt_generator.read_decode_output(tt_out, async_read=async_read)

    def process_decode_output_host(self, tt_out, is_tokens=False):
        return self._ttt_generator.process_decode_output_host(tt_out, is_tokens=is_tokens)


class Qwen2_5_VLForConditionalGeneration(QwenVLGenerator):
    model_capabilities = {
        "supports_prefix_caching": False,
        "supports_async_decode": True,
        "supports_sample_on_device": True,
        "max_device_top_k": 32,
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.vision_inputs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (pixel_values, image_grid_thw)

    @classmethod
    def initialize_vllm_model(
        cls, hf_config, mesh_device, max_batch_size, max_seq_len, tt_data_parallel=1, optimizations=None
    ):
        assert optimizations is None, "Custom optimizations are not supported for this model"
        return doubles._build(cls, mesh_device, max_batch_size, tt_data_parallel)

    def allocate_kv_cache(self, *args, **kwargs):
        model = self._ttt_generator.model
        return doubles.allocate_vllm_kv_cache(*args, **kwargs, dp_model=model, tt_cache_path="cache")

    def prefill_forward(self, tokens, page_table, kv_cache, prompt_lens, enable_trace, **kwargs):
        empty_slots = kwargs.pop("empty_slots", None)
        start_pos = kwargs.get("start_pos", None)
        assert (start_pos is None) or all(x == 0 for x in start_pos), (
            f"Prefix caching is not supported for Qwen2_5_VL, got start_pos: {start_pos}"
        )
        user_pixel_values = [pv for pv in kwargs.get("pixel_values", []) if pv is not None]
        if user_pixel_values:
            pixel_values = torch.concat([im for pv in user_pixel_values for im in pv], dim=0)
            assert "image_grid_thw" in kwargs, "Expected image_grid_thw when pixel_values are provided."
            grids = [im for g in kwargs["image_grid_thw"] if g is not None for im in g]
            assert grids and all(im is not None for im in grids), "Expected non-empty image_grid_thw."
            for g in grids:
                assert torch.is_tensor(g) and g.ndim == 1 and g.numel() == 3, f"grid shape {tuple(g.shape)!r}"
            self.vision_inputs.append((pixel_values, torch.stack([g.to(torch.int32) for g in grids])))
        self._record("qwen_prefill", unread=sorted(set(kwargs) - {"pixel_values", "image_grid_thw"}))
        logits = self.prefill_forward_text(
            tokens,
            rot_mats=None,
            page_table=page_table,
            kv_cache=kv_cache,
            prompt_lens=prompt_lens,
            enable_trace=enable_trace,
            empty_slots=empty_slots,
        )
        rope_deltas = torch.tensor([[ROPE_DELTA_BASE - i] for i in range(tokens.shape[0])])
        return logits, rope_deltas

    def decode_forward(self, *args, **kwargs):
        rope_deltas_list = kwargs.pop("rope_deltas_all_users", None)
        slot_remap = kwargs.pop("slot_remap", None)
        if rope_deltas_list is not None:
            super().update_rope_deltas(rope_deltas_list)
        assert slot_remap is None, "the double's base takes no slot_remap"
        return super().decode_forward(*args, **kwargs)


class Qwen3VLGenerator(doubles._Recording):
    """``models/demos/qwen3_vl/tt/generator.py`` @ 5f866a08's ``Generator`` (composition over tt-metal's
    Generator, one model)."""

    def __init__(self, model, model_args, mesh_device, processor=None, tokenizer=None):
        self._ttt_generator = doubles.CurrentGenerator(model, model_args, mesh_device)
        self.calls = self._ttt_generator.calls
        self.tokenizer = tokenizer
        self.rope_deltas: list[list[int]] = []  # what update_rope_deltas received, call by call

    def update_rope_deltas(self, rope_deltas_list: list):
        self.rope_deltas.append(list(rope_deltas_list))

    def decode_forward(
        self,
        tokens,
        start_pos,
        page_table=None,
        kv_cache=None,
        enable_trace=True,
        read_from_device=True,
        sampling_params=None,
    ):
        return self._ttt_generator.decode_forward(
            tokens=tokens,
            start_pos=start_pos,
            page_table=page_table,
            kv_cache=[kv_cache],
            enable_trace=enable_trace,
            read_from_device=read_from_device,
            sampling_params=sampling_params,
        )

    def read_decode_output(self, tt_out, async_read=False):
        return self._ttt_generator.read_decode_output(tt_out, async_read=async_read)

    def process_decode_output_host(self, tt_out, is_tokens=False):
        return self._ttt_generator.process_decode_output_host(tt_out, is_tokens=is_tokens)


class Qwen3VLForConditionalGeneration(Qwen3VLGenerator):
    model_capabilities = {
        "supports_prefix_caching": False,
        "supports_async_decode": True,
    }
    has_images_from_row_zero = False  # the newest stored version decides it row by row

    def __init__(self, *args, **kwargs):
        self.reference_model = kwargs.pop("reference_model", None)
        self.visual_model = kwargs.pop("visual_model", None)
        assert self.reference_model is not None and self.visual_model is not None
        super().__init__(*args, **kwargs)
        # Per prefill call, per row: what the vision tower got, (pixel_values, grid_thw), or None.
        self.vision_inputs: list[list[tuple[torch.Tensor, torch.Tensor] | None]] = []

    @classmethod
    def initialize_vllm_model(
        cls, hf_config, mesh_device, max_batch_size, max_seq_len, tt_data_parallel=1, optimizations=None
    ):
        assert optimizations is None, "Custom optimizations are not supported for this model"
        args = SimpleNamespace(max_batch_size=max_batch_size, vocab_size=doubles.VOCAB)
        return cls(
            ["model"],
            [args],
            mesh_device,
            tokenizer=SimpleNamespace(pad_token_id=QWEN3_VL_PAD_ID),
            reference_model="reference",
            visual_model="visual",
        )

    def allocate_kv_cache(self, *args, **kwargs):
        model = self._ttt_generator.model
        return doubles.allocate_vllm_kv_cache(*args, **kwargs, dp_model=model, tt_cache_path="cache")

    def prefill_forward(self, tokens, page_table, kv_cache, prompt_lens, enable_trace, **kwargs):
        start_pos = kwargs.get("start_pos", None)
        assert (start_pos is None) or all(x == 0 for x in start_pos), (
            f"Prefix caching is not supported for Qwen3VL, got start_pos: {start_pos}"
        )
        self._record(
            "qwen3_prefill",
            rows=tokens.shape[0],
            enable_trace=enable_trace,
            unread=sorted(set(kwargs) - {"pixel_values", "image_grid_thw", "start_pos"}),
        )
        enable_trace = False
        batch_size = tokens.shape[0]
        for i in range(batch_size):
            tokens[i][prompt_lens[i] :] = self.tokenizer.pad_token_id
        pixel_values = kwargs.get("pixel_values")
        row_zero = pixel_values is not None and len(pixel_values) > 0 and pixel_values[0] is not None
        output_logits = torch.zeros(batch_size, 1, doubles.VOCAB)
        all_rope_deltas, seen = [], []
        for user_id in range(batch_size):
            has_images = row_zero if self.has_images_from_row_zero else (
                "pixel_values" in kwargs
                and len(kwargs["pixel_values"]) > user_id
                and kwargs["pixel_values"][user_id] is not None
            )  # fmt: skip
            if has_images and kwargs["pixel_values"][user_id] is not None:
                user_pixel_values = kwargs["pixel_values"][user_id]
                user_image_grid_thw = kwargs["image_grid_thw"][user_id]
                if isinstance(user_pixel_values, list) and len(user_pixel_values) > 0:
                    user_pixel_values = torch.concat(user_pixel_values, dim=0)
                    user_image_grid_thw = torch.stack(
                        [g.to(device=tokens.device, dtype=torch.int32) for g in user_image_grid_thw], dim=0
                    )
                seen.append((user_pixel_values, user_image_grid_thw))
            else:
                seen.append(None)
            output_logits[user_id] = float(prompt_lens[user_id])
            all_rope_deltas.append(torch.tensor([[ROPE_DELTA_BASE - int(prompt_lens[user_id])]]))
        self.vision_inputs.append(seen)
        rope_deltas = torch.stack([rd.squeeze(0) for rd in all_rope_deltas], dim=0)
        return output_logits, rope_deltas

    def decode_forward(self, *args, **kwargs):
        rope_deltas_list = kwargs.pop("rope_deltas_all_users", None)
        if rope_deltas_list is not None:
            super().update_rope_deltas(rope_deltas_list)
        return super().decode_forward(*args, **kwargs)


# The stored version between @ 1d1ec002 and the newest: has_images from row 0 for every row.
Qwen3VLRowZero = type(
    "Qwen3VLForConditionalGeneration", (Qwen3VLForConditionalGeneration,), {"has_images_from_row_zero": True}
)
