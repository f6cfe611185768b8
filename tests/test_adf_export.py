"""A lead as ADF/XML (``lms leads show ID --adf``, webhooks with ``format = "adf"``): what we write,
our own ADF reader (intake/parsing/adf.py, built for what real senders write) reads back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from intake.parsing.adf import parse_adf, parse_document
from lms.cli import main
from models.adf_export import lead_adf
from tests.support.speed import SpeedStack


def a_lead(**changes: Any) -> dict[str, Any]:
    lead = {
        "id": 41,
        "dealer": "muster",
        "type": "test_drive",
        "source": "mobile.de",
        "editor": "anna",
        "subject": "Probefahrt",
        "message": "Samstag wäre gut.",
        "created_at": "2026-11-30T09:00:00+00:00",
        "contact": {
            "id": 7,
            "name": "Erika Mustermann",
            "email": "erika@example.org",
            "phone": "+4917612345678",
        },
        "vehicle": {
            "make": "VW",
            "model": "Golf",
            "year": 2021,
            "status": "used",
            "vin": None,
            "price": 18900,
        },
        "trade_ins": [{"make": "Opel", "model": "Corsa", "year": 2012, "status": "used"}],
    }
    return {**lead, **changes}


@pytest.mark.parametrize(
    ("lead_type", "read_as"),
    [
        ("test_drive", "test_drive"),
        ("leasing", "leasing"),
        ("financing", "financing"),
        ("used_car", "used_car"),
    ],
)
def test_what_we_write_our_reader_reads_back(lead_type: str, read_as: str) -> None:
    xml = lead_adf(a_lead(type=lead_type), dealer_name="Autohaus Muster GmbH")
    assert xml.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<?adf version="1.0"?>\n<adf>')
    [enquiry] = parse_adf([xml]).enquiries
    assert enquiry.type == read_as
    assert enquiry.customer.name == "Erika Mustermann" and enquiry.customer.email == "erika@example.org"
    assert enquiry.customer.phones == ["+4917612345678"]
    vehicle = enquiry.vehicle
    assert (vehicle.make, vehicle.model, vehicle.year, vehicle.status, vehicle.price) == (
        "VW",
        "Golf",
        2021,
        "used",
        18900,
    )
    assert [(t.make, t.model, t.year) for t in enquiry.trade_ins] == [("Opel", "Corsa", 2012)]
    assert enquiry.source == "mobile.de" and enquiry.external_id == "muster-41@lms"
    assert enquiry.vendor == "Autohaus Muster GmbH"
    assert "Samstag wäre gut." in enquiry.message


def test_customer_text_cannot_break_the_document() -> None:
    hostile = a_lead(
        contact={"id": 1, "name": 'A <b>&amp; "C"</b>\x07', "email": None, "phone": None},
        message="</comments></customer><evil/>]]>\x00",
    )
    xml = lead_adf(hostile, dealer_name="Müller & Söhne <GmbH>")
    root = parse_document(xml)  # well-formed
    assert root.find("prospect/customer/contact/name") is not None
    [enquiry] = parse_adf([xml]).enquiries
    assert enquiry.customer.name == 'A <b>&amp; "C"</b>' and "<evil/>" in enquiry.message
    assert enquiry.vendor == "Müller & Söhne <GmbH>"


def test_lms_leads_show_adf(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    speed = SpeedStack(sqlite_url, outbox=tmp_path / "outbox")
    try:
        lead = speed.arrive(
            "2026-11-30T09:00", sender="Erika Mustermann <erika@example.org>", subject="Probefahrt VW Golf"
        )
    finally:
        speed.close()
    monkeypatch.setenv("LMS_DATABASE_URL", sqlite_url)
    result = CliRunner().invoke(main, ["leads", "show", str(lead), "--adf"])
    assert result.exit_code == 0, result.output
    [enquiry] = parse_adf([result.output]).enquiries
    assert enquiry.customer.email == "erika@example.org" and enquiry.type == "test_drive"
    assert enquiry.vendor == "Autohaus Muster GmbH" and enquiry.external_id == f"muster-{lead}@lms"
    missing = CliRunner().invoke(main, ["leads", "show", "999", "--adf"])
    assert missing.exit_code != 0 and "no lead 999" in missing.output
