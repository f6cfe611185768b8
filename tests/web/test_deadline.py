"""A request that would hang (a frozen database behind a page, a client that never finishes
its body) ends with 503 at the pane's deadline instead of holding its connection forever."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
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


async def hung_then_quick() -> tuple[int, float, str]:
    app = Deadline(Starlette(routes=[Route("/stuck", stuck), Route("/quick", quick)]), seconds=0.5)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pane") as client:
        started = time.monotonic()
        hung = await client.get("/stuck")
        waited = time.monotonic() - started
        return hung.status_code, waited, (await client.get("/quick")).text


def test_a_hung_request_gets_503_at_the_deadline_and_others_are_untouched() -> None:
    # A thread of its own: Playwright's sync API keeps an event loop running on the main
    # thread for the whole session once a browser test has run.
    with ThreadPoolExecutor(1) as pool:
        status, waited, quick_text = pool.submit(asyncio.run, hung_then_quick()).result(timeout=30)
    assert status == 503 and waited < 5
    assert quick_text == "ok"
