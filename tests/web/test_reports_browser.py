"""The reports page in a real browser (headless Chromium through Playwright) on PostgreSQL, on a
controllable clock: it opens on the last 30 days; changing the period swaps the figures, the
charts and the tables (htmx, no reload), and the address keeps the period."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from playwright.sync_api import expect

from tests.support.clock import FakeClock
from tests.support.services import PG_ADMIN_DSN, require, unique
from tests.support.stack import ROOT
from tests.web.conftest import WebStack, browser_sign_in
from workers import lead_actions as actions

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday, 10:00 in Berlin
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def reporting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    """Seven leads: four 40 days ago (two answered), three in the last 30 days (one answered)."""
    require("PostgreSQL", "127.0.0.1", 5432)
    name = unique("lms_reports")
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    clock = FakeClock(NOW - timedelta(days=40))
    web = WebStack(
        f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
        relay_url=f"maildir://{tmp_path_factory.mktemp('outbox')}",
        clock=clock,
    )
    plan = [
        (-40, "anna", "Probefahrt Golf", 25),
        (-40, "carl", "Finanzierung Passat", 90),
        (-39, "anna", "Leasing Tiguan", None),
        (-38, None, "Anfrage Polo", None),
        (-10, "anna", "Probefahrt Golf", 5),
        (-3, "carl", "Probefahrt Polo", None),
        (-1, None, "Anfrage Golf", None),
    ]
    for days, editor, subject, answer_after in plan:
        clock.advance(NOW + timedelta(days=days) - clock())
        lead_id = web.lead(editor=editor, subject=subject)
        if answer_after is not None:
            clock.advance(timedelta(minutes=answer_after))
            with web.db.session() as session:
                lead = actions.locked_lead(session, lead_id)
                by = actions.acting_user(session, lead, None)
                actions.reply(session, lead, "Gern!", by=by, now=clock())
    clock.advance(NOW - clock())
    yield web
    web.close()
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_changing_the_period_changes_the_charts_and_the_tables(
    browser: Any, reporting: WebStack, tmp_path: Path
) -> None:
    page = browser_sign_in(browser, reporting, "muster", "olga", locale="de-DE", timezone_id="Europe/Berlin")
    page.get_by_role("link", name="Berichte").click()
    page.wait_for_url(f"{reporting.url}/reports")
    expect(page.locator("#kpi-leads")).to_have_text("3")  # the last 30 days
    expect(page.locator("#kpi-answered")).to_have_text("33 %")
    day_bars = page.locator("svg.per-day rect.bar")
    expect(day_bars).to_have_count(3)
    expect(page.locator("svg.shares rect.bar")).to_have_count(3)  # anna, carl, the pool
    weeks = page.locator("section.report-table").nth(3).locator("tbody tr")
    expect(weeks).to_have_count(2)  # W47 and W48
    expect(page.locator(".period-line")).to_contain_text("Vergleich mit")
    page.evaluate("window.__sameDocument = true")

    page.fill("input[name=from]", (NOW - timedelta(days=45)).date().isoformat())
    expect(page.locator("#kpi-leads")).to_have_text("7")  # htmx swapped the report
    expect(page.locator("#kpi-answered")).to_have_text("43 %")
    expect(day_bars).to_have_count(6)  # two leads on one day: one bar of two
    expect(weeks).to_have_count(3)  # and W43
    expect(page.locator("svg.histogram rect.bar[data-value='4']")).to_have_count(1)  # never answered
    assert page.evaluate("window.__sameDocument") is True
    assert "from=" in page.url  # a reload or a bookmark keeps the period

    write = bool(os.environ.get("LMS_SCREENSHOTS")) or not (DOCS / "report.png").exists()
    target = DOCS if write else tmp_path
    target.mkdir(exist_ok=True)
    page.screenshot(path=str(target / "report.png"), full_page=True)
    assert (target / "report.png").stat().st_size > 10_000

    page.emulate_media(media="print")  # printed (or saved as PDF): no navigation, no picker
    expect(page.locator("header.top")).to_be_hidden()
    expect(page.locator("form#period")).to_be_hidden()
    expect(page.locator("svg.histogram")).to_be_visible()
    assert page.pdf(format="A4")[:5] == b"%PDF-"
    page.emulate_media(media="screen")

    page.get_by_role("link", name="Letzte 7 Tage").click()
    expect(page.locator("#kpi-leads")).to_have_text("2")
    expect(day_bars).to_have_count(2)
    page.reload()
    expect(page.locator("#kpi-leads")).to_have_text("2")  # the address held the period
    page.context.close()


def test_a_seller_has_no_reports(browser: Any, reporting: WebStack) -> None:
    page = browser_sign_in(browser, reporting, "muster", "anna")
    expect(page.get_by_role("link", name="Berichte")).to_have_count(0)
    response = page.goto(f"{reporting.url}/reports")
    assert response is not None and response.status == 404
    page.context.close()
