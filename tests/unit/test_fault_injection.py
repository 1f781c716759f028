"""TT_VLLM_FAULT_INJECT: parsing, the attempt filter, and the step it fires in."""

from __future__ import annotations

import pytest

from tt_vllm_plugin.worker.fault_injection import (
    FaultInjector,
    FaultMode,
    FaultSpec,
    FaultSpecError,
    InjectedFault,
)


def test_parse_full_spec() -> None:
    assert FaultSpec.parse(" step=3, mode=exit ,attempt=1") == FaultSpec(3, FaultMode.EXIT, 1)
    assert FaultSpec.parse("step=1") == FaultSpec(1, FaultMode.RAISE, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("mode=raise", "step=N is required"),
        ("step=0", "step must be a positive integer"),
        ("step=two", "step must be a positive integer"),
        ("step=1,mode=explode", "mode must be raise or exit"),
        ("step=1,when=now", "bad part 'when=now'"),
        ("step=1,step=2", "bad part 'step=2'"),
        ("step=1,attempt=-1", "attempt must be a positive integer"),
    ],
)
def test_bad_specs_name_the_problem(text: str, why: str) -> None:
    with pytest.raises(FaultSpecError) as error:
        FaultSpec.parse(text)
    assert str(error.value) == (
        f'TT_VLLM_FAULT_INJECT must look like "step=N[,mode=raise|exit][,attempt=K]"; got {text!r} ({why})'
    )


def test_raises_in_exactly_the_chosen_model_step() -> None:
    injector = FaultInjector.from_env({"TT_VLLM_FAULT_INJECT": "step=3"})
    injector.before_model_step()
    injector.before_model_step()
    with pytest.raises(InjectedFault) as error:
        injector.before_model_step()
    assert str(error.value) == "injected fault in model step 3 (TT_VLLM_FAULT_INJECT=step=3,mode=raise)"
    injector.before_model_step()  # once only


@pytest.mark.parametrize(("attempt", "armed"), [(None, True), ("1", True), ("2", False)])
def test_attempt_filter_follows_tt_serve_attempt(attempt: str | None, armed: bool) -> None:
    env = {"TT_VLLM_FAULT_INJECT": "step=1,attempt=1"}
    if attempt is not None:
        env["TT_SERVE_ATTEMPT"] = attempt
    assert (FaultInjector.from_env(env).spec is not None) is armed


def test_unset_is_inert() -> None:
    injector = FaultInjector.from_env({})
    for _ in range(5):
        injector.before_model_step()
    assert injector.spec is None
