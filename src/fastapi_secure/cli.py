"""``python -m fastapi_secure``: the few chores that come before the first request.

Subcommands:

* ``generate-key [--alg ALG] [--kid KID]``: a new signing key. Public-key
  algorithms print a PKCS #8 private key (PEM); HMAC algorithms print a random
  base64url secret as long as the hash output. The key id goes to stderr, so
  stdout can be redirected straight into a file.
* ``jwks [--alg ALG] PEM_FILE...``: the public JWK Set of the given keys
  (private or public PEM); a private part is never printed.
* ``hash-password [--profile PROFILE]``: an argon2id hash of a password read
  from stdin, or asked for twice without echo on a terminal. Never from the
  command line: it would stay in the shell history and in ``ps``.
* ``check-settings [--env-file PATH]``: build :class:`SecuritySettings` from
  the environment and list what would make it unsafe in production; exit 1 if
  anything is listed. Setting values are never printed.
* ``audit [--json] [--production] [--factory] [--fail-on SEVERITY] [--app-dir DIR] MODULE:APP``:
  import the application and print :func:`fastapi_secure.audit.audit`'s
  report (a table, or JSON); exit 1 when it has findings at or above
  ``--fail-on`` (default ``low``: any finding).

Mistakes (a bad file, a bad setting, an empty password) end with a message on
stderr and exit code 2, never with a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import importlib
import json
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from fastapi_secure.errors import ConfigurationError, PasswordError
from fastapi_secure.passwords import PasswordHasher
from fastapi_secure.settings import SecuritySettings
from fastapi_secure.tokens.keys import (
    ASYMMETRIC_ALGORITHMS,
    SUPPORTED_ALGORITHMS,
    SYMMETRIC_ALGORITHMS,
    Key,
    KeySet,
)

__all__ = ["main"]

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_ERROR = 2

# The hash output size: a shorter HMAC secret weakens the MAC (RFC 7518 section 3.2).
_HMAC_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}

_PROFILES: dict[str, Callable[[], PasswordHasher]] = {
    "rfc9106_low_memory": PasswordHasher.recommended,
    "owasp_minimum": PasswordHasher.owasp_minimum,
}


class CommandError(Exception):
    """A user mistake: reported as one line on stderr with exit code 2."""


def _generate_key(args: argparse.Namespace) -> int:
    algorithm: str = args.alg
    if algorithm in SYMMETRIC_ALGORITHMS:
        sys.stdout.write(secrets.token_urlsafe(_HMAC_SECRET_BYTES[algorithm]) + "\n")
        kid = args.kid or secrets.token_urlsafe(12)
    else:
        key = Key.generate(algorithm, kid=args.kid)
        sys.stdout.write(key.private_pem().decode("ascii"))
        kid = key.kid
    sys.stderr.write(f"kid: {kid}\n")
    return EXIT_OK


def _jwks(args: argparse.Namespace) -> int:
    keys: list[Key] = []
    for name in args.pem_files:
        try:
            pem = Path(name).read_bytes()
        except OSError as exc:
            raise CommandError(f"{name}: {exc.strerror or exc}") from None
        try:
            key = Key.from_pem(pem, algorithm=args.alg)
        except ConfigurationError as exc:
            message = str(exc).replace("pass algorithm=", "pass --alg")
            raise CommandError(f"{name}: {message}") from None
        keys.append(key.public_key())
    key_set = KeySet.verification_only(keys)
    sys.stdout.write(json.dumps(key_set.jwks(), indent=2) + "\n")
    return EXIT_OK


def _strip_line_end(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text


def _read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("repeat password: ") != password:
            raise CommandError("the passwords do not match")
    else:
        # One trailing newline is the line end of `echo` or a file, not part of the password.
        password = _strip_line_end(stdin.read())
    if not password:
        raise CommandError("the password is empty")
    return password


def _hash_password(args: argparse.Namespace) -> int:
    password = _read_password(sys.stdin)
    hasher = _PROFILES[args.profile]()
    try:
        sys.stdout.write(hasher.hash(password) + "\n")
    except PasswordError as exc:
        raise CommandError(str(exc)) from None
    return EXIT_OK


def _check_settings(args: argparse.Namespace) -> int:
    env_file: str | None = args.env_file
    if env_file is not None and not Path(env_file).is_file():
        raise CommandError(f"{env_file}: no such file")
    try:
        # Development mode so that construction lists the problems instead of
        # refusing them; the other consistency checks still apply.
        settings = SecuritySettings(environment="development", _env_file=env_file)
    except ValidationError as exc:
        # include_input=False: the offending value may be a secret.
        details = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False)
        )
        raise CommandError(f"invalid settings: {details}") from None
    problems = settings.production_problems()
    if not problems:
        sys.stdout.write("no production problems found\n")
        return EXIT_OK
    for problem in problems:
        sys.stdout.write(f"problem: {problem}\n")
    return EXIT_PROBLEMS


def _load_app(target: str, app_dir: str, factory: bool) -> object:
    module_name, colon, attribute = target.partition(":")
    if not colon or not module_name or not attribute:
        raise CommandError(f"{target!r}: expected MODULE:APP, such as 'myproject.main:app'")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from None
    app: object = module
    for part in attribute.split("."):
        try:
            app = getattr(app, part)
        except AttributeError:
            raise CommandError(f"{module_name!r} has no attribute {attribute!r}") from None
    if factory:
        if not callable(app) or hasattr(app, "routes"):
            raise CommandError(f"{target!r} is not an app factory; drop --factory")
        app = app()
    return app


def _audit(args: argparse.Namespace) -> int:
    from fastapi_secure.audit import audit

    app = _load_app(args.target, args.app_dir, args.factory)
    if not hasattr(app, "routes") and not hasattr(app, "app"):
        raise CommandError(f"{args.target!r} is not an ASGI application (use --factory?)")
    report = audit(app, production=args.production)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(report.format_table())
    return EXIT_PROBLEMS if report.findings_at_least(args.fail_on) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fastapi_secure",
        description="Key, password, settings and audit chores for fastapi-secure applications.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate-key",
        help="print a new private key (PEM) or HMAC secret; the kid goes to stderr",
    )
    generate.add_argument("--alg", choices=SUPPORTED_ALGORITHMS, default="EdDSA")
    generate.add_argument("--kid", help="key id to report (default: RFC 7638 thumbprint)")
    generate.set_defaults(handler=_generate_key)

    jwks = commands.add_parser("jwks", help="print the public JWK Set of PEM keys")
    jwks.add_argument(
        "--alg",
        choices=ASYMMETRIC_ALGORITHMS,
        help="algorithm of the keys; needed for RSA keys (RS256, PS256, ...)",
    )
    jwks.add_argument("pem_files", nargs="+", metavar="PEM_FILE")
    jwks.set_defaults(handler=_jwks)

    hash_password = commands.add_parser(
        "hash-password",
        help="print an argon2id hash of a password read from stdin or a no-echo prompt",
    )
    hash_password.add_argument("--profile", choices=tuple(_PROFILES), default="rfc9106_low_memory")
    hash_password.set_defaults(handler=_hash_password)

    check = commands.add_parser(
        "check-settings",
        help="list production problems of SecuritySettings (FASTAPI_SECURE_* variables)",
    )
    check.add_argument("--env-file", help="also read this .env file")
    check.set_defaults(handler=_check_settings)

    audit = commands.add_parser(
        "audit",
        help="report how each route of an app is protected; exit 1 on findings",
    )
    audit.add_argument("target", metavar="MODULE:APP", help="the app, as for uvicorn")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    audit.add_argument(
        "--production",
        action="store_true",
        help="also report what only production forbids (docs pages, debug, insecure cookies)",
    )
    audit.add_argument(
        "--factory", action="store_true", help="MODULE:APP is a function returning the app"
    )
    audit.add_argument(
        "--fail-on",
        choices=("high", "medium", "low"),
        default="low",
        help="lowest severity that makes the exit code 1 (default: low, any finding)",
    )
    audit.add_argument(
        "--app-dir", default=".", help="directory to import the module from (default: .)"
    )
    audit.set_defaults(handler=_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand and return the exit code (argparse mistakes exit 2 itself)."""
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (CommandError, ConfigurationError) as exc:
        sys.stderr.write(f"error: {exc}\n")
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("error: interrupted\n")
    return EXIT_ERROR
