"""Password hashing cost per profile, and event-loop stall during concurrent logins.

Run from the repository root::

    .venv/bin/python benchmarks/passwords.py [--logins 16] [--rounds 5] [--max-concurrency N]

Part 1 times ``hash`` and ``verify`` for each profile (median of ``--rounds``).
Part 2 runs a 1 ms ticker task and measures the largest gap between its ticks
(the event-loop stall) while ``--logins`` logins verify at once: first through
the async twin ``averify`` (worker threads under the capacity limit), then by
calling the sync ``verify`` inside the coroutine, as a naive login route
would. For scale, it also shows the ticker alone (what the machine does to
an idle loop) and the same verifications in a process pool (the stall left
when no hashing thread shares the process: CPU and memory contention).
Everything runs in the same process, one after the other, so the ratios
compare like with like. Goal: a stall under 10 ms with the async twins.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor

from fastapi_secure.passwords import (
    Argon2Scheme,
    BcryptScheme,
    PasswordHasher,
)

PASSWORD = "correct horse battery staple"
TICK = 0.001
STALL_GOAL_MS = 10.0


RFC9106 = "argon2id rfc9106 low-memory (t=3 m=64MiB p=4)"
OWASP = "argon2id owasp minimum (t=2 m=19MiB p=1)"
BCRYPT = "bcrypt cost 12"


def profiles(max_concurrency: int | None = None) -> dict[str, PasswordHasher]:
    return {
        RFC9106: PasswordHasher.recommended(max_concurrency=max_concurrency),
        OWASP: PasswordHasher.owasp_minimum(max_concurrency=max_concurrency),
        BCRYPT: PasswordHasher(
            [BcryptScheme(), Argon2Scheme.owasp_minimum()], max_concurrency=max_concurrency
        ),
    }


def median_ms(action: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def worst_gap_during(work: Callable[[], Awaitable[object]]) -> tuple[float, float, float]:
    """Run ``work`` next to a 1 ms ticker; return (largest gap, p99 gap, wall time) in ms."""
    stop = asyncio.Event()
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick_task = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)  # let the ticker settle before the work starts
    gaps.clear()
    start = time.perf_counter()
    await work()
    wall = time.perf_counter() - start
    stop.set()
    await tick_task
    gaps.sort()
    return gaps[-1] * 1000, gaps[int(len(gaps) * 0.99)] * 1000, wall * 1000


def verify_in_process(profile: str, stored: str) -> bool:
    return profiles()[profile].verify(PASSWORD, stored)


async def stall_rows(
    profile: str, logins: int, max_concurrency: int | None
) -> list[tuple[str, float, float, float]]:
    hasher = profiles(max_concurrency)[profile]
    stored = await hasher.ahash(PASSWORD)
    await hasher.adummy_verify()  # make the dummy hash outside the measurement
    loop = asyncio.get_running_loop()

    async def idle() -> None:
        await asyncio.sleep(0.2)

    async def with_async_twins() -> None:
        results = await asyncio.gather(*(hasher.averify(PASSWORD, stored) for _ in range(logins)))
        assert all(results)

    async def with_processes() -> None:
        with ProcessPoolExecutor(max_workers=hasher.max_concurrency) as pool:
            futures = [
                loop.run_in_executor(pool, verify_in_process, profile, stored)
                for _ in range(logins)
            ]
            assert all(await asyncio.gather(*futures))

    async def sync_login() -> bool:
        return hasher.verify(PASSWORD, stored)  # blocks the loop: what the twins avoid

    async def with_sync_verify() -> None:
        results = await asyncio.gather(*(sync_login() for _ in range(logins)))
        assert all(results)

    rows = []
    for label, work in (
        ("idle ticker (machine baseline)", idle),
        (f"{logins} logins, async twin averify", with_async_twins),
        (f"{logins} verifies in a process pool (floor)", with_processes),
        (f"{logins} logins, sync verify in the loop", with_sync_verify),
    ):
        rows.append((label, *await worst_gap_during(work)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--logins", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--max-concurrency", type=int, default=None, help="default: min(4, CPU count)"
    )
    args = parser.parse_args()

    print(f"Hash and verify time, median of {args.rounds} (ms)")
    print(f"{'profile':<48} {'hash':>9} {'verify':>9}")
    for name, hasher in profiles().items():
        stored = hasher.hash(PASSWORD)
        hash_ms = median_ms(functools.partial(hasher.hash, PASSWORD), args.rounds)
        verify_ms = median_ms(functools.partial(hasher.verify, PASSWORD, stored), args.rounds)
        print(f"{name:<48} {hash_ms:>9.1f} {verify_ms:>9.1f}")

    summary = []
    for profile in (RFC9106, OWASP):
        concurrency = profiles(args.max_concurrency)[profile].max_concurrency
        print(f"\nEvent-loop stall, 1 ms ticker: {profile}, max_concurrency={concurrency}")
        print(f"{'scenario':<44} {'max gap':>8} {'p99 gap':>8} {'wall':>8} {'max vs twins':>13}")
        rows = asyncio.run(stall_rows(profile, args.logins, args.max_concurrency))
        twins = rows[1][1]
        for label, worst, p99, wall in rows:
            print(f"{label:<44} {worst:>8.1f} {p99:>8.1f} {wall:>8.0f} {worst / twins:>12.1f}x")
        summary.append((profile, twins, rows[3][1] / twins))
    print()
    for profile, twins, ratio in summary:
        verdict = "met" if twins < STALL_GOAL_MS else "NOT met"
        print(
            f"{profile}: async twins stall {twins:.1f} ms (goal < {STALL_GOAL_MS:.0f} ms: "
            f"{verdict}); sync verify in the loop stalls {ratio:.0f}x longer"
        )


if __name__ == "__main__":
    main()
