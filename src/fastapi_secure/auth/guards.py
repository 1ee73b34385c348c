"""Guards: dependencies that authenticate through an auth dependency, then decide.

:class:`RoleChecker` (roles, with a hierarchy), :class:`PermissionChecker`
(permissions granted to roles) and :class:`FreshnessChecker` (a recent
credential login, made by :func:`require_fresh`) share one base,
:class:`ClaimsGuard`. Each returns the ``AccessClaims``; unauthenticated: 401;
authenticated but not allowed: ``403 permission_denied``; not fresh: ``401
fresh_token_required``. Scopes: use any of them with
``Security(guard, scopes=[...])``; the auth dependency enforces the scopes and
OpenAPI lists them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence

from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.requests import HTTPConnection

from fastapi_secure.auth.base import ClaimsDependency, close_on_refusal, refuse
from fastapi_secure.auth.roles import (
    Mode,
    RoleHierarchy,
    RolePermissions,
    check_mode,
    role_names,
    validate_permission,
    validate_role,
)
from fastapi_secure.clock import Clock, system_clock
from fastapi_secure.errors import (
    AuthenticationError,
    ConfigurationError,
    ErrorCode,
    PermissionDeniedError,
    SecurityError,
    StepUpRequiredError,
)
from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "ClaimsGuard",
    "FreshnessChecker",
    "MFAChecker",
    "PermissionChecker",
    "RoleChecker",
    "require_fresh",
    "require_mfa",
]

logger = logging.getLogger("fastapi_secure.auth")


class ClaimsGuard(SecurityBase):
    """A dependency that authenticates through ``auth``, then decides.

    Subclasses implement :meth:`check`, which raises a core error from
    :mod:`fastapi_secure.errors` to refuse; the guard answers it in HTTP.
    Guards are :class:`~fastapi_secure.auth.base.ClaimsDependency` objects
    themselves, so they nest: ``RoleChecker([...], auth=require_fresh(bearer))``.
    """

    def __init__(self, auth: ClaimsDependency) -> None:
        if not isinstance(auth, ClaimsDependency):
            raise ConfigurationError(
                "auth must be a BearerAuth, CookieAuth, require_fresh(...) or another checker "
                "(a ClaimsDependency)"
            )
        self.auth = auth
        # Seen by OpenAPI as the auth's own scheme, so routes list it (with the
        # scopes of Security(checker, scopes=[...])) and Swagger can authorize.
        self.model = auth.model
        self.scheme_name = auth.scheme_name

    def allowed(self, claims: AccessClaims) -> bool:
        """Whether ``claims`` pass; subclasses decide."""
        raise NotImplementedError

    def check(self, claims: AccessClaims) -> None:
        """Raise a :class:`~fastapi_secure.errors.SecurityError` to refuse ``claims``
        (by default 403 ``permission_denied`` when :meth:`allowed` says no)."""
        if not self.allowed(claims):
            raise PermissionDeniedError(reason=f"refused by {self!r}")

    async def authenticate(
        self, request: HTTPConnection, scopes: Sequence[str] = ()
    ) -> AccessClaims:
        claims = await self.auth.authenticate(request, scopes)
        if claims is None:
            refuse(AuthenticationError(reason="no credentials"))
        try:
            self.check(claims)
        except SecurityError as exc:
            logger.debug("%r refused subject %r: %s", self, claims.sub, exc.args)
            refuse(exc)
        return claims

    async def __call__(
        self, request: HTTPConnection, security_scopes: SecurityScopes
    ) -> AccessClaims:
        return await close_on_refusal(request, self.authenticate(request, security_scopes.scopes))


class RoleChecker(ClaimsGuard):
    """Require roles: ``Depends(RoleChecker(["admin"], auth=bearer))``.

    ``mode="any"`` (default) passes a token holding at least one of ``roles``,
    ``mode="all"`` one holding every one. Token roles are first expanded
    through ``hierarchy``, so with ``admin`` implying ``editor`` an admin
    passes ``RoleChecker(["editor"], ...)``.
    """

    def __init__(
        self,
        roles: Iterable[str],
        *,
        auth: ClaimsDependency,
        mode: Mode = "any",
        hierarchy: RoleHierarchy | None = None,
    ) -> None:
        super().__init__(auth)
        self.roles = frozenset(validate_role(role) for role in role_names(roles))
        if not self.roles:
            raise ConfigurationError("RoleChecker needs at least one role")
        self.mode = check_mode(mode)
        self.hierarchy = hierarchy

    def allowed(self, claims: AccessClaims) -> bool:
        held = self.hierarchy.expand(claims.roles) if self.hierarchy else frozenset(claims.roles)
        if self.mode == "all":
            return self.roles <= held
        return not self.roles.isdisjoint(held)

    def __repr__(self) -> str:
        return f"RoleChecker({sorted(self.roles)}, mode={self.mode!r})"


class PermissionChecker(ClaimsGuard):
    """Require permissions granted to the token's roles by ``grants``:
    ``Depends(PermissionChecker(["posts:write"], auth=bearer, grants=grants))``.

    ``mode="all"`` (default) needs every listed permission, ``mode="any"`` one.
    """

    def __init__(
        self,
        permissions: Iterable[str],
        *,
        auth: ClaimsDependency,
        grants: RolePermissions,
        mode: Mode = "all",
    ) -> None:
        super().__init__(auth)
        required = tuple(role_names(permissions))
        for permission in required:
            validate_permission(permission, pattern=False)
        if not required:
            raise ConfigurationError("PermissionChecker needs at least one permission")
        if not isinstance(grants, RolePermissions):
            raise ConfigurationError("grants must be a RolePermissions")
        self.permissions = frozenset(required)
        self.grants = grants
        self.mode = check_mode(mode)

    def allowed(self, claims: AccessClaims) -> bool:
        check = all if self.mode == "all" else any
        return check(self.grants.allows(claims.roles, wanted) for wanted in self.permissions)

    def __repr__(self) -> str:
        return f"PermissionChecker({sorted(self.permissions)}, mode={self.mode!r})"


class FreshnessChecker(ClaimsGuard):
    """Dependency made by :func:`require_fresh`: the claims of a fresh token."""

    def __init__(
        self, auth: ClaimsDependency, *, max_age: float | None, clock: Clock = system_clock
    ) -> None:
        super().__init__(auth)
        if max_age is not None and max_age <= 0:
            raise ConfigurationError("max_age must be positive seconds")
        self.max_age = max_age
        self.clock = clock

    def check(self, claims: AccessClaims) -> None:
        max_age = None if self.max_age is None else math.ceil(self.max_age)
        if not claims.fresh:
            raise StepUpRequiredError(reason="token is not fresh", max_age=max_age)
        if self.max_age is not None and self.clock() - claims.auth_time > self.max_age:
            raise StepUpRequiredError(
                reason="last authentication older than max_age", max_age=max_age
            )

    def __repr__(self) -> str:
        return f"FreshnessChecker(max_age={self.max_age!r})"


def require_fresh(
    auth: ClaimsDependency, *, max_age: float | None = None, clock: Clock = system_clock
) -> FreshnessChecker:
    """A dependency for sensitive operations (password change, deleting the account).

    Passes only tokens issued by a credential login (``fresh``: rotated tokens
    are not) and, with ``max_age`` (seconds), whose ``auth_time`` is at most
    that old. Otherwise ``401 fresh_token_required`` with the RFC 9470
    challenge ``Bearer error="insufficient_user_authentication"``, telling the
    client to ask for the password again.
    """
    return FreshnessChecker(auth, max_age=max_age, clock=clock)


MFA_METHODS: frozenset[str] = frozenset({"mfa"})
"""``amr`` values (RFC 8176) that :func:`require_mfa` accepts: ``mfa``, which a
login with a second factor adds to the password's ``pwd`` and the factor's
``otp``, ``hwk`` or ``swk``."""


class MFAChecker(ClaimsGuard):
    """Dependency made by :func:`require_mfa`: the claims of an MFA login."""

    def __init__(
        self, auth: ClaimsDependency, *, max_age: float | None, clock: Clock = system_clock
    ) -> None:
        super().__init__(auth)
        if max_age is not None and max_age <= 0:
            raise ConfigurationError("max_age must be positive seconds")
        self.max_age = max_age
        self.clock = clock

    def check(self, claims: AccessClaims) -> None:
        max_age = None if self.max_age is None else math.ceil(self.max_age)
        if MFA_METHODS.isdisjoint(claims.amr):
            raise StepUpRequiredError(
                "multi-factor authentication required",
                code=ErrorCode.MFA_REQUIRED,
                reason=f"amr {list(claims.amr)} has no second factor",
                max_age=max_age,
                description="sign in again with a second factor",
            )
        if self.max_age is not None and self.clock() - claims.auth_time > self.max_age:
            raise StepUpRequiredError(
                "multi-factor authentication required",
                code=ErrorCode.MFA_REQUIRED,
                reason="last multi-factor authentication older than max_age",
                max_age=max_age,
                description="sign in again with a second factor",
            )

    def __repr__(self) -> str:
        return f"MFAChecker(max_age={self.max_age!r})"


def require_mfa(
    auth: ClaimsDependency, *, max_age: float | None = None, clock: Clock = system_clock
) -> MFAChecker:
    """A step-up dependency: passes only tokens of a login with a second factor.

    The token's ``amr`` (RFC 8176) must hold ``mfa`` and, with ``max_age``
    (seconds), its ``auth_time`` be at most that old; rotated tokens keep both
    from the login. Otherwise ``401 mfa_required`` with the RFC 9470 challenge
    ``Bearer error="insufficient_user_authentication", error_description=...``
    (and ``max_age``), telling the client to sign in again with a second factor.
    """
    return MFAChecker(auth, max_age=max_age, clock=clock)
