"""PasswordPolicy: which new passwords to accept (NIST SP 800-63B-4), as pydantic metadata."""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, SecretStr, ValidationInfo
from pydantic_core import PydanticCustomError, core_schema

from fastapi_secure.errors import ConfigurationError, WeakPasswordError
from fastapi_secure.passwords.base import NIST_MIN_MAX_LENGTH

if TYPE_CHECKING:
    from pydantic.json_schema import JsonSchemaValue

__all__ = ["PasswordPolicy", "StrongPassword"]

_COMMON_PASSWORDS_RESOURCE = "common-passwords.txt"
_EDGE_NOISE = re.compile(r"^[\W\d_]+|[\W\d_]+$")
_REPEATED_UNIT = re.compile(r"(.{1,4}?)\1+", re.DOTALL)
_CONTEXT_SPLIT = re.compile(r"[\s._+\-@]+")
_MIN_CONTEXT_TOKEN = 3
# NFKC never shrinks text by more than the longest canonical decomposition (4 code
# points, e.g. U+1F87), so input longer than this many times max_length is too long
# whatever it normalizes to.
_MAX_NFKC_SHRINK = 4


@functools.cache
def _common_passwords() -> frozenset[str]:
    # Read once per process: the file is immutable package data, shipped beside this module.
    resource = resources.files("fastapi_secure.passwords").joinpath(_COMMON_PASSWORDS_RESOURCE)
    text = resource.read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _is_trivial(password: str) -> bool:
    if _REPEATED_UNIT.fullmatch(password):
        return True
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(password)}
    return len(password) >= 3 and steps in ({1}, {-1})


def _context_tokens(words: Iterable[str]) -> list[str]:
    tokens: set[str] = set()
    for word in words:
        folded = unicodedata.normalize("NFKC", word).casefold().strip()
        if not folded:
            continue
        tokens.add(folded)
        local = folded.rsplit("@", 1)[0] if "@" in folded else folded
        tokens.add(local)
        tokens.update(_CONTEXT_SPLIT.split(local))
    return sorted((t for t in tokens if len(t) >= _MIN_CONTEXT_TOKEN), key=len, reverse=True)


