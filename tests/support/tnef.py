"""A minimal TNEF container (``winmail.dat``) as Outlook writes it, built from the format's
specification ([MS-OXTNEF] 2.1.3: signature, key, then attributes of level, id, length, data
and a 16-bit checksum): a plain body and attachments with their titles."""

from __future__ import annotations

import struct

SIGNATURE = 0x223E9F78
LVL_MESSAGE, LVL_ATTACHMENT = 0x01, 0x02
ATT_TNEF_VERSION = (0x9006, 0x0008)  # (id, type)
ATT_OEM_CODEPAGE = (0x9007, 0x0006)
ATT_BODY = (0x800C, 0x0002)
ATT_ATTACH_RENDDATA = (0x9002, 0x0006)
ATT_ATTACH_TITLE = (0x8010, 0x0001)
ATT_ATTACH_DATA = (0x800F, 0x0006)


def _attribute(level: int, attribute: tuple[int, int], data: bytes) -> bytes:
    name, kind = attribute
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)


def winmail_dat(body: str, attachments: list[tuple[str, bytes]], codepage: int = 1252) -> bytes:
    out = struct.pack("<IH", SIGNATURE, 0x0001)
    out += _attribute(LVL_MESSAGE, ATT_TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += _attribute(LVL_MESSAGE, ATT_OEM_CODEPAGE, struct.pack("<II", codepage, 0))
    out += _attribute(LVL_MESSAGE, ATT_BODY, body.encode(f"cp{codepage}"))
    for name, data in attachments:
        out += _attribute(LVL_ATTACHMENT, ATT_ATTACH_RENDDATA, b"\x01\x00\xff\xff\xff\xff" + b"\x00" * 8)
        out += _attribute(LVL_ATTACHMENT, ATT_ATTACH_TITLE, name.encode(f"cp{codepage}") + b"\x00")
        out += _attribute(LVL_ATTACHMENT, ATT_ATTACH_DATA, data)
    return out
