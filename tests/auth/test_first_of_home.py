"""``FirstOf`` is a general combinator: it lives in ``fastapi_secure.auth`` and the
account routers take it from there, without loading the API-key block; the old
import path gives the same class."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_first_of_is_one_class_under_both_paths() -> None:
    from fastapi_secure.apikeys.auth import FirstOf as FirstOfFromAPIKeys
    from fastapi_secure.auth import FirstOf
    from fastapi_secure.auth.first_of import FirstOf as FirstOfFromModule

    assert FirstOfFromAPIKeys is FirstOf is FirstOfFromModule
    assert FirstOf.__module__ == "fastapi_secure.auth.first_of"


def test_the_account_routers_do_not_load_the_api_key_block() -> None:
    code = textwrap.dedent(
        """
        import sys
        import fastapi_secure.accounts.routers
        from fastapi_secure.auth import FirstOf
        print(",".join(sorted(m for m in sys.modules if m.startswith("fastapi_secure.apikeys"))))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
