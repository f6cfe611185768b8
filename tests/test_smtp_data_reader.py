"""The chunked DATA reader: every way the end-of-data line can fall across reads."""

from __future__ import annotations

import asyncio

import pytest

from intake.smtp import read_data

NEXT = b"MAIL FROM:<next@example.org>\r\n"


def read(
    wire: bytes, *, pieces: int = 1, limit: int | None = None, buffer: int = 1 << 20
) -> tuple[object, bytes]:
    """Feed ``wire`` in ``pieces`` parts; what read_data returns and what is left unread."""

    async def run() -> tuple[object, bytes]:
        reader = asyncio.StreamReader(limit=buffer)
        step = max(1, -(-len(wire) // pieces))

        async def feed() -> None:
            for start in range(0, len(wire), step):
                reader.feed_data(wire[start : start + step])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeder = asyncio.create_task(feed())
        body = await read_data(reader, limit)
        await feeder
        return body, await reader.read()

    return asyncio.run(run())


@pytest.mark.parametrize("pieces", [1, 2, 3, 7, 50])
@pytest.mark.parametrize(
    ("wire", "body"),
    [
        (b".\r\n", b""),  # an empty message
        (b"\r\n.\r\n", b"\r\n"),  # one empty line
        (b"a\r\n.\r\n", b"a\r\n"),
        (b"..\r\n.\r\n", b".\r\n"),  # a stuffed dot alone on a line
        (b".x\r\n.\r\n", b"x\r\n"),
        (b"line one.\r\nline two.\r\n..three\r\n.\r\n", b"line one.\r\nline two.\r\n.three\r\n"),
        (b"no\n.\r\nend\r\n.\r\n", b"no\n.\r\nend\r\n"),  # a bare LF before the dot ends nothing
        (b"a\r\n\r\n.\r\n", b"a\r\n\r\n"),
        (b"a\r.\r\n.\r\n", b"a\r.\r\n"),
    ],
)
def test_the_end_is_found_and_nothing_after_it_is_read(wire: bytes, body: bytes, pieces: int) -> None:
    assert read(wire + NEXT, pieces=pieces) == (body, NEXT)


def test_a_message_longer_than_the_read_buffer() -> None:
    lines = b"".join(f"{n}.\r\n.{n}\r\n".encode() for n in range(5000))
    body, rest = read(lines + b".\r\n" + NEXT, pieces=40, buffer=1000)
    assert body == lines.replace(b"\r\n.", b"\r\n") and rest == NEXT


def test_over_the_limit_is_read_to_its_end_and_refused() -> None:
    assert read(b"x" * 100 + b"\r\n.\r\n" + NEXT, pieces=5, limit=50) == (None, NEXT)
    assert read(b"x" * 48 + b"\r\n.\r\n", limit=50)[0] == b"x" * 48 + b"\r\n"
