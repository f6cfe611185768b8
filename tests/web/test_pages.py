"""The pages and their actions over HTTP: each action recorded with who did it, refused ones
explained; completion reasons; the unassigned queue; operations; the mail shown safely."""

from __future__ import annotations

import re

from sqlalchemy import select

from intake.store import store_message
from models.config_apply import apply_config
from models.dealer_config import load_config_file
from models.tables import InboundMessage, Lead, LeadActivity, OutboundMessage
from tests.support.mails import html_mail, with_attachment
from tests.web.conftest import WEB_CONFIG, WebStack, post_form


def timeline(web: WebStack, lead_id: int) -> list[tuple[str, str]]:
    with web.db.session() as session:
        return [
            (a.kind, a.text)
            for a in session.scalars(
                select(LeadActivity).where(LeadActivity.lead_id == lead_id).order_by(LeadActivity.id)
            )
        ]


def test_lead_actions_from_the_page_are_recorded_with_who_did_them(web: WebStack) -> None:
    lead_id = web.lead(subject="Probefahrt Golf", sender="Erika Mustermann <erika@example.org>")
    anna = web.sign_in("muster", "anna")
    page = anna.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    assert "Ben Schulz (abwesend bis 31.12.2099)" in page.text  # absences shown when reassigning
    assert "Europe/Berlin" in page.text and "Probefahrt Golf" in page.text
    path = f"/leads/{lead_id}"
    assert (
        post_form(anna, f"{path}/note", {"text": "Rief zurück, will Samstag kommen"}, page=path).status_code
        == 303
    )
    assert post_form(anna, f"{path}/due", {"when": "2026-12-05 10:00"}, page=path).status_code == 303
    assert post_form(anna, f"{path}/due", {"when_local": "2026-12-06T11:30"}, page=path).status_code == 303
    refused = post_form(anna, f"{path}/due", {"when": "someday"}, page=path)
    assert refused.status_code == 422 and "is no date" in refused.text
    preview = post_form(anna, f"{path}/preview", {"body": "Gern am Samstag <b>10 Uhr</b>."}, page=path)
    assert preview.status_code == 200 and "Re: Probefahrt Golf" in preview.text
    assert "10 Uhr" in preview.text and "<b>10 Uhr</b>" not in preview.text  # escaped, framed
    with web.db.session() as session:
        assert session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "reply")) is None
    assert post_form(anna, f"{path}/reply", {"body": "Gern am Samstag."}, page=path).status_code == 303
    assert post_form(anna, f"{path}/assign", {"user": "max"}, page=path).status_code == 303
    assert post_form(anna, f"{path}/complete", {"reason": ""}, page=path).status_code == 404  # max's now
    olga = web.sign_in("muster", "olga")
    assert post_form(olga, f"{path}/complete", {"reason": ""}, page=path).status_code == 422
    assert post_form(olga, f"{path}/complete", {"reason": "nonsense"}, page=path).status_code == 422
    assert post_form(olga, f"{path}/complete", {"reason": "sold"}, page=path).status_code == 303
    assert "Fahrzeug verkauft" in olga.get(path).text  # the system reason in the reader's language
    assert post_form(olga, f"{path}/reopen", {}, page=path).status_code == 303
    assert post_form(olga, f"{path}/pool", {}, page=path).status_code == 303
    actions = ("note", "due_changed", "reply", "assigned", "completed", "reopened")
    kinds = [kind for kind, text in timeline(web, lead_id) if kind in actions and "by test" not in text]
    assert kinds[-8:] == [
        "note",
        "due_changed",
        "due_changed",
        "reply",
        "assigned",
        "completed",
        "reopened",
        "assigned",
    ]
    texts = "\n".join(text for _, text in timeline(web, lead_id))
    for expected in (
        "anna: Rief zurück",
        "by anna (resubmission)",
        "anna answered erika@example.org",
        "Reassigned from anna to max by anna",
        "Completed by olga: Vehicle sold",
        "Reopened by olga",
        "Moved from max to the pool by olga",
    ):
        assert expected in texts
    with web.db.session() as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None and lead.status == "open" and lead.editor_id is None
        reply = session.scalar(select(OutboundMessage).where(OutboundMessage.kind == "reply"))
        assert reply is not None and reply.recipient == "erika@example.org" and reply.state == "queued"


