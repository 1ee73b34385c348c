from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from argon2 import PasswordHasher as Argon2Verifier

from fastapi_secure.cli import main
from fastapi_secure.passwords import PasswordHasher
from fastapi_secure.tokens.keys import (
    Key,
    KeySet,
)

SECRET = "Zq8Xv3kLp0Wm7Rt2Ys9Bn4Hc6Jd1Fg5Ae"


class TerminalInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.upper().startswith("FASTAPI_SECURE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return monkeypatch


# -- generate-key ---------------------------------------------------------------


@pytest.mark.parametrize("alg", ["EdDSA", "ES256", "RS256", "PS256"])
def test_generate_key_prints_a_private_pem_that_signs(
    alg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["generate-key", "--alg", alg, "--kid", "k1"]) == 0
    out, err = capsys.readouterr()
    key = Key.from_pem(out, algorithm=alg, kid="k1")
    assert key.can_sign
    keys = KeySet(key)
    assert keys.verify(keys.sign({"sub": "1"}, typ="JWT")).claims() == {"sub": "1"}
    assert err == "kid: k1\n"


def test_generate_key_defaults_to_eddsa_named_by_thumbprint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["generate-key"]) == 0
    out, err = capsys.readouterr()
    key = Key.from_pem(out)
    assert key.algorithm == "EdDSA"
    assert err == f"kid: {key.thumbprint()}\n"


