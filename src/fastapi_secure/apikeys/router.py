"""Routes for users to manage their own API keys: :func:`api_keys_router`.

``POST /`` creates a key (the answer is the only time the key is shown),
``GET /`` lists the caller's keys, ``DELETE /{key_id}`` revokes one and
``POST /{key_id}/rotate`` replaces one, with an overlap. Every route works on
the authenticated caller's keys only (``sub`` of the claims); an id of
someone else's key is answered like an unknown one (404).

A key never manages keys: a request authenticated by an API key gets 403, so
a leaked key cannot mint itself successors. Creation and rotation can require
more than plain authentication (``manage_auth=``, for example
``require_fresh(bearer, max_age=300)`` or a second-factor step-up).
"""

# No `from __future__ import annotations`: FastAPI evaluates the routes' annotations,
# and they name dependencies local to api_keys_router.
import math
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Response, status
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from fastapi_secure.apikeys.keys import (
    APIKeyManager,
    APIKeyNotFoundError,
    APIKeyParameterError,
    CreatedAPIKey,
    is_api_key_claims,
)
from fastapi_secure.apikeys.stores.base import APIKey
from fastapi_secure.auth import ClaimsDependency
from fastapi_secure.errors import ConfigurationError, ErrorCode
from fastapi_secure.tokens.claims import AccessClaims

__all__ = [
    "APIKeyCreateRequest",
    "APIKeyErrorOut",
    "APIKeyOut",
    "APIKeyRotateRequest",
    "NewAPIKeyOut",
    "api_keys_router",
]

_DAY = 86400
_ALLOW = "__fastapi_secure_allow__"


class _SharedPathRoute(APIRoute):
    """A route sharing its path with routes of other methods: a 405 names them all.

    Starlette answers a wrong method with the ``Allow`` header of the first
    route whose path matched, which would name POST alone where GET works
    too. The methods of the path ride on the endpoint function, which
    survives ``include_router`` (the route object does not).
    """

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        allow = getattr(self.endpoint, _ALLOW, None)
        if isinstance(allow, tuple) and scope["type"] == "http" and scope["method"] not in allow:
            headers = {"Allow": ", ".join(allow)}
            if "app" in scope:
                raise StarletteHTTPException(status_code=405, headers=headers)
            response = PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)
            await response(scope, receive, send)
            return
        await super().handle(scope, receive, send)


def _refuse(status_code: int, code: ErrorCode, message: str) -> NoReturn:
    """The one place this module answers with an error."""
    raise HTTPException(status_code, detail={"code": code.value, "message": message})


class APIKeyErrorDetail(BaseModel):
    """``detail`` of an error answer: a stable code and a generic message."""

    code: str
    message: str


class APIKeyErrorOut(BaseModel):
    """An error answer of these routes (the library's one error shape)."""

    detail: APIKeyErrorDetail


_DOCUMENTED: dict[int, str] = {
    401: "Not authenticated, or a step-up is required",
    403: "Authenticated by an API key, which cannot manage keys",
    404: "No such key among the caller's, or it cannot be rotated",
    409: "Too many usable keys; revoke one first",
    503: "The key store is unavailable",
}


def _responses(
    codes: Iterable[int], overrides: Mapping[int | str, dict[str, Any]]
) -> dict[int | str, dict[str, Any]]:
    # 422 keeps FastAPI's own schema unless the app gives its own (the answer's
    # shape depends on the app's exception handlers).
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code in overrides or str(code) in overrides:
            documented[code] = overrides.get(code) or overrides[str(code)]
        elif code in _DOCUMENTED:
            documented[code] = {"model": APIKeyErrorOut, "description": _DOCUMENTED[code]}
    return documented


KeyId = Annotated[str, Path(min_length=1, max_length=64)]


