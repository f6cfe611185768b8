"""The audit log of the pane (data protection): who read or changed which lead is recorded,
and an admin sees it on the lead; a seller does not."""

from __future__ import annotations

from sqlalchemy import select

from models.privacy_tables import AuditEntry
from tests.web.conftest import WebStack, post_form


def test_reading_and_changing_a_lead_are_recorded_and_shown_to_admins_only(web: WebStack) -> None:
    lead_id = web.lead(editor="anna")
    anna = web.sign_in("muster", "anna")
    page = anna.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    assert "Access log" not in page.text and "Zugriffe" not in page.text  # not for sellers
    noted = post_form(anna, f"/leads/{lead_id}/note", {"text": "Ruft morgen an"}, page=f"/leads/{lead_id}")
    assert noted.status_code == 303
    assert anna.get(f"/leads/{lead_id}/original.html").status_code == 200
    with web.db.read() as session:
        entries = [
            (e.actor, e.action, e.detail)
            for e in session.scalars(
                select(AuditEntry).where(AuditEntry.lead_id == lead_id).order_by(AuditEntry.id)
            )
        ]
    assert entries == [
        ("anna", "read", ""),
        ("anna", "read", ""),  # the page the form was posted from
        ("anna", "change", "note"),
        ("anna", "download", "the original mail"),
    ]
    olga = web.sign_in("muster", "olga")
    shown = olga.get(f"/leads/{lead_id}").text
    assert "Zugriffe" in shown or "Access log" in shown
    assert shown.count("anna") >= 4 and ("geändert" in shown or "changed" in shown)
