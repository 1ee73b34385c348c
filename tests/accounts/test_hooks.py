"""Lifecycle hooks: run in order, never break the caller, never log a secret."""

from __future__ import annotations

import logging

import anyio
import pytest

from fastapi_secure.accounts.hooks import AccountEvent, AccountHooks, HookContext
from fastapi_secure.errors import ConfigurationError
from fastapi_secure.testing import FakeClock

pytestmark = pytest.mark.anyio


async def test_hooks_run_in_order_with_the_facts(fake_clock: FakeClock) -> None:
    hooks = AccountHooks(clock=fake_clock)
    calls: list[tuple[str, HookContext]] = []

    async def first(context: HookContext) -> None:
        calls.append(("first", context))

    async def second(context: HookContext) -> None:
        calls.append(("second", context))

    hooks.add(AccountEvent.REGISTERED, first)
    hooks.add("registered", second)
    await hooks.emit(AccountEvent.REGISTERED, subject="7")
    await hooks.emit(AccountEvent.VERIFIED, subject="7")
    assert [name for name, _ in calls] == ["first", "second"]
    assert calls[0][1].subject == "7"
    assert calls[0][1].event is AccountEvent.REGISTERED
    assert calls[0][1].occurred_at == fake_clock()
    assert hooks.has("registered")
    assert not hooks.has(AccountEvent.VERIFIED)
    assert "registered" in repr(hooks)


@pytest.mark.parametrize("event", list(AccountEvent))
async def test_every_event_can_be_followed(event: AccountEvent) -> None:
    hooks = AccountHooks()
    seen: list[AccountEvent] = []

    @hooks.on(event)
    async def follow(context: HookContext) -> None:
        seen.append(context.event)

    await hooks.emit(event)
    assert seen == [event]
    assert str(event) == event.value


async def test_a_raising_hook_is_logged_without_its_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hooks = AccountHooks()
    after: list[str] = []

    @hooks.on(AccountEvent.PASSWORD_RESET)
    async def broken(context: HookContext) -> None:
        raise ValueError("token=abc123-secret")

    @hooks.on(AccountEvent.PASSWORD_RESET)
    async def still_runs(context: HookContext) -> None:
        after.append("ran")

    with caplog.at_level(logging.ERROR, logger="fastapi_secure.accounts"):
        await hooks.emit(AccountEvent.PASSWORD_RESET, subject="1")
    assert after == ["ran"]
    assert "broken" in caplog.text
    assert "ValueError" in caplog.text
    assert "abc123-secret" not in caplog.text


async def test_a_slow_hook_is_abandoned() -> None:
    hooks = AccountHooks(timeout=0.05)

    @hooks.on(AccountEvent.LOGIN_FAILED)
    async def hangs(context: HookContext) -> None:
        await anyio.Event().wait()

    with anyio.fail_after(5):
        await hooks.emit(AccountEvent.LOGIN_FAILED)


async def test_hooks_without_timeout_run_to_the_end() -> None:
    hooks = AccountHooks(timeout=None)
    done: list[bool] = []

    @hooks.on(AccountEvent.LOGIN_SUCCEEDED)
    async def quick(context: HookContext) -> None:
        done.append(True)

    await hooks.emit(AccountEvent.LOGIN_SUCCEEDED)
    assert done == [True]


async def test_cancellation_of_the_caller_propagates() -> None:
    hooks = AccountHooks(timeout=None)
    started = anyio.Event()

    @hooks.on(AccountEvent.SESSION_REVOKED)
    async def waits(context: HookContext) -> None:
        started.set()
        await anyio.Event().wait()

    with anyio.move_on_after(5) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(hooks.emit, AccountEvent.SESSION_REVOKED)
            await started.wait()
            group.cancel_scope.cancel()
    assert not scope.cancelled_caught


def test_configuration_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        AccountHooks(timeout=0)
    hooks = AccountHooks()
    with pytest.raises(ValueError, match="not_an_event"):
        hooks.on("not_an_event")
    with pytest.raises(ConfigurationError):
        hooks.add(AccountEvent.LOCKED, "not callable")  # type: ignore[arg-type]
