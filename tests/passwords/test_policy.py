"""PasswordPolicy: NIST defaults, blocklist, context words, and the pydantic / FastAPI field."""

from __future__ import annotations

# --- PasswordPolicy: NFKC of attacker-sized input on the event loop ---------------------
import json
import types
import unicodedata
from importlib import resources
from typing import Annotated, Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, SecretStr, TypeAdapter, ValidationError

from fastapi_secure.errors import (
    ConfigurationError,
    WeakPasswordError,
)
from fastapi_secure.passwords import (
    PasswordPolicy,
    StrongPassword,
)
from fastapi_secure.passwords import policy as password_policy

POLICY = PasswordPolicy()
GOOD = "violet staircase under nine moons"


# -- NIST defaults ------------------------------------------------------------------


def test_defaults_follow_nist_800_63b() -> None:
    assert (POLICY.min_length, POLICY.max_length) == (8, 128)
    assert POLICY.check("kq7#vzmw") == []
    assert POLICY.check("kq7#vzm") == ["password must be at least 8 characters long"]


def test_at_least_64_characters_are_accepted_and_the_maximum_is_enforced() -> None:
    sixty_four = ("purple elephants dance " * 3)[:64]
    assert POLICY.check(sixty_four) == []
    assert POLICY.check(GOOD + "x" * (128 - len(GOOD))) == []
    assert POLICY.check(GOOD + "x" * (129 - len(GOOD))) == [
        "password must be at most 128 characters long"
    ]


def test_no_composition_rules_by_default() -> None:
    assert POLICY.check("correct horse battery staple") == []
    assert POLICY.check("zqxjkvbnmwtr") == []


def test_length_counts_code_points_after_nfkc() -> None:
    # Seven full-width letters stay seven characters after NFKC; the
    # decomposed e + combining accent composes to one character.
    assert POLICY.check("\uff4b\uff51\uff17\uff03\uff56\uff5a\uff4d") == [
        "password must be at least 8 characters long"
    ]
    assert POLICY.check("kq7#vzme\u0301") == []
    assert POLICY.check("kq7#vze\u0301") == ["password must be at least 8 characters long"]


@pytest.mark.parametrize(
    ("option", "refused", "accepted", "problem"),
    [
        ("require_lowercase", "KQ7#VZMW", "KQ7#VZMw", "password must contain a lowercase letter"),
        ("require_uppercase", "kq7#vzmw", "Kq7#vzmw", "password must contain an uppercase letter"),
        ("require_digit", "kqx#vzmw", "kq7#vzmw", "password must contain a digit"),
        (
            "require_symbol",
            "kq7rvzmw",
            "kq7 vzmw",
            "password must contain a symbol (neither a letter nor a digit)",
        ),
    ],
)
def test_optional_composition_rules(option: str, refused: str, accepted: str, problem: str) -> None:
    policy = PasswordPolicy(**{option: True})  # type: ignore[arg-type]
    assert policy.check(refused) == [problem]
    assert policy.check(accepted) == []


# -- blocklist ----------------------------------------------------------------------


def test_shipped_blocklist_has_thousands_of_common_passwords() -> None:
    text = (
        resources.files("fastapi_secure.passwords")
        .joinpath("common-passwords.txt")
        .read_text(encoding="utf-8")
    )
    entries = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(entries) >= 3000
    assert len(set(entries)) == len(entries)
    assert all(entry == entry.lower().strip() for entry in entries)


@pytest.mark.parametrize(
    "password",
    [
        "password",
        "Password1",
        "P@ssw0rd",
        "qwerty123",
        "iloveyou",
        "1q2w3e4r",
        "Liverpool2024",
        "dragon2024!!",  # a common word with digits and symbols around it
        "!!Sunshine123",
        "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # full-width "password"
    ],
)
def test_common_passwords_are_refused_case_insensitively(password: str) -> None:
    assert POLICY.check(password) == ["password is too common; choose one that is harder to guess"]