@pytest.mark.parametrize(("alg", "size"), [("HS256", 32), ("HS384", 48), ("HS512", 64)])
def test_generate_key_hmac_secret_is_random_and_full_length(
    alg: str, size: int, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_seen = set()
    for _ in range(2):
        assert main(["generate-key", "--alg", alg]) == 0
        secret = capsys.readouterr().out.strip()
        decoded = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
        assert len(decoded) == size
        Key.from_secret(secret, kid="k", algorithm=alg)
        secrets_seen.add(secret)
    assert len(secrets_seen) == 2


def test_generate_key_refuses_an_unknown_algorithm(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["generate-key", "--alg", "none"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


# -- jwks -----------------------------------------------------------------------


def test_jwks_publishes_public_keys_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ed, ec = Key.generate("EdDSA"), Key.generate("ES256")
    (tmp_path / "ed.pem").write_bytes(ed.private_pem())
    (tmp_path / "ec.pub.pem").write_bytes(ec.public_pem())
    assert main(["jwks", str(tmp_path / "ed.pem"), str(tmp_path / "ec.pub.pem")]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {"keys": [ed.to_public_jwk(), ec.to_public_jwk()]}
    assert '"d"' not in out


def test_jwks_rsa_key_needs_alg(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rsa = Key.generate("PS256")
    path = tmp_path / "rsa.pem"
    path.write_bytes(rsa.private_pem())
    assert main(["jwks", str(path)]) == 2
    assert "--alg" in capsys.readouterr().err
    assert main(["jwks", "--alg", "PS256", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["keys"][0]["alg"] == "PS256"


def test_jwks_reports_unusable_files_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    assert main(["jwks", str(garbage)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {garbage}: not a usable PEM key")
    assert "Traceback" not in err
    assert main(["jwks", str(tmp_path / "missing.pem")]) == 2
    assert "missing.pem" in capsys.readouterr().err


def test_jwks_refuses_the_same_key_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ed.pem"
    path.write_bytes(Key.generate("EdDSA").private_pem())
    assert main(["jwks", str(path), str(path)]) == 2
    assert "duplicate kid" in capsys.readouterr().err


# -- hash-password --------------------------------------------------------------


def test_hash_password_reads_stdin_and_drops_the_line_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\r\n"))
    assert main(["hash-password", "--profile", "owasp_minimum"]) == 0
    out, err = capsys.readouterr()
    stored = out.strip()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    hasher = PasswordHasher.owasp_minimum()
    assert hasher.verify("correct horse battery", stored)
    assert not hasher.verify("correct horse battery\r\n", stored)
    assert "correct horse" not in err


def test_hash_password_default_is_the_rfc9106_low_memory_profile(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery"))
    assert main(["hash-password"]) == 0
    stored = capsys.readouterr().out.strip()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert Argon2Verifier().verify(stored, "correct horse battery")


def test_hash_password_prompts_twice_without_echo_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        prompts.append(prompt)
        return "tr0ub4dor&3-staple"

    monkeypatch.setattr(sys, "stdin", TerminalInput())
    monkeypatch.setattr("getpass.getpass", fake_getpass)
    assert main(["hash-password", "--profile", "owasp_minimum"]) == 0
    stored = capsys.readouterr().out.strip()
    assert PasswordHasher.owasp_minimum().verify("tr0ub4dor&3-staple", stored)
    assert prompts == ["password: ", "repeat password: "]


def test_hash_password_refuses_a_mismatched_repeat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    answers = iter(["first-password", "second-password"])
    monkeypatch.setattr(sys, "stdin", TerminalInput())
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    assert main(["hash-password", "--profile", "owasp_minimum"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: the passwords do not match\n"


@pytest.mark.parametrize("given", ["", "\n"])
def test_hash_password_refuses_an_empty_password(
    given: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(given))
    assert main(["hash-password", "--profile", "owasp_minimum"]) == 2
    assert capsys.readouterr() == ("", "error: the password is empty\n")


def test_hash_password_over_the_maximum_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("x" * 100_000))
    assert main(["hash-password", "--profile", "owasp_minimum"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert "xxxx" not in err


def test_hash_password_never_takes_the_password_as_an_argument(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["hash-password", "hunter2-hunter2"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


# -- check-settings -------------------------------------------------------------


def test_check_settings_clean_production_setup_exits_0(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("FASTAPI_SECURE_ENVIRONMENT", "production")
    clean_env.setenv("FASTAPI_SECURE_SECRET_KEY", SECRET)
    clean_env.setenv("FASTAPI_SECURE_DOCS_ENABLED", "false")
    assert main(["check-settings"]) == 0
    assert capsys.readouterr().out == "no production problems found\n"


def test_check_settings_lists_problems_without_printing_secrets(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Production mode would refuse these settings at construction; the command lists them.
    clean_env.setenv("FASTAPI_SECURE_ENVIRONMENT", "production")
    clean_env.setenv("FASTAPI_SECURE_SECRET_KEY", "short-but-secret")
    clean_env.setenv("FASTAPI_SECURE_CORS_ALLOW_ORIGINS", '["*"]')
    assert main(["check-settings"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "problem: secret_key is shorter than 32 bytes",
        "problem: cors_allow_origins contains '*'",
        "problem: docs_enabled is true (API docs exposed)",
    ]
    assert "short-but-secret" not in out + err


def test_check_settings_reads_an_env_file(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "prod.env"
    env_file.write_text(f"FASTAPI_SECURE_SECRET_KEY={SECRET}\nFASTAPI_SECURE_DOCS_ENABLED=false\n")
    assert main(["check-settings"]) == 1
    capsys.readouterr()
    assert main(["check-settings", "--env-file", str(env_file)]) == 0
    assert main(["check-settings", "--env-file", str(tmp_path / "missing.env")]) == 2
    assert "missing.env: no such file" in capsys.readouterr().err


def test_check_settings_invalid_values_exit_2_without_echoing_them(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("FASTAPI_SECURE_SECRET_KEY", SECRET)
    clean_env.setenv("FASTAPI_SECURE_ACCESS_TTL_SECONDS", "99999999")
    clean_env.setenv("FASTAPI_SECURE_TRUSTED_PROXIES", '["not-a-network"]')
    assert main(["check-settings"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: invalid settings: ")
    assert "trusted_proxies" in err
    assert "99999999" not in err
    assert SECRET not in err
    assert "Traceback" not in err


def test_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "fastapi_secure", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for command in ("generate-key", "jwks", "hash-password", "check-settings"):
        assert command in result.stdout


def test_hash_password_interrupted_prompt_is_an_error_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupted(prompt: str = "") -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "stdin", TerminalInput())
    monkeypatch.setattr("getpass.getpass", interrupted)
    assert main(["hash-password", "--profile", "owasp_minimum"]) == 2
    assert capsys.readouterr() == ("", "error: interrupted\n")


def test_generate_key_hmac_reports_the_given_kid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate-key", "--alg", "HS256", "--kid", "2026-11"]) == 0
    assert capsys.readouterr().err == "kid: 2026-11\n"
