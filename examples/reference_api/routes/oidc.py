"""Sign-in with OpenID providers and ``/users/me/identities`` (only with ``OIDC_PROVIDERS``).

``GET /auth/oidc/{provider}/login`` and ``/callback`` are the library's
``oidc_router`` (code flow with PKCE, state and nonce bound to the browser,
the ID token checked against the provider's keys). On a good callback the
identity finds its account through ``AccountIdentityLinker`` (a known
identity, else a verified email when the provider's ``allow_link_by_email``
is on, else a new account without a password) and the example issues its own
token pair through its transport, exactly as ``/auth/login`` does.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from starlette.responses import JSONResponse, Response

from examples.reference_api.deps import Components, OIDCSetup
from examples.reference_api.errors import responses
from fastapi_secure.accounts.hooks import AccountEvent
from fastapi_secure.accounts.routers import identities_router
from fastapi_secure.audit import mark_public
from fastapi_secure.oidc.linking import OIDCIdentity
from fastapi_secure.oidc.login import IdentityCallback, oidc_router

__all__ = ["routers"]

PUBLIC = {
    "/{provider}/login": "starts a sign-in at the identity provider",
    "/{provider}/callback": "authenticated by the provider's code and the state cookie",
}
"""The sign-in routes (under ``/auth/oidc``) take no access token, and why."""


def _on_identity(c: Components, oidc: OIDCSetup) -> IdentityCallback:
    async def on_identity(identity: OIDCIdentity, request: Request) -> Response:
        user, _ = await oidc.linker.sign_in(
            identity, link_by_email=oidc.link_by_email.get(identity.provider, False)
        )
        pair = await c.issuer.issue(user.id, roles=user.roles, fresh=True)
        address = request.client.host if request.client else None
        if c.manager.sessions is not None:
            await c.manager.sessions.start(
                user.id,
                pair.session_id,
                user_agent=request.headers.get("user-agent"),
                client_address=address,
            )
        await c.manager.hooks.emit(
            AccountEvent.LOGIN_SUCCEEDED, subject=user.id, session_id=pair.session_id
        )
        cookies = Response()
        body = c.transport.login_response(pair, cookies)
        answer = JSONResponse({**body, "next": request.state.oidc_next})
        answer.raw_headers.extend(
            (name, value) for name, value in cookies.raw_headers if name == b"set-cookie"
        )
        return answer

    return on_identity


def routers(c: Components) -> list[APIRouter]:
    """The OIDC routers over ``c``; none without providers."""
    oidc = c.oidc
    if oidc is None:
        return []
    by_ip = c.limiter.limit(c.settings.auth_limits_per_ip, name="oidc-ip")
    flow = oidc_router(oidc.login, on_identity=_on_identity(c, oidc))
    for route in flow.routes:
        reason = PUBLIC.get(getattr(route, "path", ""))
        if isinstance(route, APIRoute) and reason is not None:
            mark_public(route.endpoint, reason)
    login = APIRouter(prefix="/auth/oidc", dependencies=[Depends(by_ip)])
    login.include_router(flow, responses=responses(429))
    identities = identities_router(oidc.linker, c.transport, prefix="/users/me/identities")
    return [login, identities]
