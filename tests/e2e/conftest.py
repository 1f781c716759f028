"""One plugin OpenAI server shared by the HTTP robustness tests (bad input, aborts).

Session-scoped so that test_bad_input.py and test_aborts.py start it once between them; it only starts
when a test asks for ``plugin_server``. Small on purpose: 512-token context, 8 sequences, 8192 KV tokens.
"""

from __future__ import annotations

import pytest

from tests.e2e.server import RunningServer, free_port, running_server, vllm_api_server_command

SERVED_NAME = "smollm2-135m-instruct"
MAX_MODEL_LEN = 512


@pytest.fixture(scope="session")
def plugin_server(default_model_path, tmp_path_factory) -> RunningServer:
    port = free_port()
    command = vllm_api_server_command(
        default_model_path,
        port,
        "--served-model-name",
        SERVED_NAME,
        "--max-model-len",
        str(MAX_MODEL_LEN),
        "--max-num-seqs",
        "8",
        "--additional-config",
        '{"tt": {"kv_cache_tokens": 8192}}',
    )
    log_path = tmp_path_factory.mktemp("plugin_server") / "server.log"
    with running_server(command, log_path, port, env={"VLLM_PLUGINS": "tt", "TT_VLLM_DEVICE": "host"}) as srv:
        yield srv
