"""Small apps for the audit tests and the ``audit`` CLI tests (importable as MODULE:APP)."""

# No `from __future__ import annotations`: FastAPI resolves the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Security, WebSocket

from fastapi_secure import (
    BearerAuth,
    KeySet,
    MemoryTokenStore,
    RateLimiter,
    RoleChecker,
    TokenIssuer,
    install_secure_defaults,
    jwks_router,
    require_fresh,
)
from fastapi_secure.audit import public
from fastapi_secure.tokens.claims import AccessClaims
from fastapi_secure.tokens.issuer import keep_login_grant


def _issuer() -> TokenIssuer:
    return TokenIssuer(
        KeySet.generate("EdDSA"),
        MemoryTokenStore(),
        issuer="https://issuer.example.test",
        audience="https://api.example.test",
        grant_loader=keep_login_grant,
    )


def build(*, forget: bool = False) -> FastAPI:
    """A fully protected app; ``forget=True`` leaves one route without its dependency."""
    issuer = _issuer()
    bearer = BearerAuth(issuer, token_url="/auth/login", scopes={"items:read": "read items"})
    limiter = RateLimiter("memory://")
    admin = RoleChecker(["admin"], auth=bearer)
    Claims = Annotated[AccessClaims, Depends(bearer)]  # noqa: N806 - a type alias

    app = FastAPI()

    @app.post("/auth/login", dependencies=[Depends(public), Depends(limiter.limit("5/minute"))])
    async def login() -> dict[str, str]:
        return {}

    @app.get("/items")
    async def items(
        claims: Annotated[AccessClaims, Security(bearer, scopes=["items:read"])],
    ) -> list[str]:
        return []

    if forget:

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

    else:

        @app.get("/items/{item_id}")
        async def protected_item(item_id: int, claims: Claims) -> dict[str, int]:
            return {"id": item_id}

    @app.patch("/me/password")
    async def change_password(
        claims: Annotated[AccessClaims, Depends(require_fresh(bearer, max_age=300))],
    ) -> None:
        return None

    admin_router = APIRouter(prefix="/admin", dependencies=[Depends(admin)])

    @admin_router.get("/users")
    async def users() -> list[str]:
        return []

    app.include_router(admin_router)
    app.include_router(jwks_router(issuer.keys))

    @app.websocket("/ws")
    async def ws(websocket: WebSocket, claims: Claims) -> None:
        await websocket.close()

    sub = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @sub.get("/report")
    async def report(claims: Claims) -> dict[str, str]:
        return {}

    app.mount("/reports", sub)
    install_secure_defaults(app)
    return app


protected = build()
forgotten = build(forget=True)


def factory() -> FastAPI:
    return build()
