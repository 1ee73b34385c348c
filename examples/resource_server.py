"""A pure resource server: it issues nothing and accepts an identity provider's tokens.

    OIDC_ISSUER=https://sso.example.com/realms/main \\
    OIDC_AUDIENCE=orders-api OIDC_CLAIMS=keycloak \\
    uvicorn examples.resource_server:app

``OIDC_CLAIMS`` picks the claim shape: ``keycloak`` (realm roles and the
roles of the ``OIDC_AUDIENCE`` client), ``entra``, ``auth0`` or ``standard``.
``OIDC_RFC9068=true`` requires RFC 9068 access tokens (``typ: at+jwt``).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Security

from fastapi_secure.auth import BearerAuth, RoleChecker
from fastapi_secure.oidc import (
    ClaimsMapper,
    ProviderTokenVerifier,
    RemoteKeySet,
    TrustedIssuer,
    auth0_claims,
    entra_claims,
    keycloak_claims,
    standard_claims,
)
from fastapi_secure.tokens.claims import AccessClaims


def claims_mapper(shape: str, audience: str) -> ClaimsMapper:
    mappers: dict[str, ClaimsMapper] = {
        "keycloak": keycloak_claims(client_id=audience),
        "entra": entra_claims(),
        "auth0": auth0_claims(),
        "standard": standard_claims,
    }
    return mappers[shape]


def create_app(
    issuer: str,
    audience: str,
    *,
    shape: str = "standard",
    rfc9068: bool = False,
    allow_insecure_loopback: bool = False,
) -> FastAPI:
    keys = RemoteKeySet(issuer, allow_insecure_loopback=allow_insecure_loopback)
    verifier = ProviderTokenVerifier(
        TrustedIssuer(
            keys, audience=audience, claims=claims_mapper(shape, audience), rfc9068=rfc9068
        )
    )
    bearer = BearerAuth(verifier, scopes={"read": "read orders", "write": "change orders"})

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await keys.aclose()

    app = FastAPI(title="Orders (resource server)", lifespan=lifespan)

    @app.get("/orders")
    async def list_orders(
        claims: AccessClaims = Security(bearer, scopes=["read"]),  # noqa: B008
    ) -> dict[str, Any]:
        return {"owner": claims.sub, "orders": []}

    @app.delete("/orders/{order_id}", dependencies=[Depends(RoleChecker(["admin"], auth=bearer))])
    async def delete_order(order_id: int) -> dict[str, int]:
        return {"deleted": order_id}

    return app


def app_from_environment() -> FastAPI:
    return create_app(
        os.environ["OIDC_ISSUER"],
        os.environ["OIDC_AUDIENCE"],
        shape=os.environ.get("OIDC_CLAIMS", "standard"),
        rfc9068=os.environ.get("OIDC_RFC9068", "").lower() == "true",
    )


app = app_from_environment() if "OIDC_ISSUER" in os.environ else None