class PasswordPolicy:
    """Rules for choosing a password, with NIST SP 800-63B-4 defaults.

    By default: at least 8 characters, at most 128 (NIST asks to allow at
    least 64), counted as Unicode code points after NFKC normalization; not
    one of the shipped common passwords (case-insensitive, also with digits
    and symbols stripped from both ends); not a repeated character, short
    repeated pattern or simple sequence; not mostly a context word
    (username, email). No composition rules unless asked for: NIST advises
    against them.

    NIST SP 800-63B-4 sets the minimum at 15 characters when the password is
    the only authentication factor, and at 8 when it is part of multi-factor
    authentication; choose ``min_length`` accordingly.

    The policy is also pydantic metadata, for ``str`` or ``SecretStr`` fields:
    ``password: Annotated[SecretStr, policy]``. The validation error (a 422
    in FastAPI) lists the problems and never contains the password: its
    ``input`` is masked. Fields named in ``context_fields`` are read from the
    model's other fields, which must be declared before the password field.

    Args:
        min_length: Fewest characters.
        max_length: Most characters (at least 64). Keep it at or below the
            hasher's ``max_length`` (1024 by default).
        require_lowercase: Demand a lowercase letter.
        require_uppercase: Demand an uppercase letter.
        require_digit: Demand a decimal digit.
        require_symbol: Demand a character that is neither a letter nor a digit.
        blocklist: Extra refused passwords (compared case-insensitively), on
            top of the shipped list.
        use_common_passwords: Refuse the shipped common passwords.
        context_fields: Model fields whose values the password must not be
            based on, when the policy validates a pydantic field.
    """

    def __init__(
        self,
        *,
        min_length: int = 8,
        max_length: int = 128,
        require_lowercase: bool = False,
        require_uppercase: bool = False,
        require_digit: bool = False,
        require_symbol: bool = False,
        blocklist: Iterable[str] = (),
        use_common_passwords: bool = True,
        context_fields: Sequence[str] = (),
    ) -> None:
        if not isinstance(min_length, int) or min_length < 1:
            raise ConfigurationError("min_length must be a positive integer")
        if not isinstance(max_length, int) or max_length < NIST_MIN_MAX_LENGTH:
            raise ConfigurationError(
                f"max_length must be at least {NIST_MIN_MAX_LENGTH} (NIST SP 800-63B)"
            )
        if min_length > max_length:
            raise ConfigurationError("min_length must not exceed max_length")
        if isinstance(context_fields, str):
            raise ConfigurationError("context_fields must be a sequence of field names")
        self.min_length = min_length
        self.max_length = max_length
        self.require_lowercase = require_lowercase
        self.require_uppercase = require_uppercase
        self.require_digit = require_digit
        self.require_symbol = require_symbol
        self.use_common_passwords = use_common_passwords
        self.blocklist = frozenset(
            unicodedata.normalize("NFKC", word).casefold() for word in blocklist
        )
        self.context_fields: tuple[str, ...] = tuple(context_fields)

    def with_context_fields(self, *names: str) -> PasswordPolicy:
        """A copy of this policy that reads ``names`` from the model being validated.

        The named fields must be declared before the password field: pydantic
        validates fields in order. When one of them is missing (declared
        after, absent, or failed its own validation) the password is refused
        rather than accepted unchecked.
        """
        clone = PasswordPolicy.__new__(PasswordPolicy)
        clone.__dict__.update(self.__dict__)
        clone.context_fields = tuple(names)
        return clone

    def check(self, password: str | SecretStr, *, context: Iterable[str | None] = ()) -> list[str]:
        """Return the reasons ``password`` is refused; an empty list means accepted.

        Args:
            password: The candidate password.
            context: Words the password must not be based on: username,
                email address, the service name. None entries are ignored.
        """
        raw: object = password.get_secret_value() if isinstance(password, SecretStr) else password
        if not isinstance(raw, str):
            return ["password must be a string"]
        if len(raw) > self.max_length:
            # The bounds hold for the text as typed (what the published JSON schema
            # says) and after NFKC. Refused before normalizing: NFKC expands some
            # code points 18-fold (U+FDFA), so a request-sized password would stall
            # the event loop.
            return [f"password must be at most {self.max_length} characters long"]
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:
            return ["password must be valid Unicode text"]
        normalized = unicodedata.normalize("NFKC", raw)
        problems: list[str] = []
        length = len(normalized)
        if min(length, len(raw)) < self.min_length:
            problems.append(f"password must be at least {self.min_length} characters long")
        if length > self.max_length:
            problems.append(f"password must be at most {self.max_length} characters long")
            return problems  # the rest would only scan attacker-sized input
        if self.require_lowercase and not any(c.islower() for c in normalized):
            problems.append("password must contain a lowercase letter")
        if self.require_uppercase and not any(c.isupper() for c in normalized):
            problems.append("password must contain an uppercase letter")
        if self.require_digit and not any(c.isdecimal() for c in normalized):
            problems.append("password must contain a digit")
        if self.require_symbol and all(c.isalnum() for c in normalized):
            problems.append("password must contain a symbol (neither a letter nor a digit)")
        folded = normalized.casefold()
        if self._is_common(folded):
            problems.append("password is too common; choose one that is harder to guess")
        elif _is_trivial(folded):
            problems.append("password is a repeated pattern or a simple sequence")
        # A context word that cannot fit in the password cannot be its basis; skipping
        # it also keeps an unbounded field from being normalized on the event loop.
        words = [
            word
            for word in context
            if isinstance(word, str) and len(word) <= _MAX_NFKC_SHRINK * self.max_length
        ]
        if words and self._is_based_on(folded, _context_tokens(words)):
            problems.append(
                "password must not be based on your username, email address or account details"
            )
        return problems

    def validate(self, password: str | SecretStr, *, context: Iterable[str | None] = ()) -> None:
        """Raise :class:`~fastapi_secure.errors.WeakPasswordError` if :meth:`check` objects."""
        problems = self.check(password, context=context)
        if problems:
            raise WeakPasswordError(problems)

    def _is_common(self, folded: str) -> bool:
        stripped = _EDGE_NOISE.sub("", folded)
        candidates = {folded, stripped} if stripped else {folded}
        if not candidates.isdisjoint(self.blocklist):
            return True
        return self.use_common_passwords and not candidates.isdisjoint(_common_passwords())

    def _is_based_on(self, folded: str, tokens: list[str]) -> bool:
        remaining = folded
        for token in tokens:
            remaining = remaining.replace(token, "")
        return remaining != folded and len(remaining) < self.min_length

    # -- pydantic integration --------------------------------------------------

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        if source not in (str, SecretStr):
            raise ConfigurationError(
                f"PasswordPolicy annotates str or SecretStr fields, not {source!r}"
            )
        as_secret = source is SecretStr

        def validate(masked: SecretStr, info: ValidationInfo) -> str | SecretStr:
            raw: object = masked.get_secret_value()
            if isinstance(raw, SecretStr):
                raw = raw.get_secret_value()
            if not isinstance(raw, str):
                raise PydanticCustomError("password_type", "password must be a string")
            context, problems = self._field_context(info)
            problems += self.check(raw, context=context)
            if problems:
                raise PydanticCustomError(
                    "weak_password",
                    "password refused: " + "; ".join(problems),
                    {"problems": problems},
                )
            return SecretStr(raw) if as_secret else raw

        # The outer validator wraps the input in SecretStr before anything can
        # fail, so every error pydantic reports carries the masked value as
        # its ``input``: FastAPI's 422 body shows "**********", not the password.
        return core_schema.no_info_before_validator_function(
            _mask,
            core_schema.with_info_plain_validator_function(validate),
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialize_password, when_used="json"
            ),
        )

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "format": "password",
            "writeOnly": True,
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }

    def _field_context(self, info: ValidationInfo) -> tuple[list[str | None], list[str]]:
        if not self.context_fields:
            return [], []
        data: Mapping[str, Any] = info.data if isinstance(info.data, Mapping) else {}
        missing = [name for name in self.context_fields if name not in data]
        if missing:
            # The field is declared after the password, failed its own
            # validation, or does not exist: refuse rather than skip the check.
            return [], [f"password cannot be checked against {', '.join(missing)}"]
        words: list[str | None] = []
        for name in self.context_fields:
            value = data[name]
            if value is not None:
                words.append(str(value))
        return words, []

    def __repr__(self) -> str:
        return (
            f"PasswordPolicy(min_length={self.min_length}, max_length={self.max_length}, "
            f"context_fields={self.context_fields!r})"
        )


def _mask(value: object) -> SecretStr:
    return SecretStr(value)  # type: ignore[arg-type]


def _serialize_password(value: str | SecretStr) -> str:
    return str(value) if isinstance(value, SecretStr) else value


StrongPassword = Annotated[SecretStr, PasswordPolicy()]
"""A ``SecretStr`` field checked by the default :class:`PasswordPolicy`."""
