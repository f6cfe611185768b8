"""A request that would hang (a frozen database behind a page, a client that never finishes
its body) ends with 503 at the pane's deadline instead of holding its connection forever."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from web.app import Deadline


async def stuck(request: Request) -> PlainTextResponse:
    await asyncio.sleep(60)  # stands for a page waiting on a frozen database
    return PlainTextResponse("never")


async def quick(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@pytest.mark.anyio
async def test_a_hung_request_gets_503_at_the_deadline_and_others_are_untouched() -> None:
    app = Deadline(Starlette(routes=[Route("/stuck", stuck), Route("/quick", quick)]), seconds=0.5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pane") as client:
        started = time.monotonic()
        hung = await client.get("/stuck")
        assert hung.status_code == 503 and time.monotonic() - started < 5
        assert (await client.get("/quick")).text == "ok"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