def test_completion_reasons_renamed_hidden_and_added_by_an_admin(web: WebStack) -> None:
    done_before = web.lead()
    olga = web.sign_in("muster", "olga")
    page = "/admin/reasons"
    assert post_form(olga, f"/leads/{done_before}/complete", {"reason": "spam"}, page=page).status_code == 303
    assert (
        post_form(
            olga, "/admin/reasons/rename", {"code": "sold", "label": "Verkauft!"}, page=page
        ).status_code
        == 303
    )
    assert post_form(olga, "/admin/reasons/hide", {"code": "spam"}, page=page).status_code == 303
    added = post_form(
        olga,
        "/admin/reasons/add",
        {"code": "financing_refused", "label": "Finanzierung abgelehnt"},
        page=page,
    )
    assert added.status_code == 303
    assert (
        post_form(olga, "/admin/reasons/add", {"code": "sold", "label": "again"}, page=page).status_code
        == 422
    )
    assert (
        post_form(olga, "/admin/reasons/add", {"code": "Bad Code", "label": "x"}, page=page).status_code
        == 422
    )
    anna = web.sign_in("muster", "anna")
    lead_id = web.lead()
    offered = anna.get(f"/leads/{lead_id}").text
    assert "Verkauft!" in offered and "Finanzierung abgelehnt" in offered and "Spam oder Test" not in offered
    path = f"/leads/{lead_id}"
    assert post_form(anna, f"{path}/complete", {"reason": "spam"}, page=path).status_code == 422  # hidden
    assert "Spam oder Test" in olga.get(f"/leads/{done_before}").text  # still readable on the old lead
    # Another dealer is untouched.
    otto = web.sign_in("other", "otto")
    assert "Verkauft!" not in otto.get(page).text
    # Applying the dealer file (which names no reasons) leaves the page's reasons alone.
    with web.db.session() as session:
        apply_config(session, load_config_file(WEB_CONFIG), now=web.clock())
    olga = web.sign_in("muster", "olga")
    offered = olga.get(f"/leads/{web.lead()}").text
    assert "Verkauft!" in offered and "Finanzierung abgelehnt" in offered
    assert post_form(olga, f"{path}/complete", {"reason": "financing_refused"}, page=path).status_code == 303


def test_unassigned_mails_viewed_recognised_made_a_lead_and_deleted(web_sqlite: WebStack) -> None:
    web = web_sqlite
    rows = []
    for subject in ("Rückfrage ohne Absender", "Noch eine", "Dritte"):
        [stored] = store_message(
            web.db,
            html_mail("<p>Bitte rufen Sie mich an</p>", sender="undisclosed-recipients:;", subject=subject),
            envelope_from="",
            recipients=["muster@leads.example.com"],
            via="smtp",
            now=web.clock(),
        )
        web.stack.runtime.ingest(stored.id)
        rows.append(stored.id)
    with web.db.session() as session:
        assert [session.get(InboundMessage, i).state for i in rows] == ["unrecognised"] * 3  # type: ignore[union-attr]
    assert web.sign_in("muster", "anna").get("/unassigned").status_code == 404  # sellers don't
    assert web.sign_in("other", "otto").get(f"/unassigned/{rows[0]}").status_code == 404  # other dealer
    max_ = web.sign_in("muster", "max")
    listed = max_.get("/unassigned").text
    assert "Rückfrage ohne Absender" in listed and "Dritte" in listed
    shown = max_.get(f"/unassigned/{rows[0]}")
    assert shown.status_code == 200 and "Bitte rufen Sie mich an" in shown.text
    assert max_.get(f"/unassigned/{rows[0]}/original.html").status_code == 200
    page = f"/unassigned/{rows[0]}"
    refused = post_form(max_, f"{page}/create-lead", {"name": "Frau Rück"}, page=page)
    assert refused.status_code == 422 and "give an email address or a phone number" in refused.text
    created = post_form(
        max_,
        f"{page}/create-lead",
        {"name": "Frau Rück", "phone": "0171 5555555", "type": "callback"},
        page=page,
    )
    assert created.status_code == 303 and created.headers["location"].startswith("/leads/")
    assert "Frau Rück" in max_.get(created.headers["location"]).text
    page = f"/unassigned/{rows[1]}"
    assert post_form(max_, f"{page}/delete", {}, page=page).headers["location"] == "/unassigned?done=delete"
    page = f"/unassigned/{rows[2]}"
    assert (
        post_form(max_, f"{page}/reparse", {}, page=page).headers["location"]
        == "/unassigned?done=reparse-unrecognised"
    )
    with web.db.session() as session:
        states = [session.get(InboundMessage, i) for i in rows]
        assert [r.state for r in states] == ["processed", "deleted", "unrecognised"]  # type: ignore[union-attr]
        assert all(r.raw for r in states)  # type: ignore[union-attr]
    assert "Noch eine" not in max_.get("/unassigned").text
    assert max_.get(f"/unassigned/{rows[1]}").status_code == 404


def test_operations_page_shows_dead_mail_and_retries_it(web_sqlite: WebStack) -> None:
    web = web_sqlite
    web.lead()
    with web.db.session() as session:
        row = session.scalars(select(OutboundMessage).order_by(OutboundMessage.id)).first()
        assert row is not None
        row.state, row.last_error, row.attempts = "dead", "421 4.7.0 relay said no", 8
        dead_id = row.id
    assert web.sign_in("muster", "max").get("/admin/ops").status_code == 404
    olga = web.sign_in("muster", "olga")
    page = olga.get("/admin/ops").text
    assert "421 4.7.0 relay said no" in page
    assert web.sign_in("other", "otto").get("/admin/ops").text.count("relay said no") == 0
    retried = post_form(olga, "/admin/ops/retry", {"kind": "outbound", "id": str(dead_id)}, page="/admin/ops")
    assert retried.headers["location"] == "/admin/ops?done=0-1"
    with web.db.session() as session:
        assert session.get(OutboundMessage, dead_id).state == "queued"  # type: ignore[union-attr]
    assert "relay said no" not in olga.get("/admin/ops").text


