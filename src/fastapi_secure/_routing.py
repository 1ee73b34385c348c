"""What the ready routers (accounts, second factors) share: core errors as HTTP
answers, error responses documented in OpenAPI, the client's address, a 404.

HTTP glue, so it imports FastAPI; the core modules never import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from fastapi import HTTPException, Request, status

from fastapi_secure.errors import ErrorCode, SecurityError
from fastapi_secure.http_errors import http_exception

if TYPE_CHECKING:
    from fastapi_secure.accounts.addresses import IPAddress
    from fastapi_secure.clientip import TrustedProxies

__all__ = [
    "ClientAddress",
    "answering",
    "client_address",
    "documented_responses",
    "not_found",
    "refuse",
]

ClientAddress = Callable[[Request], "str | IPAddress | None"]


def refuse(error: SecurityError) -> NoReturn:
    """Raise ``error`` as its HTTP answer (the one place that maps core errors here)."""
    raise http_exception(error) from None


@contextmanager
def answering() -> Iterator[None]:
    """Turn a core error raised inside the block into its HTTP answer."""
    try:
        yield
    except SecurityError as error:
        refuse(error)


def documented_responses(
    descriptions: Mapping[int, str], model: type, *codes: int, **described: str
) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route answering ``codes``, each with its description
    (``described`` overrides one: ``_409="..."``) and the error body ``model``.

    422 keeps no model: its body is FastAPI's validation list, or the object of
    :func:`fastapi_secure.http_errors.install_error_handlers`, as the application
    chooses.
    """

    def description(code: int) -> str:
        return described.get(f"_{code}", descriptions[code])

    return {
        code: {"description": description(code)}
        if code == 422
        else {"model": model, "description": description(code)}
        for code in codes
    }


def client_address(trusted_proxies: TrustedProxies | None) -> ClientAddress:
    """The client's address as ``trusted_proxies`` resolves it, else the peer's."""
    if trusted_proxies is not None:
        return lambda request: trusted_proxies.client_ip(request.scope)
    return lambda request: request.client.host if request.client else None


def not_found(what: str) -> NoReturn:
    """Answer 404 ``not_found`` "no such <what>"."""
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        detail={"code": ErrorCode.NOT_FOUND.value, "message": f"no such {what}"},
    )
