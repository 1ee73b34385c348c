"""Roles and permissions, as data: which roles imply which, which permissions
each role holds. No FastAPI here; :mod:`fastapi_secure.auth.guards` enforces
them on requests.

* :class:`RoleHierarchy` says which roles imply which (``admin`` -> ``editor``
  -> ``viewer``); it is closed transitively once, at construction, and a cycle
  is a :class:`~fastapi_secure.errors.ConfigurationError`.
* :class:`~fastapi_secure.auth.guards.RoleChecker` requires roles
  (``mode="any"`` or ``"all"``) among the token's roles, expanded through the hierarchy.
* :class:`~fastapi_secure.auth.guards.PermissionChecker` requires permissions such
  as ``posts:write``, granted to roles by :class:`RolePermissions` with wildcards (``posts:*``,
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

import re
from collections.abc import Iterable, Mapping
from typing import Literal

from fastapi_secure.errors import ConfigurationError

__all__ = [
    "Mode",
    "RoleHierarchy",
    "RolePermissions",
    "check_mode",
    "permission_matches",
    "role_names",
    "validate_permission",
    "validate_role",
]

_SEGMENT = re.compile(r"[^\s:*]+")
_ROLE = re.compile(r"\S+")

Mode = Literal["any", "all"]


def validate_permission(text: str, *, pattern: bool) -> tuple[str, ...]:
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
        granted = validate_permission(pattern, pattern=True)
        wanted = validate_permission(permission, pattern=False)
    except ConfigurationError:
        return False
    return _segments_match(granted, wanted)


def role_names(values: Iterable[str]) -> Iterable[str]:
    if isinstance(values, str):
        raise ConfigurationError(f"expected a list of names, got the string {values!r}")
    return values


def validate_role(role: str) -> str:
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
            validate_role(role): tuple(validate_role(child) for child in role_names(children))
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
            validate_role(role): tuple(
                validate_permission(pattern, pattern=True) for pattern in role_names(patterns)
            )
            for role, patterns in grants.items()
        }

    def _patterns(self, roles: Iterable[str]) -> list[tuple[str, ...]]:
        expanded = self.hierarchy.expand(roles) if self.hierarchy else frozenset(roles)
        return [pattern for role in expanded for pattern in self._grants.get(role, ())]

    def allows(self, roles: Iterable[str], permission: str) -> bool:
        """Whether any of ``roles`` is granted ``permission`` (a literal permission)."""
        try:
            wanted = validate_permission(permission, pattern=False)
        except ConfigurationError:
            return False
        return any(_segments_match(pattern, wanted) for pattern in self._patterns(roles))

    def permissions_of(self, roles: Iterable[str]) -> frozenset[str]:
        """The patterns granted to ``roles`` (after hierarchy expansion)."""
        return frozenset(":".join(pattern) for pattern in self._patterns(roles))


def check_mode(mode: str) -> Mode:
    if mode == "any":
        return "any"
    if mode == "all":
        return "all"
    raise ConfigurationError(f"mode must be 'any' or 'all', not {mode!r}")
