"""The example's own bodies (admin, errors); the account routes bring theirs
(:mod:`fastapi_secure.accounts.routers`). None of them carries a password hash."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, Field, StringConstraints

from fastapi_secure import PasswordPolicy

POLICY = PasswordPolicy()

RoleName = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
]
T = TypeVar("T")


class RolesIn(BaseModel):
    roles: Annotated[list[RoleName], Field(max_length=16)]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    detail: ErrorDetail


class FieldError(BaseModel):
    loc: list[str | int]
    type: str
    msg: str


class ValidationErrorDetail(ErrorDetail):
    """``code`` is ``validation_failed``; a field's value is never echoed back.

    A malformed field comes in ``errors``; a password the policy refuses (a rule no
    JSON schema states) in ``problems``."""

    errors: list[FieldError] = Field(default_factory=list)
    problems: list[str] = Field(default_factory=list)


class ValidationErrorOut(BaseModel):
    """The 422 body of ``install_error_handlers``, not FastAPI's default list."""

    detail: ValidationErrorDetail


__all__ = [
    "POLICY",
    "ErrorOut",
    "FieldError",
    "Page",
    "RolesIn",
    "ValidationErrorDetail",
    "ValidationErrorOut",
]
