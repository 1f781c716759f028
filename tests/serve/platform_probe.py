"""Run by test_serve_exactly_one.py in a subprocess: what vLLM's own platform resolution picks.

Prints one line ``PROBE {json}`` with the function vLLM loaded for the ``tt`` entry point and the
platform class it activated; with ``--spawn`` also what a process started through vLLM's
multiprocessing context (spawn, as set by VLLM_WORKER_MULTIPROC_METHOD) picks, the way the engine core
is started.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def describe() -> dict[str, Any]:
    from vllm.plugins import PLATFORM_PLUGINS_GROUP, load_plugins_by_group

    plugins = load_plugins_by_group(PLATFORM_PLUGINS_GROUP)
    from vllm.platforms import current_platform

    cls = type(current_platform)
    tt = plugins.get("tt")
    return {
        "plugins": sorted(plugins),
        "tt": f"{tt.__module__}:{tt.__name__}" if tt else None,
        "platform": f"{cls.__module__}.{cls.__qualname__}",
        "device_name": current_platform.device_name,
    }


def _child(queue: Any) -> None:
    queue.put(describe())


if __name__ == "__main__":
    result: dict[str, Any] = {"main": describe()}
    if "--spawn" in sys.argv:
        from vllm.utils.system_utils import get_mp_context

        context = get_mp_context()
        queue = context.Queue()
        process = context.Process(target=_child, args=(queue,))
        process.start()
        result["child"] = queue.get(timeout=300)
        result["child_method"] = context.get_start_method()
        process.join(timeout=60)
    print("PROBE " + json.dumps(result), flush=True)
