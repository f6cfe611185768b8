"""The reports page and ``/api/report`` over HTTP: an admin sees the dealer, a supervisor their team
and the pool, a seller no reports at all, another dealer nothing of ours; a bad period is said
and the default shown; the weekly summary is switched off and on in the settings."""

from __future__ import annotations

import re

from sqlalchemy import select

from models.report_tables import ReportPreference
from models.tables import User
from models.webhook_tables import WebhookDelivery
from tests.web.conftest import WebStack, post_form
from workers import lead_actions as actions


def _leads(web: WebStack) -> dict[str, int]:
    made = {
        "anna": web.lead(editor="anna", subject="Probefahrt Golf"),
        "anna2": web.lead(editor="anna", subject="Finanzierung Passat"),
        "carl": web.lead(editor="carl", subject="Leasing Tiguan"),
        "pool": web.lead(editor=None, subject="Anfrage Polo"),
    }
    with web.db.session() as session:
        lead = actions.locked_lead(session, made["anna"])
        actions.reply(session, lead, "Gern!", by=actions.acting_user(session, lead, None), now=web.clock())
    return made


def test_admins_see_the_dealer_supervisors_their_team_sellers_nothing(web: WebStack) -> None:
    _leads(web)
    olga = web.sign_in("muster", "olga")
    page = olga.get("/reports")
    assert page.status_code == 200
    assert "Reaktionszeiten" in page.text and 'href="/reports"' in page.text
    assert re.search(r'id="kpi-leads">4<', page.text)
    assert re.search(r'id="kpi-answered">25 %<', page.text)
    assert page.text.count('<svg class="chart') == 3 and "<script" not in page.text.split("</head>")[1]
    for name in ("Anna Berger", "Carl Clausen", "Pool"):
        assert name in page.text
    data = olga.get("/api/report").json()
    assert data["totals"]["leads"] == 4 and data["totals"]["answered"] == 1
    assert {r["seller"] for r in data["by_seller"]} == {"anna", "carl", None}

    lisa = web.sign_in("muster", "lisa")  # carl's supervisor
    team = lisa.get("/api/report").json()
    assert team["totals"]["leads"] == 2 and {r["seller"] for r in team["by_seller"]} == {"carl", None}
    assert "Ihr Team und der Pool" in lisa.get("/reports").text

    anna = web.sign_in("muster", "anna")
    assert anna.get("/reports").status_code == 404 and anna.get("/api/report").status_code == 404
    assert 'href="/reports"' not in anna.get("/leads").text

    otto = web.sign_in("other", "otto")  # another dealer's admin
    assert otto.get("/api/report").json()["totals"]["leads"] == 0


def test_the_period_in_the_address_a_fragment_for_htmx_and_a_bad_period_said(web: WebStack) -> None:
    _leads(web)
    olga = web.sign_in("muster", "olga")
    today = web.clock().date()
    empty = olga.get("/reports", params={"from": "2020-01-01", "to": "2020-01-31"})
    assert re.search(r'id="kpi-leads">0<', empty.text) and "Keine Leads in diesem Zeitraum." in empty.text
    assert 'value="2020-01-01"' in empty.text
    fragment = olga.get(
        "/reports",
        params={"from": "2020-01-01", "to": today.isoformat()},
        headers={"HX-Request": "true", "HX-Target": "report"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert re.search(r'id="kpi-leads">4<', fragment.text)
    bad = olga.get("/reports", params={"from": "2026-13-01", "to": "x"})
    assert bad.status_code == 200 and "Der Zeitraum ist ungültig" in bad.text
    assert olga.get("/api/report", params={"from": "2026-11-30", "to": "2026-11-01"}).status_code == 400


def test_supervisors_switch_the_weekly_summary_off_and_on(web: WebStack) -> None:
    max_ = web.sign_in("muster", "max")
    page = max_.get("/settings")
    assert "Wochenbericht per E-Mail" in page.text
    done = post_form(max_, "/settings/weekly_summary", {"weekly_summary": "off"}, page="/settings")
    assert done.status_code == 303
    with web.db.session() as session:
        me = session.scalars(select(User).where(User.username == "max")).one()
        row = session.get(ReportPreference, me.id)
        assert row is not None and row.weekly_summary is False
    assert '<option value="off" selected>' in max_.get("/settings").text
    post_form(max_, "/settings/weekly_summary", {"weekly_summary": "on"}, page="/settings")
    assert '<option value="on" selected>' in max_.get("/settings").text
    anna = web.sign_in("muster", "anna")  # sellers get no summary: no choice shown
    assert "Wochenbericht" not in anna.get("/settings").text


def test_dead_webhooks_on_the_operations_page_and_their_retry(web: WebStack) -> None:
    now = web.clock()
    with web.db.session() as session:
        session.add_all(
            WebhookDelivery(
                event_id=f"evt_test{n}",
                dealer_id=dealer,
                subscription="crm",
                event="lead.created",
                lead_id=None,
                content_type="application/json",
                body=b"{}",
                state="dead",
                attempts=12,
                last_error="the receiver answered HTTP 500",
                created_at=now,
                updated_at=now,
            )
            for n, dealer in enumerate(("muster", "other"))
        )
    olga = web.sign_in("muster", "olga")
    page = olga.get("/admin/ops")
    assert "Tote Webhook-Zustellungen" in page.text and "the receiver answered HTTP 500" in page.text
    with web.db.session() as session:
        ours, theirs = (
            session.scalars(select(WebhookDelivery).where(WebhookDelivery.dealer_id == d)).one()
            for d in ("muster", "other")
        )
    refused = post_form(
        olga, "/admin/ops/retry", {"kind": "webhook", "id": str(theirs.id)}, page="/admin/ops"
    )
    assert refused.status_code == 404  # another dealer's
    done = post_form(olga, "/admin/ops/retry", {"kind": "webhook", "id": str(ours.id)}, page="/admin/ops")
    assert done.status_code == 303 and done.headers["location"] == "/admin/ops?done=0-0-1"
    with web.db.session() as session:
        assert session.get(WebhookDelivery, ours.id).state == "queued"  # type: ignore[union-attr]
        assert session.get(WebhookDelivery, theirs.id).state == "dead"  # type: ignore[union-attr]
    assert "Webhooks: 1" in olga.get("/admin/ops?done=0-0-1").text
