"""Authorization over the claims of an authenticated request: roles, permissions, scopes.

* :class:`RoleHierarchy` says which roles imply which (``admin`` -> ``editor``
  -> ``viewer``); it is closed transitively once, at construction, and a cycle
  is a :class:`~fastapi_secure.errors.ConfigurationError`.
* :class:`RoleChecker` requires roles (``mode="any"`` or ``"all"``) among
  the token's roles, expanded through the hierarchy.
* :class:`PermissionChecker` requires permissions such as ``posts:write``,
  granted to roles by :class:`RolePermissions` with wildcards (``posts:*``,
  ``*``).
* Scopes: use either checker with ``Security(checker, scopes=[...])``; the
  scopes are enforced by the auth dependency and listed in OpenAPI.

Both checkers take the auth dependency they read from (``auth=bearer``), are
dependencies themselves (``Depends(checker)``) on a route, a router's or the
app's ``dependencies=[...]``, and return the ``AccessClaims``. Unauthenticated:
401; authenticated but not allowed: ``403 permission_denied``.

Permission syntax: segments separated by ``:``; a granted pattern's segment
``*`` matches any one segment, and a ``*`` as its *last* segment matches one
or more remaining segments (``posts:*`` matches ``posts:read`` and
``posts:read:own``, not ``posts``). ``*`` alone matches every permission.
Required permissions are literal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from fastapi.security.base import SecurityBase
from fastapi.security.oauth2 import SecurityScopes
from starlette.requests import Request

from fastapi_secure.auth import ClaimsDependency
from fastapi_secure.errors import AuthenticationError, ConfigurationError, PermissionDeniedError
from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "PermissionChecker",
    "RoleChecker",
    "RoleHierarchy",
    "RolePermissions",
    "permission_matches",
]

logger = logging.getLogger("fastapi_secure.rbac")

_SEGMENT = re.compile(r"[^\s:*]+")
_ROLE = re.compile(r"\S+")

Mode = Literal["any", "all"]


def _validate_permission(text: str, *, pattern: bool) -> tuple[str, ...]:
    segments = tuple(text.split(":"))
    for segment in segments:
        if segment == "*" and pattern:
            continue
        if not _SEGMENT.fullmatch(segment):
            kind = "permission pattern" if pattern else "required permission"
            raise ConfigurationError(
                f"{kind} {text!r}: segments are separated by ':', non-empty, without spaces"
                + (", and '*' stands alone as a whole segment" if pattern else ", and literal")
            )
    return segments


def _segments_match(pattern: tuple[str, ...], permission: tuple[str, ...]) -> bool:
    for index, want in enumerate(pattern):
        if index >= len(permission):
            return False
        if want == "*":
            if index == len(pattern) - 1:
                return True  # a trailing '*' covers the rest
            continue
        if want != permission[index]:
            return False
    return len(pattern) == len(permission)


def permission_matches(pattern: str, permission: str) -> bool:
    """Whether a granted ``pattern`` (wildcards allowed) covers a literal ``permission``.

    Malformed input never matches.
    """
    try:
        granted = _validate_permission(pattern, pattern=True)
        wanted = _validate_permission(permission, pattern=False)
    except ConfigurationError:
        return False
    return _segments_match(granted, wanted)


def _names(values: Iterable[str]) -> Iterable[str]:
    if isinstance(values, str):
        raise ConfigurationError(f"expected a list of names, got the string {values!r}")
    return values


def _validate_role(role: str) -> str:
    if not isinstance(role, str) or not _ROLE.fullmatch(role):
        raise ConfigurationError(f"role {role!r} must be a non-empty string without spaces")
    return role


class RoleHierarchy:
    """Which roles imply which: ``RoleHierarchy({"admin": ["editor"], "editor": ["viewer"]})``.

    Each key implies the roles listed for it and, transitively, everything
    those imply. Cycles (``a`` -> ``b`` -> ``a``, or a role implying itself)
    are refused with ConfigurationError.
    """

    def __init__(self, implies: Mapping[str, Iterable[str]]) -> None:
        graph = {
            _validate_role(role): tuple(_validate_role(child) for child in _names(children))
            for role, children in implies.items()
        }
        self._closure = self._close(graph)

    @staticmethod
    def _close(graph: Mapping[str, tuple[str, ...]]) -> dict[str, frozenset[str]]:
        """Transitive closure by one iterative depth-first pass (each role closed
        once, no recursion limit on deep hierarchies); a back edge is a cycle."""
        closure: dict[str, frozenset[str]] = {}
        for root in graph:
            if root in closure:
                continue
            path: list[str] = [root]
            on_path: set[str] = {root}
            stack: list[tuple[str, int]] = [(root, 0)]
            while stack:
                role, index = stack.pop()
                children = graph.get(role, ())
                if index < len(children):
                    stack.append((role, index + 1))
                    child = children[index]
                    if child in on_path:
                        cycle = " -> ".join([*path[path.index(child) :], child])
                        raise ConfigurationError(f"role hierarchy has a cycle: {cycle}")
                    if child not in closure:
                        path.append(child)
                        on_path.add(child)
                        stack.append((child, 0))
                    continue
                # Every child is closed now: close this role.
                reached = {role}
                for child in children:
                    reached |= closure[child]
                closure[role] = frozenset(reached)
                on_path.discard(path.pop())
        return closure

    def implied(self, role: str) -> frozenset[str]:
        """``role`` and every role it implies."""
        return self._closure.get(role, frozenset({role}))

    def expand(self, roles: Iterable[str]) -> frozenset[str]:
        """The given roles and every role they imply."""
        expanded: set[str] = set()
        for role in roles:
            expanded |= self.implied(role)
        return frozenset(expanded)

    def __repr__(self) -> str:
        implied = {role: sorted(roles) for role, roles in self._closure.items()}
        return f"RoleHierarchy({implied!r})"


class RolePermissions:
    """Permission patterns granted to each role:
    ``RolePermissions({"editor": ["posts:*"], "admin": ["*"]})``.

    With a ``hierarchy`` a role also gets the permissions of the roles it implies.
    """

    def __init__(
        self,
        grants: Mapping[str, Iterable[str]],
        *,
        hierarchy: RoleHierarchy | None = None,
    ) -> None:
        self.hierarchy = hierarchy
        self._grants = {
            _validate_role(role): tuple(
                _validate_permission(pattern, pattern=True) for pattern in _names(patterns)
            )
            for role, patterns in grants.items()
        }

    def _patterns(self, roles: Iterable[str]) -> list[tuple[str, ...]]:
        expanded = self.hierarchy.expand(roles) if self.hierarchy else frozenset(roles)
        return [pattern for role in expanded for pattern in self._grants.get(role, ())]

    def allows(self, roles: Iterable[str], permission: str) -> bool:
        """Whether any of ``roles`` is granted ``permission`` (a literal permission)."""
        try:
            wanted = _validate_permission(permission, pattern=False)
        except ConfigurationError:
            return False
        return any(_segments_match(pattern, wanted) for pattern in self._patterns(roles))

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        """The patterns granted to ``roles`` (after hierarchy expansion)."""
        return frozenset(":".join(pattern) for pattern in self._patterns(roles))


class _ClaimsGuard(SecurityBase):
    """A dependency that authenticates through ``auth`` and then decides."""

    def __init__(self, auth: ClaimsDependency) -> None:
        if not isinstance(auth, ClaimsDependency):
            raise ConfigurationError(
                "auth must be a BearerAuth, CookieAuth, require_fresh(...) or another checker"
            )
        self.auth = auth
        # Seen by OpenAPI as the auth's own scheme, so routes list it (with the
        # scopes of Security(checker, scopes=[...])) and Swagger can authorize.
        self.model = auth.model
        self.scheme_name = auth.scheme_name

    def allowed(self, claims: AccessClaims) -> bool:
        raise NotImplementedError

    async def authenticate(self, request: Request, scopes: Sequence[str] = ()) -> AccessClaims:
        claims = await self.auth.authenticate(request, scopes)
        if claims is None:
            raise AuthenticationError(reason="no credentials")
        if not self.allowed(claims):
            logger.debug("%r refused subject %r with roles %s", self, claims.sub, claims.roles)
            raise PermissionDeniedError(reason=f"refused by {self!r}")
        return claims

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> AccessClaims:
        return await self.authenticate(request, security_scopes.scopes)


def _mode(mode: str) -> Mode:
    if mode == "any":
        return "any"
    if mode == "all":
        return "all"
    raise ConfigurationError(f"mode must be 'any' or 'all', not {mode!r}")


class RoleChecker(_ClaimsGuard):
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
        self.roles = frozenset(_validate_role(role) for role in _names(roles))
        if not self.roles:
            raise ConfigurationError("RoleChecker needs at least one role")
        self.mode = _mode(mode)
        self.hierarchy = hierarchy

    def allowed(self, claims: AccessClaims) -> bool:
        held = self.hierarchy.expand(claims.roles) if self.hierarchy else frozenset(claims.roles)
        if self.mode == "all":
            return self.roles <= held
        return not self.roles.isdisjoint(held)

    def __repr__(self) -> str:
        return f"RoleChecker({sorted(self.roles)}, mode={self.mode!r})"


class PermissionChecker(_ClaimsGuard):
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
        required = tuple(_names(permissions))
        for permission in required:
            _validate_permission(permission, pattern=False)
        if not required:
            raise ConfigurationError("PermissionChecker needs at least one permission")
        if not isinstance(grants, RolePermissions):
            raise ConfigurationError("grants must be a RolePermissions")
        self.permissions = frozenset(required)
        self.grants = grants
        self.mode = _mode(mode)

    def allowed(self, claims: AccessClaims) -> bool:
        check = all if self.mode == "all" else any
        return check(self.grants.allows(claims.roles, wanted) for wanted in self.permissions)

    def __repr__(self) -> str:
        return f"PermissionChecker({sorted(self.permissions)}, mode={self.mode!r})"
