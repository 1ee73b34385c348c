"""Account blocks: users, single-use action tokens, lockout, mail, hooks, sessions.

The core modules here do not import FastAPI; import each block from its module
(:mod:`fastapi_secure.accounts.users`, :mod:`~fastapi_secure.accounts.action_tokens`,
:mod:`~fastapi_secure.accounts.lockout`, :mod:`~fastapi_secure.accounts.mail`,
:mod:`~fastapi_secure.accounts.hooks`, :mod:`~fastapi_secure.accounts.sessions`,
:mod:`~fastapi_secure.accounts.identities`).
The SQLAlchemy user store lives in :mod:`fastapi_secure.accounts.sqlalchemy` and
the Redis backends in ``*_redis`` modules, so importing this package never
imports SQLAlchemy or redis.
"""
