"""Import mail from files: single ``.eml`` files, mbox files and Maildir folders."""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path


@dataclass(frozen=True)
class FileMessage:
    origin: str  # where it came from, for messages to the user
    raw: bytes


def is_maildir(path: Path) -> bool:
    return path.is_dir() and (path / "cur").is_dir() and (path / "new").is_dir()


def is_mbox(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(5) == b"From "


def iter_messages(path: Path) -> Iterator[FileMessage]:
    if is_maildir(path):
        box = mailbox.Maildir(str(path), factory=None, create=False)
        for key in box.iterkeys():
            yield FileMessage(f"{path}/{key}", box.get_bytes(key))
    elif path.is_dir():
        for child in sorted(path.iterdir()):
            if child.is_file() and child.suffix.lower() == ".eml":
                yield FileMessage(str(child), child.read_bytes())
    elif is_mbox(path):
        mbox = mailbox.mbox(str(path), create=False)
        for index, key in enumerate(mbox.iterkeys()):
            yield FileMessage(f"{path}#{index + 1}", mbox.get_bytes(key))
    else:
        yield FileMessage(str(path), path.read_bytes())


def header_recipients(raw: bytes) -> list[str]:
    """Candidate envelope recipients of a file without an envelope, most reliable first."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    except Exception:
        return []
    found: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc"):
        for _, address in getaddresses([str(v) for v in headers.get_all(name, [])]):
            if "@" in address and address.lower() not in found:
                found.append(address.lower())
    return found


def recipients_for(raw: bytes, mailboxes: set[str], recipient: str | None) -> list[str]:
    """Where an imported file counts as delivered: ``recipient`` when given, else the first
    configured mailbox among its header recipients (none: the caller must ask)."""
    if recipient:
        return [recipient]
    return [a for a in header_recipients(raw) if a in mailboxes][:1]
