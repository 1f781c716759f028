"""The host device: our PyTorch implementations of the model contract run here (CPU, or CUDA)."""

from __future__ import annotations

import math
import mmap
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from tt_vllm_plugin import envs

HOST_TORCH_DEVICE_ENV = envs.TT_VLLM_HOST_TORCH_DEVICE.name
# libgomp's spin before a waiting OpenMP thread sleeps, for the engine process on the host device (the
# platform sets it; why: platform._tune_openmp_for_the_engine_process).
HOST_GOMP_SPINCOUNT = "1000"


@dataclass(frozen=True)
class HostDevice:
    """Stands where tt-metal models get a ttnn mesh device: says where and in which dtype to compute."""

    torch_device: torch.device
    dtype: torch.dtype
    # One device, one KV cache: what the runner asks of any device (TTNNDevice has the mesh's).
    num_devices: ClassVar[int] = 1
    devices_per_submesh: ClassVar[int] = 1

    @property
    def name(self) -> str:
        return f"host ({self.torch_device.type}, {str(self.dtype).removeprefix('torch.')})"

    def wait_for_events(self, events: Iterable[Any]) -> None:
        """Wait for the events a host model's async read returned (``torch.cuda.Event``; none on CPU)."""
        for event in events:
            event.synchronize()


def host_torch_device() -> torch.device:
    """The torch device the host device computes on, from ``TT_VLLM_HOST_TORCH_DEVICE`` (default cpu)."""
    wanted = envs.TT_VLLM_HOST_TORCH_DEVICE.get().lower()
    if wanted not in ("cpu", "cuda"):
        raise ValueError(f"{HOST_TORCH_DEVICE_ENV}={wanted!r} is not supported; use 'cpu' or 'cuda'.")
    if wanted == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"{HOST_TORCH_DEVICE_ENV}=cuda but torch sees no CUDA device (torch {torch.__version__}); "
            "unset it to run the host device on the CPU."
        )
    return torch.device(wanted)


def zeroed_tensor(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A zero tensor; on the CPU in fresh anonymous pages, which the OS zero-fills on first touch.

    ``torch.zeros`` writes every byte at once: 1.5 s for the 2 GiB KV cache of the offline benchmark,
    on the engine's start-up path. Anonymous pages cost nothing until a block is first written, and the
    blocks a run never uses take no memory. Page-aligned, as the kernels' vector loads like it.
    """
    if device.type != "cpu":
        return torch.zeros(shape, dtype=dtype, device=device)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes == 0:
        return torch.zeros(shape, dtype=dtype)
    # The tensor keeps the mapping alive; it is unmapped when the last view of the tensor goes.
    return torch.frombuffer(mmap.mmap(-1, nbytes), dtype=dtype).view(shape)


def open_host_device(dtype: torch.dtype) -> HostDevice:
    return HostDevice(torch_device=host_torch_device(), dtype=dtype)


def tolerate_missing_accelerator() -> None:
    """Make ``torch.accelerator.empty_cache``/``empty_host_cache`` no-ops when torch has no accelerator.

    vLLM's shutdown calls it for every platform that is not its own CPU platform, and on CPU-only
    torch it raises "Cannot access accelerator device when none is available", turning a clean exit
    into a traceback. vLLM's own CPU worker patches it the same way.
    """
    if not torch.accelerator.is_available():
        torch.accelerator.empty_cache = lambda: None
        torch.accelerator.empty_host_cache = lambda: None
