"""The routers of the reference API, one module per area."""

from __future__ import annotations

from fastapi import APIRouter

from examples.reference_api.deps import Components

from . import admin, auth, demo, meta, mfa, oidc, realtime, users

__all__ = ["routers"]


def routers(c: Components) -> list[APIRouter]:
    """Every router of the API, built over the components ``c``."""
    return [
        *auth.routers(c),
        *mfa.routers(c),
        users.router(c),
        admin.router(c),
        meta.router(c),
        realtime.router(c),
        demo.router(c),
        *oidc.routers(c),
    ]