def test_the_original_mail_is_sanitised_framed_without_remote_content_and_attachments_download(
    web_sqlite: WebStack,
) -> None:
    web = web_sqlite
    lead_id = web.lead(
        sender="Erika <erika@example.org>",
        body="Bitte Angebot.",
    )
    with web.db.session() as session:  # give the lead an HTML original with an attachment too
        raw = with_attachment(
            "Anfrage",
            b"<svg onload=alert(1)>",
            filename="bild.svg",
            maintype="image",
            subtype="svg+xml",
            sender="erika2@example.org",
        )
    [stored] = store_message(
        web.db, raw, envelope_from="", recipients=["muster@leads.example.com"], via="smtp", now=web.clock()
    )
    web.stack.runtime.ingest(stored.id)
    html = html_mail(
        '<p>Hallo<img src="https://tracker.example/p.gif"><script>alert(1)</script>'
        '<a href="javascript:alert(2)" onclick="x()">Link</a></p>',
        sender="Html <html@example.org>",
    )
    [html_row] = store_message(
        web.db, html, envelope_from="", recipients=["muster@leads.example.com"], via="smtp", now=web.clock()
    )
    web.stack.runtime.ingest(html_row.id)
    with web.db.session() as session:
        html_lead = session.scalars(select(Lead).where(Lead.inbound_id == html_row.id)).unique().one().id
        att_lead = session.scalars(select(Lead).where(Lead.inbound_id == stored.id)).unique().one().id
    olga = web.sign_in("muster", "olga")
    framed = olga.get(f"/leads/{html_lead}/original.html")
    csp = framed.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "img-src data:" in csp and "sandbox" in csp
    assert "<script" not in framed.text and "javascript:" not in framed.text and "onclick" not in framed.text
    assert "Hallo" in framed.text
    assert (
        f'sandbox referrerpolicy="no-referrer" src="/leads/{html_lead}/original.html"'
        in olga.get(f"/leads/{html_lead}").text
    )
    download = olga.get(f"/leads/{att_lead}/attachments/0")
    assert download.status_code == 200 and download.content == b"<svg onload=alert(1)>"
    assert download.headers["content-type"] == "application/octet-stream"  # never rendered by us
    assert download.headers["content-disposition"].startswith('attachment; filename="bild.svg"')
    assert olga.get(f"/leads/{att_lead}/attachments/7").status_code == 404
    assert olga.get(f"/leads/{lead_id}/attachments/0").status_code == 404


def test_language_per_person_defaults_to_the_dealer(web_sqlite: WebStack) -> None:
    web = web_sqlite
    anna = web.sign_in("muster", "anna")
    assert "Meine Leads" in anna.get("/leads").text  # the dealer writes German
    assert post_form(anna, "/settings/language", {"language": "en"}, page="/settings").status_code == 303
    page = anna.get("/leads").text
    assert "My leads" in page and "Meine Leads" not in page
    otto = web.sign_in("other", "otto")
    assert "My leads" in otto.get("/leads").text
    assert post_form(otto, "/settings/language", {"language": "xx"}, page="/settings").status_code == 422


def test_the_list_answers_htmx_with_a_fragment_polls_cheaply_and_static_files_are_immutable(
    web_sqlite: WebStack,
) -> None:
    web = web_sqlite
    web.lead(subject="Erster Lead")
    anna = web.sign_in("muster", "anna")
    page = anna.get("/leads")
    assert page.text.startswith("<!doctype html>") and page.headers["cache-control"] == "no-store"
    assert "HX-Request" in page.headers["vary"]
    fragment = anna.get("/leads", headers={"HX-Request": "true", "HX-Target": "results"})
    assert '<div id="results"' in fragment.text and "<html" not in fragment.text
    assert 'hx-swap-oob="true"' in fragment.text  # the view counts come along
    stamp = re.search(r'data-stamp="([0-9a-f]+)"', fragment.text).group(1)  # type: ignore[union-attr]
    poll = {"HX-Request": "true", "HX-Target": "results"}
    assert anna.get(f"/leads?view=all&stamp={stamp}", headers=poll).status_code == 204
    web.lead(subject="Zweiter Lead")
    changed = anna.get(f"/leads?view=all&stamp={stamp}", headers=poll)
    assert changed.status_code == 200 and "Zweiter Lead" in changed.text
    script = re.search(r'src="(/static/app\.[0-9a-f]{12}\.js)"', page.text).group(1)  # type: ignore[union-attr]
    served = web.client().get(script)  # no session needed for static files
    assert served.status_code == 200 and "immutable" in served.headers["cache-control"]
    assert web.client().get("/static/app.js").status_code == 404  # only under its hashed name
    htmx = re.search(r'src="(/static/vendor/htmx-2\.0\.11\.min\.[0-9a-f]{12}\.js)"', page.text)
    assert htmx is not None and "htmx" in web.client().get(htmx.group(1)).text
