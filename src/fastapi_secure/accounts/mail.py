"""Mail as a hook: the application sends, the library never speaks SMTP.

The account blocks hand a :class:`MailMessage` to a :class:`MailSender`, any
object with ``async def send(message)``: the application's own SMTP or API
client in production. For development and tests:

* :class:`FileOutbox` writes each message as a JSON file (``to``, ``subject``,
  ``text``, ``link``) into a folder: atomically (never a half-written file),
  with unguessable names, readable by the owner only (``0600``);
* :class:`MemoryOutbox` keeps them in a list.

Action links are built by :class:`LinkBuilder` from a configured public base
URL, never from the request's ``Host`` or ``X-Forwarded-Host`` header, which
an attacker chooses: a reset mail for the victim must not point at the
attacker's site.

```python
from fastapi_secure.accounts.mail import LinkBuilder

links = LinkBuilder("https://app.example.com")
assert links.link("/reset", token="abc") == "https://app.example.com/reset?token=abc"
```
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlencode, urlsplit

import anyio

from fastapi_secure.errors import ConfigurationError

__all__ = ["FileOutbox", "LinkBuilder", "MailMessage", "MailSender", "MemoryOutbox"]

_MAX_ADDRESS = 254
_MAX_SUBJECT = 200


@dataclass(frozen=True)
class MailMessage:
    """One message. ``text`` and ``link`` may carry a single-use token, so
    neither appears in ``repr``."""

    to: str
    subject: str
    text: str
    link: str | None = None

    def __post_init__(self) -> None:
        # CR/LF in a header value would let input add headers (or recipients)
        # once an application's sender writes SMTP.
        if not (
            isinstance(self.to, str)
            and 0 < len(self.to) <= _MAX_ADDRESS
            and "@" in self.to
            and self.to.isprintable()
            and not any(ch.isspace() for ch in self.to)
        ):
            raise ValueError("to must be one printable address without spaces")
        if not (
            isinstance(self.subject, str)
            and len(self.subject) <= _MAX_SUBJECT
            and self.subject.isprintable()
        ):
            raise ValueError("subject must be one printable line of at most 200 characters")

    def __repr__(self) -> str:
        return f"MailMessage(to={self.to!r}, subject={self.subject!r})"

    def as_dict(self) -> dict[str, str | None]:
        """The JSON form written by :class:`FileOutbox`."""
        return {"to": self.to, "subject": self.subject, "text": self.text, "link": self.link}


@runtime_checkable
class MailSender(Protocol):
    """Anything that can send a :class:`MailMessage`."""

    async def send(self, message: MailMessage) -> None:
        """Send ``message`` (or queue it); raise on failure."""
        ...


class MemoryOutbox:
    """A :class:`MailSender` that keeps every message in :attr:`messages`."""

    def __init__(self) -> None:
        self.messages: list[MailMessage] = []

    def __repr__(self) -> str:
        return f"MemoryOutbox(messages={len(self.messages)})"

    async def send(self, message: MailMessage) -> None:
        self.messages.append(message)

    def to(self, address: str) -> list[MailMessage]:
        """Messages sent to ``address`` (compared case-insensitively), oldest first."""
        wanted = address.casefold()
        return [message for message in self.messages if message.to.casefold() == wanted]


class FileOutbox:
    """A :class:`MailSender` writing one JSON file per message into ``directory``.

    The directory is created with mode ``0700`` if missing. Each file is
    written under a temporary dot-name, synced, and renamed into place, so a
    reader never sees half a message; names start with a nanosecond timestamp
    (``sorted`` gives sending order) and end with 128 random bits.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self._directory = Path(directory)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileOutbox({str(self._directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory

    async def send(self, message: MailMessage) -> None:
        await anyio.to_thread.run_sync(self._write, message)

    def _write(self, message: MailMessage) -> Path:
        self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._lock:
            name = f"{time.time_ns():020d}-{secrets.token_hex(16)}.json"
        final = self._directory / name
        temporary = self._directory / f".{name}.tmp"
        data = json.dumps(message.as_dict(), ensure_ascii=False, indent=2).encode()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        return final

    def messages(self) -> list[MailMessage]:
        """Every message in the folder, oldest first (for tests and development)."""
        if not self._directory.is_dir():
            return []
        found = []
        for path in sorted(self._directory.glob("[0-9]*.json")):
            data = json.loads(path.read_text())
            found.append(
                MailMessage(
                    to=data["to"], subject=data["subject"], text=data["text"], link=data["link"]
                )
            )
        return found


class LinkBuilder:
    """Builds absolute links under a configured public base URL.

    Args:
        public_base_url: e.g. ``https://app.example.com`` or
            ``https://example.com/app``; no query, fragment or credentials.
        allow_http: accept ``http://`` (development); ``http://localhost`` and
            loopback addresses are always accepted.
    """

    def __init__(self, public_base_url: str, *, allow_http: bool = False) -> None:
        parts = urlsplit(public_base_url)
        loopback = parts.hostname in {"localhost", "127.0.0.1", "::1"}
        if parts.scheme not in {"https", "http"} or (
            parts.scheme == "http" and not (allow_http or loopback)
        ):
            raise ConfigurationError("public_base_url must be an https:// URL")
        if not parts.hostname or parts.username or parts.password:
            raise ConfigurationError("public_base_url needs a host and no credentials")
        if parts.query or parts.fragment:
            raise ConfigurationError("public_base_url may not carry a query or fragment")
        self._base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    def __repr__(self) -> str:
        return f"LinkBuilder({self._base!r})"

    @property
    def base_url(self) -> str:
        return self._base

    def link(self, path: str, params: Mapping[str, str] | None = None, **more: str) -> str:
        """``base + path`` with ``params`` as the query string.

        ``path`` is a path under the base (``/reset``); anything that could
        leave the configured origin (a scheme, ``//host``, ``..``, a
        backslash) raises ``ValueError``.
        """
        if (
            not isinstance(path, str)
            or not path.startswith("/")
            or path.startswith("//")
            or "\\" in path
            or ".." in path.split("/")
            or any(ch in path for ch in "?#")
            or not path.isprintable()
            or " " in path
        ):
            raise ValueError("path must be an absolute path under the base URL")
        query = urlencode({**(params or {}), **more})
        return f"{self._base}{path}" + (f"?{query}" if query else "")
