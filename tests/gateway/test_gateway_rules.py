"""The gateway's rules that need no engine: which names are secret and how they are hidden, the engine
environment rule, the served routes and the dot-segment check, the [gateway] keys for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tt_serve.config import load_config
from tt_serve.gateway.environment import DEFAULT_KEEP, EngineEnvRule
from tt_serve.gateway.paths import dot_segment_problem
from tt_serve.gateway.secrets import (
    PLACEHOLDER,
    Redactor,
    is_secret_name,
    redact_args,
    restore_redacted,
    secret_arg_values,
)


# ---- secret names ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "TT_SERVE_ADMIN_TOKEN",
        "HF_TOKEN",
        "VLLM_API_KEY",
        "OPENAI_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_SESSION_TOKEN",
        "PGPASSWORD",
        "MY_CLIENTSECRET",
        "DB_PASS",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "SSH_AUTH_SOCK",
        "--api-key",
        "--hf-token",
        "--api_key",
    ],
)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "TOKENIZERS_PARALLELISM",
        "PATH",
        "HOME",
        "TT_METAL_HOME",
        "PYTHON_KEYRING_BACKEND",
        "VLLM_PLUGINS",
        "--tokenizer",
        "--max-num-batched-tokens",
        "--ssl-keyfile",
        "--max-model-len",
    ],
)
def test_names_that_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


# ---- engine arguments -----------------------------------------------------------------------------
ARGS = [
    "--max-num-seqs",
    "4",
    "--api-key",
    "sk-one",
    "sk-two",
    "--hf-token=hf_abcdef",
    "--watermark-config",
    '{"key": 42}',
    "--return-tokens-as-token-ids",  # a secret-looking flag without a value: nothing to hide
    "--seed",
    "3",
]


def test_secret_arguments_are_redacted_in_place() -> None:
    assert redact_args(ARGS) == [
        "--max-num-seqs",
        "4",
        "--api-key",
        PLACEHOLDER,
        PLACEHOLDER,
        f"--hf-token={PLACEHOLDER}",
        "--watermark-config",
        PLACEHOLDER,
        "--return-tokens-as-token-ids",
        "--seed",
        "3",
    ]
    assert secret_arg_values(ARGS) == ["sk-one", "sk-two", "hf_abcdef", '{"key": 42}']


def test_a_swap_that_sends_the_redacted_arguments_back_keeps_the_secrets() -> None:
    shown = redact_args(ARGS)
    shown[1] = "8"  # the operator changed --max-num-seqs in the console and left the rest as shown
    restored = restore_redacted(shown, ARGS)
    assert restored == [*ARGS[:1], "8", *ARGS[2:]]
    assert restore_redacted(["--api-key", "sk-new"], ARGS) == ["--api-key", "sk-new"]  # a real new value
    with pytest.raises(ValueError) as caught:
        restore_redacted(["--api-key", PLACEHOLDER], ["--seed", "1"])
    assert str(caught.value) == (
        "--api-key is given as '***' (the redacted value) but the model's current engine arguments have no "
        "value to keep for it; give the real value"
    )


def test_redactor_hides_every_known_value_in_text() -> None:
    redactor = Redactor(["s3cret-token", "abc"])  # "abc": too short to hide without blanking words
    redactor.add("s3cret-token-long", None, "")
    text = "argv: --api-key s3cret-token-long; env s3cret-token; abc"
    assert redactor.text(text) == f"argv: --api-key {PLACEHOLDER}; env {PLACEHOLDER}; abc"
    assert Redactor().text(text) == text


# ---- the engine environment rule ------------------------------------------------------------------
GATEWAY_ENV = {
    "PATH": "/usr/bin",
    "TT_SERVE_ADMIN_TOKEN": "admin",
    "TT_SERVE_CONFIG": "/etc/gw.toml",
    "TT_SERVE_GATEWAY": "http://x",
    "TT_SERVE_CACHE": "/cache",
    "HF_TOKEN": "hf_x",
    "VLLM_API_KEY": "k",
    "DB_PASSWORD": "pw",
    "TOKENIZERS_PARALLELISM": "false",
    "MY_SITE_URL": "http://intranet",
}


def test_the_engine_environment_rule() -> None:
    rule = EngineEnvRule(drop=("MY_SITE_*",))
    assert rule.apply(GATEWAY_ENV) == {
        "PATH": "/usr/bin",
        "TT_SERVE_CACHE": "/cache",
        "HF_TOKEN": "hf_x",
        "TOKENIZERS_PARALLELISM": "false",
    }
    assert rule.why_dropped("TT_SERVE_ADMIN_TOKEN") == "tt-serve's gateway-only variable"
    assert rule.why_dropped("MY_SITE_URL") == "matches [gateway] engine_env_drop"
    assert rule.why_dropped("VLLM_API_KEY") == "a secret name not in [gateway] engine_env_keep"
    # keep exempts secret names only; gateway-only variables and drop globs win over it
    everything = EngineEnvRule(drop=("HF_*",), keep=("*",))
    assert "TT_SERVE_ADMIN_TOKEN" not in everything.apply(GATEWAY_ENV)
    assert "HF_TOKEN" not in everything.apply(GATEWAY_ENV) and "VLLM_API_KEY" in everything.apply(GATEWAY_ENV)
    assert rule.is_secret("HF_TOKEN") and rule.is_secret("MY_SITE_URL") and not rule.is_secret("PATH")


def test_gateway_keys_for_the_rule_and_holding(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[gateway]\nhold_requests_s = 2.5\nengine_env_drop = ["A_*"]\nengine_env_keep = []\n')
    settings = load_config(path).gateway
    assert settings is not None
    assert settings.hold_requests_s == 2.5
    assert settings.engine_env == EngineEnvRule(drop=("A_*",), keep=())
    path.write_text("[gateway]\n")
    defaults = load_config(path).gateway
    assert defaults is not None and defaults.hold_requests_s == 0
    assert defaults.engine_env == EngineEnvRule(drop=(), keep=DEFAULT_KEEP)


# ---- paths ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "/v1/../tokenize",
        "/v1/%2e%2e/tokenize",
        "/v1/%2E%2E/tokenize",
        "/v1/./../tokenize",
        "/v1/.%2e/tokenize",
        "/v1/%252e%252e/tokenize",
        "/v1/%25252E%25252E/tokenize",
        "/v1/..%2ftokenize",
        "/v1/..%5ctokenize",
        "/v1/completions/..",
        "/v1/./completions",
    ],
)
def test_dot_segments_are_found_however_encoded(path: str) -> None:
    assert dot_segment_problem(path) == (
        f"the path {path!r} has a dot segment ('.' or '..', possibly percent-encoded)"
    )


@pytest.mark.parametrize(
    "path", ["/v1/completions", "/v1/chat/completions", "/admin/api/models/a.b", "/v1/x..y"]
)
def test_ordinary_paths_pass(path: str) -> None:
    assert dot_segment_problem(path) is None


def test_too_deeply_encoded_paths_are_refused() -> None:
    deep = "/v1/%2525252525252e"
    assert dot_segment_problem(deep) == f"the path {deep!r} is percent-encoded more than 4 times over"
