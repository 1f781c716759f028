"""The documentation's reference pages are what docs/gen_reference.py writes from the code today.

A new TT option, config key, environment variable or command-line flag changes a page; this test names
the stale pages and the command that rewrites them, so the committed docs never drift from the code.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "docs" / "gen_reference.py"


@pytest.fixture(scope="module")
def gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def test_committed_reference_pages_match_the_code(gen_reference):
    stale = gen_reference.stale_pages()
    assert not stale, (
        f"{', '.join(str(p.relative_to(REPO)) for p in stale)} differ from the code: regenerate with "
        f"`{gen_reference.REGENERATE}` (.venv/bin/python docs/gen_reference.py) and commit the result"
    )


def test_every_tt_option_and_config_key_is_on_its_page(gen_reference):
    """The pages are complete: each option, key and variable the code accepts appears in them."""
    from tt_serve import envs as serve_envs
    from tt_serve.config_keys import SECTIONS
    from tt_vllm_plugin import envs as plugin_envs
    from tt_vllm_plugin.options import TTOptions

    options = gen_reference.tt_options_page()
    for name in TTOptions.__dataclass_fields__:
        if name != "given":
            assert f"| `{name}` |" in options
    config = gen_reference.config_page()
    for section in SECTIONS:
        for key in section.keys:
            assert f"| `{key.name}` |" in config
    environment = gen_reference.environment_page()
    for variable in (*plugin_envs.REGISTRY, *serve_envs.REGISTRY):
        assert f"| `{variable.name}` |" in environment


def test_a_stale_page_is_reported(gen_reference, tmp_path, monkeypatch):
    """The check really compares: a page edited by hand is stale, a rewritten one is not."""
    monkeypatch.setattr(gen_reference, "REFERENCE", tmp_path)
    assert {p.name for p in gen_reference.stale_pages()} == set(gen_reference.PAGES)
    assert gen_reference.main([]) == 0
    assert gen_reference.stale_pages() == []
    page = tmp_path / "tt-options.md"
    page.write_text(page.read_text().replace("kv_cache_tokens", "kv_tokens"))
    assert gen_reference.stale_pages() == [page]
    assert gen_reference.main(["--check"]) == 1


def test_config_keys_are_the_keys_the_parser_accepts(tmp_path):
    """A key described in config_keys.py is accepted by the parser, and an undescribed one is refused."""
    from tt_serve.config import load_config
    from tt_serve.errors import ServeError

    path = tmp_path / "c.toml"
    path.write_text('[models.m]\nbackend = "host"\nvllm_args = []\ntt = {}\nenv = {}\n')
    assert load_config(path).models[0].backend == "host"
    path.write_text('[models.m]\nbackend = "host"\ncolour = "red"\n')
    with pytest.raises(ServeError) as refused:
        load_config(path)
    assert refused.value.message == (
        f"{path}: models.m.colour: unknown key; allowed keys here: backend, env, tt, vllm_args"
    )
