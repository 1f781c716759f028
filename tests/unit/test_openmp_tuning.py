"""The host device's OpenMP spin setting for the engine process (platform.py)."""

from __future__ import annotations

import pytest

from tt_vllm_plugin.platform import HOST_GOMP_SPINCOUNT, _tune_openmp_for_the_engine_process


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    return monkeypatch


def test_sets_a_short_spin_when_nothing_is_set(clean_env):
    import os

    _tune_openmp_for_the_engine_process()
    assert os.environ["GOMP_SPINCOUNT"] == HOST_GOMP_SPINCOUNT == "1000"


def test_the_users_spin_count_wins(clean_env):
    import os

    clean_env.setenv("GOMP_SPINCOUNT", "300000")
    _tune_openmp_for_the_engine_process()
    assert os.environ["GOMP_SPINCOUNT"] == "300000"


def test_a_wait_policy_leaves_the_spin_count_alone(clean_env):
    import os

    clean_env.setenv("OMP_WAIT_POLICY", "ACTIVE")
    _tune_openmp_for_the_engine_process()
    assert "GOMP_SPINCOUNT" not in os.environ
