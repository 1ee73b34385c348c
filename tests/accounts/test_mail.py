"""Mail: outboxes, and links that only the configured base URL decides."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import anyio
import httpx
import pytest
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from fastapi_secure.accounts.mail import (
    FileOutbox,
    LinkBuilder,
    MailMessage,
    MailSender,
    MemoryOutbox,
)
from fastapi_secure.errors import ConfigurationError

pytestmark = pytest.mark.anyio

RESET = MailMessage(
    to="alice@example.io",
    subject="Reset your password",
    text="Open https://app.example.io/reset?token=SECRET-TOKEN",
    link="https://app.example.io/reset?token=SECRET-TOKEN",
)


def _names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


async def test_file_outbox_writes_one_private_json_file(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "outbox")
    assert isinstance(outbox, MailSender)
    await outbox.send(RESET)
    files = list((tmp_path / "outbox").iterdir())
    assert len(files) == 1
    assert json.loads(files[0].read_text()) == {
        "to": "alice@example.io",
        "subject": "Reset your password",
        "text": RESET.text,
        "link": RESET.link,
    }
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "outbox").stat().st_mode) == 0o700
    assert outbox.messages() == [RESET]


async def test_file_names_are_ordered_and_unguessable(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    for index in range(5):
        await outbox.send(MailMessage(to=f"u{index}@x.io", subject=str(index), text="t"))
    names = _names(tmp_path)
    assert [message.subject for message in outbox.messages()] == ["0", "1", "2", "3", "4"]
    for name in names:
        stamp, random_part = name.removesuffix(".json").split("-")
        assert stamp.isdigit()
        assert len(random_part) == 32  # 128 bits
    assert len({name.split("-")[1] for name in names}) == 5


async def test_concurrent_sends_lose_nothing(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path)
    async with anyio.create_task_group() as group:
        for index in range(30):
            group.start_soon(outbox.send, MailMessage(to=f"u{index}@x.io", subject="s", text="t"))
    assert len(outbox.messages()) == 30
    assert not [name for name in _names(tmp_path) if name.startswith(".")]


async def test_a_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outbox = FileOutbox(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        await outbox.send(RESET)
    assert _names(tmp_path) == []


async def test_a_missing_folder_has_no_messages(tmp_path: Path) -> None:
    outbox = FileOutbox(tmp_path / "missing")
    assert outbox.messages() == []
    assert outbox.directory == tmp_path / "missing"
    assert "missing" in repr(outbox)


async def test_memory_outbox() -> None:
    outbox = MemoryOutbox()
    await outbox.send(RESET)
    await outbox.send(MailMessage(to="bob@x.io", subject="s", text="t"))
    assert outbox.to("ALICE@example.io") == [RESET]
    assert "messages=2" in repr(outbox)


def test_repr_hides_text_and_link() -> None:
    assert "SECRET-TOKEN" not in repr(RESET)
    assert "alice@example.io" in repr(RESET)


@pytest.mark.parametrize(
    ("to", "subject"),
    [
        ("alice@x.io\r\nBcc: evil@x.io", "s"),
        ("alice@x.io, evil@x.io", "s"),
        ("no-at-sign", "s"),
        ("", "s"),
        ("a" * 300 + "@x.io", "s"),
        ("alice@x.io", "line\r\nBcc: evil@x.io"),
        ("alice@x.io", "x" * 201),
    ],
)
def test_header_injection_is_refused(to: str, subject: str) -> None:
    with pytest.raises(ValueError, match=r"to|subject"):
        MailMessage(to=to, subject=subject, text="t")


def test_links_come_from_the_base_url() -> None:
    links = LinkBuilder("https://app.example.io/base/")
    assert links.base_url == "https://app.example.io/base"
    assert links.link("/reset", token="a b&c") == "https://app.example.io/base/reset?token=a+b%26c"
    assert links.link("/verify", {"token": "t"}) == "https://app.example.io/base/verify?token=t"
    assert links.link("/plain") == "https://app.example.io/base/plain"
    assert "app.example.io" in repr(links)


@pytest.mark.parametrize(
    "path",
    [
        "//evil.example/x",
        "https://evil.example",
        "reset",
        "/a/../b",
        "/a\\b",
        "/a?x=1",
        "/a#f",
        "/a b",
        "/\x00",
    ],
)
def test_paths_cannot_leave_the_origin(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        LinkBuilder("https://app.example.io").link(path, token="t")


@pytest.mark.parametrize(
    "base",
    [
        "http://app.example.io",
        "ftp://app.example.io",
        "https://",
        "https://user:pw@app.example.io",
        "https://app.example.io/?next=x",
        "https://app.example.io/#frag",
        "app.example.io",
    ],
)
def test_bad_base_urls_are_refused(base: str) -> None:
    with pytest.raises(ConfigurationError):
        LinkBuilder(base)


def test_http_only_for_loopback_or_when_allowed() -> None:
    assert LinkBuilder("http://localhost:8000").base_url == "http://localhost:8000"
    assert LinkBuilder("http://127.0.0.1:8000").base_url == "http://127.0.0.1:8000"
    assert LinkBuilder("http://dev.internal", allow_http=True).base_url == "http://dev.internal"


@given(st.text(max_size=100))
def test_any_path_either_stays_under_the_base_or_is_refused(path: str) -> None:
    links = LinkBuilder("https://app.example.io/base")
    try:
        link = links.link(path, token="t")
    except ValueError:
        return
    assert link.startswith("https://app.example.io/base/")


async def test_host_header_poisoning_cannot_change_links() -> None:
    links = LinkBuilder("https://app.example.io")
    app = FastAPI()

    @app.post("/forgot")
    async def forgot() -> dict[str, str]:
        return {"link": links.link("/reset", token="t")}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for headers in (
            {"Host": "evil.example"},
            {"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "http"},
            {"Forwarded": "host=evil.example;proto=http"},
        ):
            response = await client.post("/forgot", headers=headers)
            assert response.json() == {"link": "https://app.example.io/reset?token=t"}
