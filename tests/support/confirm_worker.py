"""A worker process for the cross-process action token test.

``python -m tests.support.confirm_worker REDIS_URL PREFIX DB_URL TOKEN GO_FILE N``
waits until ``GO_FILE`` exists, then confirms ``TOKEN`` N times at once and
prints how many confirms won.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

from fastapi_secure.accounts.action_tokens import ActionPurpose, ActionTokens
from fastapi_secure.accounts.errors import InvalidActionTokenError
from fastapi_secure.accounts.redis import RedisActionTokenStore
from fastapi_secure.accounts.sqlalchemy import SQLAlchemyUserStore
from tests.support.accounts import AppUser, sql_database


def wait_for(go: Path) -> None:
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


async def main(redis_url: str, prefix: str, db_url: str, token: str, n: int) -> int:
    store = RedisActionTokenStore.from_url(redis_url, prefix=prefix)
    wins = 0
    async with sql_database(db_url, create=False) as db:
        tokens = ActionTokens(SQLAlchemyUserStore(AppUser, db.transaction), store)

        async def confirm() -> None:
            nonlocal wins
            try:
                await tokens.confirm(ActionPurpose.RESET_PASSWORD, token)
            except InvalidActionTokenError:
                return
            wins += 1

        async with anyio.create_task_group() as group:
            for _ in range(n):
                group.start_soon(confirm)
    await store.aclose()
    return wins


if __name__ == "__main__":
    redis_url, prefix, db_url, token, go, count = sys.argv[1:7]
    wait_for(Path(go))
    print(anyio.run(main, redis_url, prefix, db_url, token, int(count)))