class APIKeyCreateRequest(BaseModel):
    """Body of ``POST``: a name, the scopes wanted, a lifetime in seconds."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    scopes: list[str] = Field(default_factory=list, max_length=64)
    expires_in: int | None = Field(default=None, gt=0, description="seconds; default per server")


class APIKeyRotateRequest(BaseModel):
    """Body of ``POST .../rotate``: how long the old key keeps working (seconds)."""

    model_config = ConfigDict(extra="forbid")

    overlap: int = Field(default=_DAY, ge=0)


class APIKeyOut(BaseModel):
    """A key as listed: never its secret."""

    id: str
    name: str
    scopes: list[str]
    roles: list[str]
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked: bool
    rotated_to: str | None

    @classmethod
    def of(cls, record: APIKey) -> "APIKeyOut":
        return cls(
            id=record.id,
            name=record.name,
            scopes=sorted(record.scopes),
            roles=list(record.roles),
            created_at=record.created_at,
            expires_at=record.expires_at,
            last_used_at=record.last_used_at,
            revoked=record.revoked,
            rotated_to=record.rotated_to,
        )


class NewAPIKeyOut(APIKeyOut):
    """A key just made: ``key`` is shown this once."""

    key: str

    @classmethod
    def made(cls, created: CreatedAPIKey) -> "NewAPIKeyOut":
        return cls(key=created.key, **APIKeyOut.of(created.record).model_dump())


def api_keys_router(
    manager: APIKeyManager,
    *,
    auth: ClaimsDependency,
    manage_auth: ClaimsDependency | None = None,
    grantable_scopes: Iterable[str] = (),
    default_lifetime: float = 90 * _DAY,
    max_lifetime: float = 365 * _DAY,
    max_overlap: float = 7 * _DAY,
    max_keys: int = 50,
    prefix: str = "/users/me/api-keys",
    tags: list[str] | None = None,
    responses: Mapping[int | str, dict[str, Any]] | None = None,
) -> APIRouter:
    """An :class:`~fastapi.APIRouter` for the caller's own keys.

    Args:
        manager: the :class:`APIKeyManager`.
        auth: authenticates listing and revoking (a ``BearerAuth``, ``CookieAuth``...).
        manage_auth: authenticates creating and rotating (default ``auth``); give
            it a step-up (``require_fresh(bearer, max_age=300)``).
        grantable_scopes: the scopes a key may be given; anything else is a 422.
        default_lifetime: seconds a key lives when the request names none.
        max_lifetime: the longest lifetime a request may ask for.
        max_overlap: the longest rotation overlap a request may ask for.
        max_keys: how many usable (not revoked, not expired) keys one subject may
            hold; checked before each creation (concurrent creations may pass it by
            a few).
        prefix: where the routes live.
        tags: OpenAPI tags of the routes.
        responses: OpenAPI ``responses`` entries that replace the built-in ones
            (401, 403, 404, 409, 503) or FastAPI's 422, on the routes that can
            answer them (for example the app's own 422 model).

    The new key gets the caller's roles (with a ``grant_loader`` on the manager,
    they stay capped by the owner's current roles).
    """
    if not 0 < default_lifetime <= max_lifetime or not math.isfinite(max_lifetime):
        raise ConfigurationError("need 0 < default_lifetime <= max_lifetime, both finite")
    if not 0 <= max_overlap < math.inf:
        raise ConfigurationError("max_overlap must be zero or more finite seconds")
    if max_keys < 1:
        raise ConfigurationError("max_keys must be at least 1")
    grantable = frozenset(grantable_scopes)
    creator = manage_auth if manage_auth is not None else auth

    def person(claims: AccessClaims | None) -> AccessClaims:
        if claims is None:
            _refuse(status.HTTP_401_UNAUTHORIZED, ErrorCode.NOT_AUTHENTICATED, "not authenticated")
        if is_api_key_claims(claims):
            # A leaked key must not be able to mint or keep alive its successors.
            _refuse(status.HTTP_403_FORBIDDEN, ErrorCode.PERMISSION_DENIED, "not allowed")
        return claims

    async def caller(claims: Annotated[AccessClaims | None, Depends(auth)]) -> AccessClaims:
        return person(claims)

    async def manager_caller(
        claims: Annotated[AccessClaims | None, Depends(creator)],
    ) -> AccessClaims:
        return person(claims)

    router = APIRouter(prefix=prefix, tags=list(tags or ["api-keys"]), route_class=_SharedPathRoute)
    extra = dict(responses or {})

    @router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        response_model=NewAPIKeyOut,
        responses=_responses((401, 403, 409, 422, 503), extra),
    )
    async def create_api_key(
        body: APIKeyCreateRequest,
        response: Response,
        claims: Annotated[AccessClaims, Depends(manager_caller)],
    ) -> NewAPIKeyOut:
        """Make a key; the answer holds the key, shown this once."""
        unknown = set(body.scopes) - grantable
        if unknown:
            _refuse(422, ErrorCode.VALIDATION_FAILED, "a requested scope cannot be granted")
        lifetime = body.expires_in if body.expires_in is not None else default_lifetime
        if lifetime > max_lifetime:
            _refuse(422, ErrorCode.VALIDATION_FAILED, "expires_in is longer than allowed")
        now = manager.clock()
        usable = [r for r in await manager.list_for(claims.sub) if r.is_active(now)]
        if len(usable) >= max_keys:
            _refuse(409, ErrorCode.CONFLICT, "too many API keys; revoke one first")
        try:
            created = await manager.create(
                claims.sub,
                name=body.name,
                scopes=body.scopes,
                roles=claims.roles,
                expires_in=lifetime,
            )
        except APIKeyParameterError:
            _refuse(422, ErrorCode.VALIDATION_FAILED, "the key cannot be made with these values")
        response.headers["Cache-Control"] = "no-store"
        return NewAPIKeyOut.made(created)

    @router.get("", response_model=list[APIKeyOut], responses=_responses((401, 403, 503), extra))
    async def list_api_keys(
        claims: Annotated[AccessClaims, Depends(caller)],
    ) -> list[APIKeyOut]:
        """The caller's keys, oldest first (revoked and expired ones included)."""
        return [APIKeyOut.of(record) for record in await manager.list_for(claims.sub)]

    for shared in (create_api_key, list_api_keys):
        setattr(shared, _ALLOW, ("GET", "POST"))

    @router.delete(
        "/{key_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        responses=_responses((401, 403, 404, 422, 503), extra),
    )
    async def revoke_api_key(
        key_id: KeyId, claims: Annotated[AccessClaims, Depends(caller)]
    ) -> Response:
        """Revoke one of the caller's keys; refused from the next request on."""
        try:
            await manager.revoke(key_id, subject=claims.sub)
        except APIKeyNotFoundError:
            _refuse(404, ErrorCode.NOT_FOUND, "no such API key")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @router.post(
        "/{key_id}/rotate",
        status_code=status.HTTP_201_CREATED,
        response_model=NewAPIKeyOut,
        responses=_responses((401, 403, 404, 422, 503), extra),
    )
    async def rotate_api_key(
        key_id: KeyId,
        response: Response,
        claims: Annotated[AccessClaims, Depends(manager_caller)],
        body: Annotated[APIKeyRotateRequest | None, Body()] = None,
    ) -> NewAPIKeyOut:
        """A successor for one of the caller's keys; the old one works for ``overlap`` s."""
        overlap = (body or APIKeyRotateRequest()).overlap
        if overlap > max_overlap:
            _refuse(422, ErrorCode.VALIDATION_FAILED, "overlap is longer than allowed")
        try:
            created = await manager.rotate(key_id, subject=claims.sub, overlap=overlap)
        except APIKeyNotFoundError:
            _refuse(404, ErrorCode.NOT_FOUND, "no such API key, or it cannot be rotated")
        response.headers["Cache-Control"] = "no-store"
        return NewAPIKeyOut.made(created)

    return router
