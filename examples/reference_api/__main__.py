"""``python -m examples.reference_api``: migrate the database, then serve the API.

Subcommands:

* ``serve`` (default): apply the Alembic migrations, then run uvicorn.
* ``migrate``: apply the migrations only.
* ``create-admin EMAIL USERNAME``: create an admin user; the password is read
  from the ``ADMIN_PASSWORD`` environment variable or asked for on the terminal,
  never taken from the command line (it would land in the shell history).
* ``generate-signing-key``: print a new EdDSA private key (PEM) for
  ``SIGNING_KEY_PEM`` / ``SIGNING_KEY_FILE``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from pydantic import SecretStr


def _database_url() -> str:
    from examples.reference_api.settings import AppSettings

    settings = AppSettings()
    if settings.database_url is None:
        raise SystemExit("DATABASE_URL is empty")
    return settings.database_url.get_secret_value()


def migrate() -> None:
    from examples.reference_api.migrate import upgrade_to_head

    upgrade_to_head(_database_url())


def serve(host: str, port: int, workers: int) -> None:
    import uvicorn

    migrate()
    print(f"reference API on http://{host}:{port}  (docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "examples.reference_api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        server_header=False,
        proxy_headers=False,
    )


def create_admin(email: str, username: str) -> None:
    from examples.reference_api.bootstrap import bootstrap_admin
    from examples.reference_api.deps import build_components
    from examples.reference_api.settings import AppSettings

    password = os.environ.get("ADMIN_PASSWORD") or getpass.getpass("admin password: ")
    settings = AppSettings(
        admin_email=email, admin_username=username, admin_password=SecretStr(password)
    )
    migrate()

    async def run() -> None:
        components = build_components(settings)
        try:
            created = await bootstrap_admin(components)
        finally:
            await components.db.dispose()
        print("admin created" if created else "the email or username is taken; nothing changed")

    asyncio.run(run())


def generate_signing_key() -> None:
    from fastapi_secure.tokens.keys import Key

    sys.stdout.write(Key.generate("EdDSA").private_pem().decode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.reference_api", description=__doc__)
    commands = parser.add_subparsers(dest="command")
    serve_parser = commands.add_parser("serve", help="migrate, then serve (default)")
    for target in (parser, serve_parser):
        target.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        target.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        target.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "1")))
    commands.add_parser("migrate", help="apply the database migrations")
    admin = commands.add_parser("create-admin", help="create the first admin user")
    admin.add_argument("email")
    admin.add_argument("username")
    commands.add_parser("generate-signing-key", help="print a new EdDSA private key (PEM)")
    args = parser.parse_args(argv)

    if args.command == "migrate":
        migrate()
    elif args.command == "create-admin":
        create_admin(args.email, args.username)
    elif args.command == "generate-signing-key":
        generate_signing_key()
    else:
        serve(args.host, args.port, args.workers)


if __name__ == "__main__":
    main()