def test_shipped_blocklist_can_be_turned_off_and_extended() -> None:
    policy = PasswordPolicy(use_common_passwords=False, blocklist=["Acme-Corp-2026"])
    assert policy.check("password1") == []
    assert policy.check("acme-corp-2026") == [
        "password is too common; choose one that is harder to guess"
    ]
    assert PasswordPolicy(blocklist=["tangerine-dream"]).check("TANGERINE-DREAM") != []


@pytest.mark.parametrize(
    "password", ["zzzzzzzz", "abababab", "xyzxyzxyzxyz", "abcdefghij", "zyxwvutsrq", "56789:;<="]
)
def test_repeats_and_sequences_are_refused(password: str) -> None:
    assert POLICY.check(password) == ["password is a repeated pattern or a simple sequence"]


# -- context words ------------------------------------------------------------------

CONTEXT_PROBLEM = "password must not be based on your username, email address or account details"


@pytest.mark.parametrize(
    "password", ["margaret1984", "Margaret!2026", "smith-2026!", "msmith-msmith", "MARGARET.SMITH"]
)
def test_passwords_based_on_context_words_are_refused(password: str) -> None:
    problems = POLICY.check(password, context=["msmith", "margaret.smith@example.com"])
    assert CONTEXT_PROBLEM in problems


@pytest.mark.parametrize(
    "password", ["margaret sails past orion", "bob" + "-quietly-folding-maps", "kq7#vzmw"]
)
def test_long_passwords_that_merely_contain_a_context_word_are_accepted(password: str) -> None:
    assert POLICY.check(password, context=["margaret", "bob@example.com", None, ""]) == []


def test_validate_raises_weak_password_error_without_the_password() -> None:
    with pytest.raises(WeakPasswordError) as caught:
        POLICY.validate("margaret1984", context=["margaret"])
    assert caught.value.problems == [CONTEXT_PROBLEM]
    assert "margaret1984" not in str(caught.value)
    POLICY.validate(GOOD)


