"""One plugin OpenAI server shared by the HTTP robustness tests (bad input, aborts).

Session-scoped so that test_bad_input.py, test_aborts.py, test_refusals_http.py and test_openai_server.py
start it once between them; it only starts
when a test asks for ``plugin_server``. Small on purpose: 512-token context, 8 sequences, 8192 KV tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.server import RunningServer, host_plugin_server

SERVED_NAME = "smollm2-135m-instruct"
MAX_MODEL_LEN = 512


@pytest.fixture(scope="session")
def plugin_server(default_model_path, tmp_path_factory) -> Iterator[RunningServer]:
    with host_plugin_server(
        default_model_path,
        tmp_path_factory.mktemp("plugin_server"),
        "--served-model-name",
        SERVED_NAME,
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-num-seqs",
        "8",
        "--additional-config",
        '{"tt": {"kv_cache_tokens": 8192}}',
    ) as server:
        yield server
