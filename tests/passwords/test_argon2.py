"""Argon2Scheme: the OWASP floor, impossible parameters, and when an argon2 hash needs a rehash."""

from __future__ import annotations

from typing import Any

import argon2
import pytest

from fastapi_secure.errors import ConfigurationError
from fastapi_secure.passwords import Argon2Scheme, PasswordHasher
from tests.support.password_schemes import FAST, cheap_argon2, cheap_bcrypt


@pytest.mark.parametrize(
    "params",
    [
        {"time_cost": 2, "memory_cost": 19455, "parallelism": 1},
        {"time_cost": 1, "memory_cost": 19456, "parallelism": 1},
        {"time_cost": 4, "memory_cost": 7168, "parallelism": 1},
        {"time_cost": 1, "memory_cost": 8, "parallelism": 1},
        {"time_cost": 2, "memory_cost": 19456, "parallelism": 1, "hash_len": 8},
        {"time_cost": 2, "memory_cost": 19456, "parallelism": 1, "salt_len": 8},
    ],
)
def test_argon2_below_owasp_floor_is_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Argon2Scheme(**params)


@pytest.mark.parametrize(
    ("time_cost", "memory_cost"), [(1, 47104), (2, 19456), (3, 12288), (4, 9216), (5, 7168)]
)
def test_each_owasp_configuration_is_accepted(time_cost: int, memory_cost: int) -> None:
    scheme = Argon2Scheme(time_cost=time_cost, memory_cost=memory_cost, parallelism=1)
    assert scheme.parameters.memory_cost == memory_cost


@pytest.mark.parametrize(
    "params",
    [
        {"time_cost": 0, "memory_cost": 8, "parallelism": 1},
        {"time_cost": 1, "memory_cost": 15, "parallelism": 2},
        {"time_cost": 1, "memory_cost": 8, "parallelism": 0},
        {"time_cost": 1, "memory_cost": 8, "parallelism": 1, "hash_len": 2},
    ],
)
def test_impossible_argon2_parameters_are_refused_even_when_weak_is_allowed(
    params: dict[str, int],
) -> None:
    with pytest.raises(ConfigurationError):
        Argon2Scheme(**params, allow_weak_parameters=True)


def test_weaker_argon2_parameters_are_rehashed() -> None:
    old = PasswordHasher([cheap_argon2(time_cost=1)])
    new = PasswordHasher([cheap_argon2(time_cost=2), cheap_bcrypt()])
    stored = old.hash("correct horse")
    assert new.needs_rehash(stored)
    valid, upgraded = new.verify_and_update("correct horse", stored)
    assert valid
    assert upgraded is not None
    assert argon2.extract_parameters(upgraded).time_cost == 2
    assert new.verify_and_update("correct horse", upgraded) == (True, None)


@pytest.mark.parametrize(
    "weaker", [{"memory_cost": 8}, {"hash_len": 16}, {"salt_len": 8}, {"time_cost": 1}]
)
def test_each_weaker_argon2_parameter_needs_rehash(weaker: dict[str, int]) -> None:
    current = cheap_argon2(time_cost=2, memory_cost=16, hash_len=32, salt_len=16)
    stored = cheap_argon2(
        **{"time_cost": 2, "memory_cost": 16, "hash_len": 32, "salt_len": 16, **weaker}
    ).hash(b"pw")
    assert current.needs_rehash(stored)


def test_stronger_argon2_hash_is_kept() -> None:
    stronger = PasswordHasher([cheap_argon2(time_cost=3, memory_cost=64, parallelism=2)])
    current = PasswordHasher([cheap_argon2(time_cost=2, memory_cost=32)])
    stored = stronger.hash("correct horse")
    assert not current.needs_rehash(stored)
    assert current.verify_and_update("correct horse", stored) == (True, None)


def test_argon2i_legacy_hash_verifies_and_is_upgraded_to_argon2id() -> None:
    legacy = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, type=argon2.Type.I)
    stored = legacy.hash("correct horse")
    assert FAST.needs_rehash(stored)
    valid, upgraded = FAST.verify_and_update("correct horse", stored)
    assert valid
    assert upgraded is not None
    assert argon2.extract_parameters(upgraded).type is argon2.Type.ID