def test_check_accepts_secret_str_and_refuses_non_text() -> None:
    assert POLICY.check(SecretStr("password")) != []
    assert POLICY.check(SecretStr(GOOD)) == []
    assert POLICY.check(12345678) == ["password must be a string"]  # type: ignore[arg-type]
    assert POLICY.check("kq7#vzmw\ud800") == ["password must be valid Unicode text"]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_length": 0},
        {"max_length": 63},
        {"min_length": 100, "max_length": 80},
        {"context_fields": "username"},
    ],
)
def test_policy_configuration_mistakes(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        PasswordPolicy(**kwargs)  # type: ignore[arg-type]


def test_nist_single_factor_minimum_is_one_argument_away() -> None:
    policy = PasswordPolicy(min_length=15)
    assert policy.check("kq7#vzmw-plum") == ["password must be at least 15 characters long"]
    assert policy.check(GOOD) == []


KNOWN_PROBLEMS = {
    "password must be at least 8 characters long",
    "password must be at most 128 characters long",
    "password is too common; choose one that is harder to guess",
    "password is a repeated pattern or a simple sequence",
    "password must be valid Unicode text",
    CONTEXT_PROBLEM,
}


@settings(max_examples=300, deadline=None)
@given(password=st.text(max_size=200), username=st.text(max_size=30))
def test_problems_come_from_a_fixed_set_and_never_quote_the_input(
    password: str, username: str
) -> None:
    problems = POLICY.check(password, context=[username, f"{username}@example.com"])
    assert set(problems) <= KNOWN_PROBLEMS


# -- pydantic field -----------------------------------------------------------------


class SignUp(BaseModel):
    username: str
    email: str
    password: Annotated[SecretStr, POLICY.with_context_fields("username", "email")]


class PlainPassword(BaseModel):
    password: Annotated[str, POLICY]


def test_field_accepts_a_good_password_as_secret_str() -> None:
    model = SignUp(username="margaret", email="m@example.com", password=GOOD)
    assert isinstance(model.password, SecretStr)
    assert model.password.get_secret_value() == GOOD
    assert GOOD not in model.model_dump_json()
    assert GOOD not in repr(model)


def test_field_over_str_returns_str() -> None:
    assert PlainPassword(password=GOOD).password == GOOD
    assert json.loads(PlainPassword(password=GOOD).model_dump_json()) == {"password": GOOD}


def test_strong_password_alias() -> None:
    adapter = TypeAdapter(StrongPassword)
    assert adapter.validate_python(GOOD).get_secret_value() == GOOD
    with pytest.raises(ValidationError):
        adapter.validate_python("password123")


@pytest.mark.parametrize("password", ["hunter2", "password123", "margaret1984", "zzzzzzzzzzz"])
def test_validation_error_never_contains_the_password(password: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SignUp(username="margaret", email="margaret@example.com", password=password)
    (error,) = caught.value.errors()
    assert error["type"] == "weak_password"
    assert error["loc"] == ("password",)
    assert password not in str(caught.value)
    assert password not in caught.value.json()
    assert password not in repr(error["input"])
    assert str(error["input"]) == "**********"


def test_json_validation_masks_too() -> None:
    payload = json.dumps({"username": "margaret", "email": "m@x.org", "password": "margaret1984"})
    with pytest.raises(ValidationError) as caught:
        SignUp.model_validate_json(payload)
    assert "margaret1984" not in caught.value.json()
    assert "margaret1984" not in str(caught.value)
    assert SignUp.model_validate_json(payload.replace("margaret1984", GOOD)).password


def test_non_string_input_is_refused_and_masked() -> None:
    with pytest.raises(ValidationError) as caught:
        PlainPassword.model_validate({"password": 987654321012})
    (error,) = caught.value.errors()
    assert error["type"] == "password_type"
    assert "987654321012" not in caught.value.json()


def test_secret_str_input_is_unwrapped() -> None:
    assert PlainPassword(password=SecretStr(GOOD)).password == GOOD


def test_context_field_declared_after_the_password_fails_closed() -> None:
    class Misordered(BaseModel):
        password: Annotated[SecretStr, POLICY.with_context_fields("username")]
        username: str

    with pytest.raises(ValidationError) as caught:
        Misordered(password=GOOD, username="margaret")
    assert "password cannot be checked against username" in str(caught.value)


def test_optional_context_field_may_be_none() -> None:
    class Optional(BaseModel):
        username: str
        email: str | None = None
        password: Annotated[SecretStr, POLICY.with_context_fields("username", "email")]

    assert Optional(username="margaret", password=GOOD).email is None


def test_policy_refuses_unsupported_field_types() -> None:
    with pytest.raises(ConfigurationError):

        class Wrong(BaseModel):
            password: Annotated[int, POLICY]


def test_json_schema_marks_the_field_as_a_write_only_password() -> None:
    schema = SignUp.model_json_schema()["properties"]["password"]
    assert schema["type"] == "string"
    assert schema["format"] == "password"
    assert schema["writeOnly"] is True
    assert (schema["minLength"], schema["maxLength"]) == (8, 128)


def test_with_context_fields_leaves_the_original_untouched() -> None:
    bound = POLICY.with_context_fields("username")
    assert bound.context_fields == ("username",)
    assert POLICY.context_fields == ()
    assert "context_fields=('username',)" in repr(bound)


# -- through FastAPI -----------------------------------------------------------------


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()

    @app.post("/register")
    def register(body: SignUp) -> dict[str, str]:
        return {"username": body.username}

    return TestClient(app)


@pytest.mark.parametrize(
    ("password", "problem"),
    [
        ("password1!", "password is too common"),
        ("margaret1984", "must not be based on your username"),
        ("short", "at least 8 characters"),
        ("xyxyxyxyxyxy", "repeated pattern"),
    ],
)
def test_fastapi_answers_422_without_echoing_the_password(
    client: TestClient, password: str, problem: str
) -> None:
    response = client.post(
        "/register",
        json={"username": "margaret", "email": "margaret@example.com", "password": password},
    )
    assert response.status_code == 422
    assert password not in response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "password"]
    assert error["type"] == "weak_password"
    assert problem in error["msg"]
    assert error["input"] == "**********"


def test_fastapi_accepts_a_good_password(client: TestClient) -> None:
    response = client.post(
        "/register", json={"username": "margaret", "email": "m@example.com", "password": GOOD}
    )
    assert response.status_code == 200
    assert response.json() == {"username": "margaret"}


def test_fastapi_openapi_marks_the_password_field(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["SignUp"]
    assert schema["properties"]["password"]["format"] == "password"


# U+FDFA normalizes (NFKC) to 18 code points: a 1 MiB request body of it took the
# policy about 0.35 s of CPU on the event loop before the length was even looked at.
EXPANDING = "\ufdfa"
# Characters whose NFKC differs in length from the input: expanding ligatures and
# squared words, and base letters with combining marks that compose (shrinking).
NFKC_TRICKY = st.sampled_from(
    [
        *(EXPANDING, "\u3300", "\ufb01"),  # expand
        *("a", "e", "\u03b1", "\u0301", "\u0313", "\u0342", "\u0345"),  # compose
        *("\u1100", "\u1161", "\u11a8", " "),  # Hangul jamo compose into syllables
    ]
)


def test_oversized_password_is_refused_without_normalizing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    normalized_lengths: list[int] = []

    def spy(form: Any, text: str) -> str:
        normalized_lengths.append(len(text))
        return unicodedata.normalize(form, text)

    monkeypatch.setattr(password_policy, "unicodedata", types.SimpleNamespace(normalize=spy))
    policy = PasswordPolicy()

    problems = policy.check(EXPANDING * (1024 * 1024 // 3))

    assert problems == [f"password must be at most {policy.max_length} characters long"]
    assert max(normalized_lengths, default=0) <= 4 * policy.max_length


@settings(max_examples=300, deadline=None)
@given(st.text(NFKC_TRICKY, max_size=320))
def test_length_bounds_hold_as_typed_and_after_normalization(password: str) -> None:
    # The published JSON schema counts characters as typed; the policy's rules see the
    # NFKC form. Both must be within the bounds, or the schema would lie (schemathesis).
    policy = PasswordPolicy(min_length=8, max_length=64, use_common_passwords=False)
    normalized = unicodedata.normalize("NFKC", password)
    too_long = max(len(password), len(normalized)) > policy.max_length
    too_short = min(len(password), len(normalized)) < policy.min_length
    problems = policy.check(password)
    assert (f"password must be at most {policy.max_length} characters long" in problems) is (
        too_long
    )
    assert (f"password must be at least {policy.min_length} characters long" in problems) is (
        too_short
    )


def test_a_password_that_expands_past_min_length_is_still_too_short() -> None:
    policy = PasswordPolicy(min_length=8)
    typed = "\u3300\u3300"  # 2 characters as typed, 8 after NFKC
    assert len(unicodedata.normalize("NFKC", typed)) >= 8
    assert "password must be at least 8 characters long" in policy.check(typed)


def test_a_password_longer_than_max_as_typed_is_refused_even_if_it_composes() -> None:
    letters = ["\u1f87", "\u1f97", "\u1fa7", "\u1f8f", "\u1f9f", "\u1faf"]
    composed = "".join(letters[(i * i + i // 3) % 6] for i in range(64))
    decomposed = unicodedata.normalize("NFD", composed)
    policy = PasswordPolicy(max_length=64)
    assert policy.check(composed) == []
    assert policy.check(decomposed) == ["password must be at most 64 characters long"]


def test_huge_context_word_is_not_normalized(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []

    def spy(form: Any, text: str) -> str:
        seen.append(len(text))
        return unicodedata.normalize(form, text)

    monkeypatch.setattr(password_policy, "unicodedata", types.SimpleNamespace(normalize=spy))
    problems = PasswordPolicy().check("correct-horse-battery", context=["\ufdfa" * 350_000])
    assert problems == []
    assert max(seen) <= 4 * 128


def test_no_code_point_decomposes_to_more_than_four() -> None:
    """The bound the early refusal rests on, for this Python's Unicode database."""
    longest = max(
        len(unicodedata.normalize("NFD", chr(point)))
        for point in range(0x110000)
        if not 0xD800 <= point <= 0xDFFF
    )
    assert longest == password_policy._MAX_NFKC_SHRINK


# --- RedisTokenStore on a Redis Cluster that does not answer ------------------------------
