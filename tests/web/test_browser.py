"""The pane in a real browser (headless Chromium through Playwright), on the whole product:
a lead mailed over SMTP appears in the list by itself, is searched, filtered, opened,
reassigned, answered (the answer reaches a real SMTP sink) and completed with a renamed reason;
URLs typed by hand show nothing outside one's scope; CSRF, sign-out and stored XSS hold."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from models.tables import Lead, LeadActivity
from tests.support.mails import enquiry, html_mail
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import ROOT
from tests.web.conftest import WebStack, browser_sign_in

pytestmark = pytest.mark.postgres
DOCS = ROOT / "docs"


def mailed_lead(web: WebStack, raw: bytes, sender: str) -> int:
    """Send ``raw`` to our SMTP intake and wait for the workers to make it a lead."""
    web.stack.send(raw, sender=sender)

    def made() -> int | None:
        with web.db.session() as session:
            found = session.scalars(select(Lead).order_by(Lead.id.desc())).first()
            return found.id if found is not None and found.contact.email == sender else None

    return int(wait_until(made, what=f"the lead from {sender}"))  # type: ignore[arg-type]


def test_screenshots_of_the_list_and_a_lead(
    browser: Any, live: tuple[WebStack, SmtpSink], tmp_path: Path
) -> None:
    """The pictures in the README, taken first in the module (only these leads exist yet); written
    to docs/ when missing or when LMS_SCREENSHOTS is set, so an ordinary run leaves the tree clean."""
    web, _sink = live
    samples = [
        ("Julia Weber <julia.weber@example.org>", "Anfrage Probefahrt VW Golf 8 GTI", "ben"),
        ("Thomas Klein <t.klein@example.net>", "Finanzierung BMW 320d Touring", "ben"),
        ("Sabine Wolf <sabine.wolf@example.com>", "Inzahlungnahme meines Audi A4", None),
        ("Murat Yilmaz <murat@example.org>", "Leasingangebot Skoda Enyaq", "max"),
    ]
    last = 0
    for sender, subject, editor in samples:
        last = web.lead(editor=editor, subject=subject, sender=sender, body=f"{subject}. Bitte um Rückruf.")
    max_ = browser_sign_in(browser, web, "muster", "max", locale="de-DE", timezone_id="Europe/Berlin")
    expect(max_.locator("tr.lead-row").first).to_be_visible()
    write = bool(os.environ.get("LMS_SCREENSHOTS")) or not (DOCS / "leads-list.png").exists()
    target = DOCS if write else tmp_path
    target.mkdir(exist_ok=True)
    max_.screenshot(path=str(target / "leads-list.png"))
    max_.goto(f"{web.url}/leads/{last}")
    expect(max_.locator("h1")).to_contain_text("Murat Yilmaz")
    max_.screenshot(path=str(target / "lead.png"), full_page=True)
    assert (target / "leads-list.png").stat().st_size > 10_000 and (
        target / "lead.png"
    ).stat().st_size > 10_000
    max_.context.close()


def test_a_seller_works_a_lead_from_arrival_to_completion(
    browser: Any, live: tuple[WebStack, SmtpSink]
) -> None:
    web, sink = live
    olga = browser_sign_in(browser, web, "muster", "olga")
    olga.goto(f"{web.url}/admin/reasons")
    row = olga.locator("tr[data-code=sold]")
    row.locator("input[name=label]").fill("Verkauft nach Probefahrt")
    row.get_by_role("button", name="Umbenennen").click()
    expect(olga.locator("tr[data-code=sold] input[name=label]")).to_have_value("Verkauft nach Probefahrt")

    anna = browser_sign_in(browser, web, "muster", "anna")
    anna.select_option("select[name=type]", "test_drive")  # a filter set before the lead arrives
    expect(anna.locator("#results")).to_contain_text("Keine Leads gefunden.")
    anna.evaluate("window.__sameDocument = true")
    lead_id = mailed_lead(
        web,
        enquiry(
            sender="Greta Gruber <greta@example.org>",
            subject="Probefahrt Opel Zafira",
            body="Guten Tag, ich möchte den Zafira Probe fahren. Greta Gruber, 0171 2345678",
        ),
        "greta@example.org",
    )
    row_link = anna.locator("tr.lead-row a.open", has_text="Greta Gruber")
    expect(row_link).to_be_visible(timeout=20_000)  # no reload: the list refreshed itself
    assert anna.evaluate("window.__sameDocument") is True
    assert anna.locator("select[name=type]").input_value() == "test_drive"  # the filter stayed
    mailed_lead(
        web, enquiry(sender="Hans Huber <hans@example.org>", subject="Probefahrt BMW"), "hans@example.org"
    )
    expect(anna.locator("tr.lead-row")).to_have_count(2, timeout=20_000)

    anna.keyboard.press("/")  # keyboard: / searches
    expect(anna.locator("#q")).to_be_focused()
    anna.keyboard.type("zafira")
    expect(anna.locator("tr.lead-row")).to_have_count(1)
    expect(anna.locator("tr.lead-row")).to_contain_text("Greta Gruber")
    assert "q=zafira" in anna.url  # a reload or a bookmark keeps the search
    anna.keyboard.press("Escape")
    anna.keyboard.press("?")
    expect(anna.locator("dialog#shortcuts")).to_be_visible()
    anna.keyboard.press("Escape")
    anna.keyboard.press("j")
    expect(anna.locator("tr.lead-row.selected")).to_contain_text("Greta Gruber")
    anna.keyboard.press("Enter")
    anna.wait_for_url(f"{web.url}/leads/{lead_id}")
    expect(anna.locator("h1")).to_contain_text("Greta Gruber")
    expect(anna.locator(".timeline")).to_contain_text("Eingegangen")

    anna.fill("#reply-body", "Guten Tag Frau Gruber,\nSamstag um 10 Uhr passt.")
    anna.get_by_role("button", name="Vorschau").click()
    preview = anna.frame_locator("#reply-preview iframe")
    expect(preview.locator("body")).to_contain_text("Samstag um 10 Uhr passt.")
    expect(anna.locator("#reply-preview")).to_contain_text("Re: Probefahrt Opel Zafira")
    anna.get_by_role("button", name="Senden").click()
    expect(anna.locator(".notice")).to_contain_text("greta@example.org")
    answered = wait_until(
        lambda: [m for m in sink.to("greta@example.org") if m.message["Subject"].startswith("Re:")],
        what="the reply at the SMTP sink",
    )
    message = answered[0].message  # type: ignore[index]
    assert message["Subject"] == "Re: Probefahrt Opel Zafira"  # the autoresponse went before
    assert "Samstag um 10 Uhr passt." in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]

    anna.select_option("select[name=user]", "max")
    anna.get_by_role("button", name="Neu zuweisen").click()
    anna.wait_for_url(f"{web.url}/leads?done=assign")  # max's now: out of her view, back to the list
    max_ = browser_sign_in(browser, web, "muster", "max")
    max_.goto(f"{web.url}/leads/{lead_id}")
    expect(max_.locator(".timeline")).to_contain_text("Reassigned from anna to max by anna")
    max_.select_option("select[name=reason]", label="Verkauft nach Probefahrt")
    max_.get_by_role("button", name="Abschließen").click()
    expect(max_.locator(".lead-head")).to_contain_text("Abgeschlossen: Verkauft nach Probefahrt")
    with web.db.session() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.status == "completed" and lead.completion_reason is not None
        assert lead.completion_reason.code == "sold"
    for page in (olga, anna, max_):
        page.context.close()


def test_typed_urls_outside_ones_scope_show_nothing(browser: Any, live: tuple[WebStack, SmtpSink]) -> None:
    web, _sink = live
    other_team = web.lead(editor="carl", subject="Carls Kunde", sender="Carla <carla@example.org>")
    other_dealer = web.lead(dealer="other", editor="otto", subject="Anders", sender="Ole <ole@example.org>")
    anna = browser_sign_in(browser, web, "muster", "anna")
    for lead_id in (other_team, other_dealer, 10**22):
        response = anna.goto(f"{web.url}/leads/{lead_id}")
        assert response is not None and response.status == 404
        expect(anna.locator("main")).to_contain_text("Nicht gefunden.")
        expect(anna.locator("main")).not_to_contain_text("Carls Kunde")
    response = anna.goto(f"{web.url}/api/leads/{other_dealer}")
    assert response is not None and response.status == 404
    anna.context.close()


def test_a_request_without_csrf_token_changes_nothing_and_sign_out_ends_the_cookie(
    browser: Any, live: tuple[WebStack, SmtpSink]
) -> None:
    web, _sink = live
    lead_id = web.lead(editor="anna", subject="CSRF-Test", sender="Cora <cora@example.org>")
    anna = browser_sign_in(browser, web, "muster", "anna")
    anna.goto(f"{web.url}/leads/{lead_id}")
    # A form another site could make the browser send: the cookie goes along, the token can't.
    status = anna.evaluate(
        """async (id) => (await fetch(`/leads/${id}/note`, {method: "POST",
             headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "text=forged"})).status""",
        lead_id,
    )
    assert status == 403
    with web.db.session() as session:
        notes = session.scalars(
            select(LeadActivity).where(LeadActivity.lead_id == lead_id, LeadActivity.kind == "note")
        ).all()
        assert notes == []
    cookies = anna.context.cookies()
    anna.get_by_role("button", name="Abmelden").click()
    anna.wait_for_url(f"{web.url}/login")
    thief = browser.new_context()
    thief.add_cookies(cookies)
    page = thief.new_page()
    page.goto(f"{web.url}/leads/{lead_id}")
    assert page.url.startswith(f"{web.url}/login")
    expect(page.locator("main")).not_to_contain_text("CSRF-Test")
    thief.close()
    anna.context.close()


def test_stored_xss_in_name_subject_and_html_body_does_not_run(
    browser: Any, live: tuple[WebStack, SmtpSink]
) -> None:
    web, _sink = live
    payload_name = '"<img src=x onerror=window.__xss=1>" <mallory@example.org>'
    raw = html_mail(
        "<p>Hallo</p><script>parent.__xss=3</script><img src=x onerror=parent.__xss=4>"
        '<a href="javascript:parent.__xss=5">klick</a><svg onload=parent.__xss=6></svg>',
        sender=payload_name,
        subject="<script>window.__xss=2</script>Probefahrt",
    )
    lead_id = mailed_lead(web, raw, "mallory@example.org")
    with web.db.session() as session:  # make sure olga sees it
        lead = session.get(Lead, lead_id)
        assert lead is not None and "<img" in (lead.contact.name or "")
    olga = browser_sign_in(browser, web, "muster", "olga")
    dialogs: list[str] = []
    olga.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    expect(olga.locator("tr.lead-row", has_text="<img src=x onerror=window.__xss=1>")).to_be_visible()
    olga.goto(f"{web.url}/leads/{lead_id}")
    expect(olga.locator(".lead-subject")).to_have_text("<script>window.__xss=2</script>Probefahrt")
    olga.locator("details summary").first.click()
    frame = olga.frame_locator("iframe.mail-html")
    expect(frame.locator("body")).to_contain_text("Hallo")
    frame.locator("a", has_text="klick").click()
    assert olga.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    olga.context.close()
