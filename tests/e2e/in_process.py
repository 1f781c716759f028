"""A ``vllm.LLM`` whose engine core runs in the test's own process.

Then ``collective_rpc`` reaches the runner itself (tests can read its state or watch its model calls),
and small models start without a second process. The engine is dropped and collected on exit, so the
next test's engine does not share memory with it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def in_process_llm(**engine_args: Any) -> Iterator[Any]:
    from vllm import LLM

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        llm = LLM(**engine_args)
        try:
            yield llm
        finally:
            del llm
            gc.collect()
