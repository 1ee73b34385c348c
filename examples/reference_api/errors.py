"""The reference API's own refusals, and the error answers its OpenAPI documents.

The handlers that ``install_secure_defaults`` installs answer a
:mod:`fastapi_secure.errors` class with its status and the
``{"detail": {"code", "message"}}`` body.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from fastapi_secure import errors

from .schemas import ErrorOut, ValidationErrorOut

__all__ = ["ConflictError", "document_validation_errors", "responses"]


class ConflictError(errors.ConflictError):
    """409: the request conflicts with what is stored (an admin deactivating themselves)."""

    default_message = "email or username already registered"


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "Malformed request body (not valid JSON)"},
    401: {"model": ErrorOut, "description": "Missing, invalid, expired or revoked token"},
    403: {"model": ErrorOut, "description": "Authenticated but not allowed"},
    404: {"model": ErrorOut, "description": "No such user"},
    409: {"model": ErrorOut, "description": "Conflict"},
    413: {"model": ErrorOut, "description": "Request body too large"},
    # Replaces FastAPI's default 422 schema, which is not what install_error_handlers sends.
    422: {"model": ValidationErrorOut, "description": "Request validation failed"},
    429: {"model": ErrorOut, "description": "Rate limited; see Retry-After"},
    503: {"model": ErrorOut, "description": "A backing service is unavailable"},
}


def document_validation_errors(app: FastAPI) -> None:
    """Give every documented 422 the body ``install_error_handlers`` sends.

    The library's routers leave their 422 without a model or with FastAPI's default
    list, since the body depends on the application's handlers; this application's
    is :class:`ValidationErrorOut`, for every route.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        reference = {"$ref": "#/components/schemas/ValidationErrorOut"}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                answer = operation.get("responses", {}).get("422")
                if answer is not None:
                    answer["content"] = {"application/json": {"schema": reference}}
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route that may answer these error statuses."""
    return {code: _ERRORS[code] for code in codes}
