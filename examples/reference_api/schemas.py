"""Request and response bodies. None of them ever carries a password hash."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, EmailStr, Field, SecretStr, StringConstraints

from fastapi_secure import PasswordPolicy

if TYPE_CHECKING:
    from .models import User

POLICY = PasswordPolicy()

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$"
    ),
]
RoleName = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z][a-z0-9_-]*$")
]
T = TypeVar("T")


class RegisterIn(BaseModel):
    email: EmailStr
    username: Username
    password: Annotated[SecretStr, POLICY.with_context_fields("email", "username")]


class PasswordChangeIn(BaseModel):
    # Not the policy: an old password that today's policy refuses must still be usable here.
    current_password: Annotated[SecretStr, Field(min_length=1, max_length=1024)]
    new_password: Annotated[SecretStr, POLICY]


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: EmailStr
    username: str
    is_active: bool
    roles: list[str]
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            email=user.email,
            username=user.username,
            is_active=user.is_active,
            roles=user.role_names,
            created_at=user.created_at,
        )


class TokenOut(BaseModel):
    """Bearer mode's answer to login and refresh: the OAuth2 token response
    (RFC 6749, section 5.1)."""

    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="access token lifetime in seconds")
    refresh_expires_in: int = Field(description="refresh token lifetime in seconds")


class CookieSession(BaseModel):
    """Cookie mode's answer to login and refresh: the tokens travel only in HttpOnly
    cookies, never in a body that page scripts could read."""

    token_type: Literal["cookie"] = "cookie"
    csrf_token: str
    expires_in: int
    refresh_expires_in: int


class RefreshIn(BaseModel):
    refresh_token: Annotated[str, Field(min_length=1, max_length=8192)]


class LogoutIn(BaseModel):
    refresh_token: Annotated[str | None, Field(default=None, max_length=8192)] = None


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
    """``code`` is ``validation_failed``; a field's value is never echoed back."""

    errors: list[FieldError]


class ValidationErrorOut(BaseModel):
    """The 422 body of ``install_error_handlers``, not FastAPI's default list."""

    detail: ValidationErrorDetail


__all__ = [
    "POLICY",
    "CookieSession",
    "ErrorOut",
    "FieldError",
    "LogoutIn",
    "Page",
    "PasswordChangeIn",
    "RefreshIn",
    "RegisterIn",
    "RolesIn",
    "TokenOut",
    "UserOut",
    "Username",
    "ValidationErrorDetail",
    "ValidationErrorOut",
]
