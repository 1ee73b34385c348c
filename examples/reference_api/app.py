"""The reference API application (grows with each block)."""

from __future__ import annotations

from fastapi import FastAPI

import fastapi_secure


def create_app() -> FastAPI:
    app = FastAPI(title="fastapi-secure reference API", version=fastapi_secure.__version__)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


app = create_app()
