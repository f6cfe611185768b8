"""JSON log lines carry the ids of the mail they are about (issue 14): one lead's whole story,
from the SMTP store to the autoresponse handed to the relay, is found by its ids alone."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from lms.logs import make_handler
from models.log_context import mail_log_context
from tests.support.mails import enquiry
from tests.support.services import wait_until
from tests.support.stack import Stack


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_one_leads_story_is_grepped_by_its_ids(
    sqlite_url: str, tmp_path: Path, json_log: io.StringIO
) -> None:
    # The SMTP intake stores (on its committer thread); ingest and sending run here, one by one.
    stack = Stack(sqlite_url, relay_url=f"maildir://{tmp_path / 'outbox'}", worker_threads=None)
    try:
        stack.send(enquiry())
        [inbound] = wait_until(stack.inbound, what="the stored mail")
        stack.runtime.ingest(inbound.id)
        [lead] = stack.leads()
        outbound = [row.id for row in stack.outbound()]
        assert sorted(row.kind for row in stack.outbound()) == ["autoresponse", "forward", "notification"]
        assert stack.runtime.send(outbound) == dict.fromkeys(outbound, "sent")
    finally:
        stack.close()
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]

    def story(**ids: object) -> list[str]:
        return [line["message"] for line in lines if ids.items() <= line.items()]

    assert f"stored inbound {inbound.id} via smtp" in story(inbound_id=inbound.id, dealer="muster")[0]
    [ingested] = story(inbound_id=inbound.id, lead_id=lead.id, dealer="muster")
    assert ingested.startswith(f"inbound {inbound.id}: processed, lead(s) {lead.id}, outbound ")
    sent = story(lead_id=lead.id, dealer="muster")
    for outbound_id in outbound:  # the answer, the forward, the notification: each by its own id
        assert story(outbound_id=outbound_id, lead_id=lead.id) == [f"outbound {outbound_id}: sent"]
    assert len(sent) == 1 + len(outbound)


def test_a_line_about_another_mail_names_that_one_and_text_lines_show_the_ids_briefly() -> None:
    stream = io.StringIO()
    handler = make_handler("text", stream)
    log = logging.getLogger("tests.mail_logs")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with mail_log_context(dealer="muster", inbound_id=7):
            log.info("handling")
            log.info("a reply to", extra={"lead_id": 3, "inbound_id": 5})
        log.info("outside")
    finally:
        log.removeHandler(handler)
    first, second, third = stream.getvalue().splitlines()
    assert first.endswith("handling [dealer=muster in=7]")
    assert second.endswith("a reply to [dealer=muster in=5 lead=3]")
    assert third.endswith("outside")
