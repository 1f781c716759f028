"""tt-serve's restart policy: when to restart, how long to wait, when to give up, what it says."""

from __future__ import annotations

import pytest

from tt_serve import restart
from tt_serve.restart import Action, Decision, RestartMode, RestartPolicy
from tt_vllm_plugin.worker import fault_injection

ON_FAILURE = RestartPolicy(RestartMode.ON_FAILURE, max_restarts=3)


def test_default_is_no_restart() -> None:
    decision = RestartPolicy().decide(status=1, restarts_done=0, stop_requested=False)
    assert decision == Decision(Action.EXIT, 1, 1)
    assert decision.message(3) is None


@pytest.mark.parametrize("status", [1, 3, 137])
def test_failure_restarts_with_exponential_back_off(status: int) -> None:
    decisions = [ON_FAILURE.decide(status, done, stop_requested=False) for done in range(3)]
    assert [(d.action, d.restart, d.delay) for d in decisions] == [
        (Action.RESTART, 1, 1.0),
        (Action.RESTART, 2, 2.0),
        (Action.RESTART, 3, 4.0),
    ]
    assert decisions[1].message(3) == (
        f"tt-serve: server exited with status {status}; restarting in 2 s (attempt 2 of 3)"
    )


def test_gives_up_after_max_restarts_with_the_servers_status() -> None:
    decision = ON_FAILURE.decide(1, restarts_done=3, stop_requested=False)
    assert decision == Decision(Action.GIVE_UP, 1, 1)
    assert decision.message(3) == (
        "tt-serve: server exited with status 1; giving up after 3 restarts (--max-restarts 3)"
    )


def test_max_restarts_zero_gives_up_at_once() -> None:
    policy = RestartPolicy(RestartMode.ON_FAILURE, max_restarts=0)
    decision = policy.decide(2, restarts_done=0, stop_requested=False)
    assert decision.action is Action.GIVE_UP
    assert decision.message(0) == (
        "tt-serve: server exited with status 2; giving up after 0 restarts (--max-restarts 0)"
    )


def test_a_requested_clean_exit_is_not_a_failure() -> None:
    decision = ON_FAILURE.decide(0, restarts_done=0, stop_requested=True)
    assert decision == Decision(Action.EXIT, 0, 0) and decision.message(3) is None


def test_an_unrequested_exit_with_status_0_is_a_failure() -> None:
    """vLLM's API server exits 0 when its engine dies, even when the OOM killer SIGKILLed the engine
    core and nobody reported anything: any exit tt-serve did not ask for is a failure."""
    for engine_failed in (False, True):
        decision = ON_FAILURE.decide(0, restarts_done=0, stop_requested=False, engine_failed=engine_failed)
        assert decision == Decision(Action.RESTART, 1, 0, restart=1, delay=1.0)
        assert decision.message(3) == (
            "tt-serve: server exited with status 0 although nobody asked it to stop; restarting in 1 s "
            "(attempt 1 of 3)"
        )
        without_restart = RestartPolicy().decide(0, 0, stop_requested=False, engine_failed=engine_failed)
        assert without_restart == Decision(Action.EXIT, restart.ENGINE_FAILED_STATUS, 0)
        assert without_restart.message(3) == (
            "tt-serve: server exited with status 0 although nobody asked it to stop; tt-serve exits with "
            "status 1 (a failure)"
        )


def test_an_engine_failure_before_a_requested_stop_is_still_a_failure() -> None:
    decision = ON_FAILURE.decide(0, restarts_done=0, stop_requested=True, engine_failed=True)
    assert decision == Decision(Action.EXIT, restart.ENGINE_FAILED_STATUS, 0)


@pytest.mark.parametrize("status", [0, 1, 130, 143])
def test_a_stop_asked_of_tt_serve_is_never_restarted(status: int) -> None:
    """Whatever status the server stops with once asked (vLLM exits 0 on SIGTERM, 130 on a second ^C)."""
    decision = ON_FAILURE.decide(status, restarts_done=0, stop_requested=True)
    assert decision == Decision(Action.EXIT, status, status)


def test_back_off_is_capped() -> None:
    policy = RestartPolicy(RestartMode.ON_FAILURE, max_restarts=10, initial_delay=1.0, max_delay=30.0)
    assert [policy.delay(k) for k in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_negative_max_restarts_is_refused() -> None:
    with pytest.raises(ValueError, match="--max-restarts must be 0 or more, not -1"):
        RestartPolicy(RestartMode.ON_FAILURE, max_restarts=-1)


def test_tt_serve_and_the_worker_agree_on_the_variables() -> None:
    # Defined twice because tt-serve must not import the plugin's worker.
    assert restart.FAILURE_FILE_ENV == fault_injection.FAILURE_FILE_ENV
    assert restart.ATTEMPT_ENV == fault_injection.ATTEMPT_ENV
