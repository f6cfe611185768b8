"""The autoresponder and all outgoing mail: blocks, languages, sandbox, loops, delivery."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lms.cli import main
from models.db import Database
from models.dealer_config import TemplateConfig
from models.migrate import upgrade
from models.tables import Lead
from tests.support.clock import FakeClock
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.services import free_port, wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import DEMO_CONFIG, Stack
from workers.render.blocks import FramedMail, render_framed
from workers.render.mime import Headers, build_framed

EXAMPLES = DEMO_CONFIG.parent
TEMPLATES: dict[str, Any] = {
    "default": {
        "header_image": str(EXAMPLES / "header.png"),
        "subject": {"de": "Ihre Anfrage bei {{ dealer.name }}", "en": "Your enquiry at {{ dealer.name }}"},
        "intro": {
            "de": "<p>{{ contact.salutation }}, danke!</p>",
            "en": "<p>{{ contact.salutation }}, thanks!</p>",
        },
        "seller_footer": "<p>{{ editor.name }} · {{ editor.email }}</p>",
        "legal_footer": "<p>Autohaus Muster GmbH · HRB 12345</p>",
        "attachments": [str(EXAMPLES / "expose.pdf")],
    },
    "used": {"intro": {"de": "<p>{{ contact.salutation }}, zum Gebrauchten: {{ vehicle.label }}</p>"}},
}
CONTEXT = {
    "dealer": {"id": "muster", "name": "Autohaus Muster GmbH", "email": DEMO_MAILBOX},
    "editor": {"name": "Anna Berger", "email": "anna@autohaus-muster.example", "phone": "", "title": ""},
    "contact": {
        "name": "Erika Mustermann",
        "email": "erika@example.org",
        "salutation": "Guten Tag Erika Mustermann",
    },
    "lead": {"id": 7, "type": "used_car", "subject": "Golf", "source": ""},
    "vehicle": {"label": "VW Golf 1.5 TSI"},
}


def render_mail(*, templates: dict[str, Any], **options: Any) -> FramedMail:
    """The autoresponse's blocks rendered as the outbox renders them."""
    typed = {group: TemplateConfig.model_validate(blocks) for group, blocks in templates.items()}
    return render_framed(kind="autoresponse", templates=typed, **options)


def build_message(
    mail: FramedMail,
    *,
    to: str,
    references: list[str] | None = None,
    **headers: Any,
) -> bytes:
    return build_framed(
        mail,
        Headers(
            to=(to,),
            subject=mail.subject,
            references=tuple(references or ()),
            language=mail.language,
            **headers,
        ),
    )


def tree(part: EmailMessage, depth: int = 0) -> list[str]:
    """The MIME structure as lines: content type, and filename or Content-ID where there is one."""
    label = part.get_content_type()
    if part.get_filename():
        label += f" {part.get_filename()}"
    if part["Content-ID"]:
        label += " cid"
    lines = ["  " * depth + label]
    if part.is_multipart():
        for child in part.iter_parts():
            lines += tree(child, depth + 1)  # type: ignore[arg-type]
    return lines


def rendered(group: str, lang: str) -> EmailMessage:
    mail = render_mail(
        templates=TEMPLATES,
        group=group,
        lang=lang,
        default_lang="de",
        context={
            **CONTEXT,
            "contact": {
                **CONTEXT["contact"],
                "salutation": "Guten Tag Erika" if lang == "de" else "Hello Erika",
            },
        },
    )
    raw = build_message(
        mail,
        from_name="Autohaus Muster",
        from_address=DEMO_MAILBOX,
        to="erika@example.org",
        message_id="<lms.ar.7.abc@leads.example.com>",
        date=datetime(2026, 11, 30, 9, tzinfo=UTC),
        origin="muster",
        in_reply_to="<q1@example.org>",
        references=["<q0@example.org>"],
        auto_submitted="auto-replied",
        reply_to="muster+r-0123456789abcdef@leads.example.com",
    )
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


GOLDEN_TREE = [
    "multipart/mixed",
    "  multipart/alternative",
    "    text/plain",
    "    multipart/related",
    "      text/html",
    "      image/png header.png cid",
    "  application/pdf expose.pdf",
]


@pytest.mark.parametrize(
    ("group", "lang", "subject", "intro"),
    [
        ("default", "de", "Ihre Anfrage bei Autohaus Muster GmbH", "Guten Tag Erika, danke!"),
        ("default", "en", "Your enquiry at Autohaus Muster GmbH", "Hello Erika, thanks!"),
        (
            "used",
            "de",
            "Ihre Anfrage bei Autohaus Muster GmbH",
            "Guten Tag Erika, zum Gebrauchten: VW Golf 1.5 TSI",
        ),
        # "used" has no English intro: the default group's English one, not German
        ("used", "en", "Your enquiry at Autohaus Muster GmbH", "Hello Erika, thanks!"),
    ],
)
def test_golden_mime_structure_per_language_and_group(
    group: str, lang: str, subject: str, intro: str
) -> None:
    message = rendered(group, lang)
    assert tree(message) == GOLDEN_TREE
    headers = {
        k: str(message[k])
        for k in (
            "Subject",
            "Auto-Submitted",
            "In-Reply-To",
            "References",
            "Message-ID",
            "Reply-To",
            "X-Auto-Response-Suppress",
            "X-LMS-Origin",
            "Content-Language",
        )
    }
    assert headers == {
        "Subject": subject,
        "Auto-Submitted": "auto-replied",
        "In-Reply-To": "<q1@example.org>",
        "References": "<q0@example.org> <q1@example.org>",
        "Message-ID": "<lms.ar.7.abc@leads.example.com>",
        "Reply-To": "muster+r-0123456789abcdef@leads.example.com",
        "X-Auto-Response-Suppress": "All",
        "X-LMS-Origin": "muster",
        "Content-Language": lang,
    }
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    assert f'src="cid:{image["Content-ID"].strip("<>")}"' in html
    assert image.get_content() == (EXAMPLES / "header.png").read_bytes()
    pdf = next(p for p in message.iter_attachments() if p.get_content_type() == "application/pdf")
    assert pdf.get_content() == (EXAMPLES / "expose.pdf").read_bytes()
    for body in (html, text):
        assert intro in body.replace("\n", " ")
        assert "Anna Berger · anna@autohaus-muster.example" in body  # the seller footer
        assert "Autohaus Muster GmbH · HRB 12345" in body  # the legal footer
    assert "<" not in text  # the text part reads as text


def test_without_image_or_attachments_it_is_plain_alternative() -> None:
    mail = render_mail(templates={}, group="default", lang="en", default_lang="de", context=CONTEXT)
    raw = build_message(
        mail,
        from_name="A",
        from_address=DEMO_MAILBOX,
        to="e@example.org",
        message_id="<m@x>",
        date=datetime(2026, 11, 30, tzinfo=UTC),
        origin="muster",
    )
    message = message_from_bytes(raw, policy=policy.default)
    assert tree(message) == ["multipart/alternative", "  text/plain", "  text/html"]  # type: ignore[arg-type]
    assert message["Subject"] == "Your enquiry at Autohaus Muster GmbH: Golf"  # the built-in English block


@pytest.fixture
def cli(sqlite_url: str) -> CliRunner:
    upgrade(Database(sqlite_url))
    return CliRunner(env={"LMS_DATABASE_URL": sqlite_url})


def config_with(tmp_path: Path, block: str, value: str) -> str:
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(EXAMPLES / asset, tmp_path / asset)
    text = DEMO_CONFIG.read_text().replace(
        "[dealers.templates.default]\n", f"[dealers.templates.default]\n{block} = {json.dumps(value)}\n", 1
    )
    path = tmp_path / "dealer.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "unsafe"),  # Python internals
        ("{{ dealer.__init__.__globals__ }}", "unsafe"),
        ("{{ dealer.name.upper() }}", "not safely callable"),  # method calls
        ("{{ dealer.items() }}", "not safely callable"),
        ("{% for i in range(100000000) %}x{% endfor %}", "not safely callable"),
        ("{{ 'x' * 100000000 }}", "repeating text"),  # size
        ("{{ 9 ** 999999 }}", "power"),
        (
            "{% set a = 'aaaaaaaaaa' * 1000 %}{% for i in [1,2,3,4,5,6,7,8,9,10] %}"
            "{% for j in [1,2,3,4,5,6,7,8,9,10] %}{{ a }}{% endfor %}{% endfor %}",
            "more than",
        ),
        ("<p>{{ contact.nmae }}</p>", "no attribute 'nmae'"),  # a typo: strict undefined
        ("<p>{% if %}</p>", "TemplateSyntaxError"),
    ],
)
def test_config_check_refuses_templates_that_reach_out_or_blow_up(
    cli: CliRunner, tmp_path: Path, template: str, why: str
) -> None:
    path = config_with(tmp_path, "seller_footer", template)
    for command in (["config", "check", path], ["config", "apply", path]):
        result = cli.invoke(main, command)
        assert result.exit_code != 0
        assert "dealers[0].templates.default.seller_footer" in result.output
        assert why in result.output
        assert "Traceback" not in result.output


def test_config_check_names_the_language_of_a_failing_block(cli: CliRunner, tmp_path: Path) -> None:
    path = config_with(tmp_path, "intro", "")  # replaced below with a per-language table
    text = (
        Path(path).read_text().replace('intro = ""', 'intro = { de = "<p>ok</p>", en = "<p>{{ nope }}</p>" }')
    )
    Path(path).write_text(text)
    result = cli.invoke(main, ["config", "check", path])
    assert result.exit_code != 0 and "dealers[0].templates.default.intro.en" in result.output


def test_a_missing_template_file_is_refused_with_its_key(cli: CliRunner, tmp_path: Path) -> None:
    path = config_with(tmp_path, "seller_footer", "<p>x</p>")
    Path(path).write_text(
        Path(path).read_text().replace('attachments = ["expose.pdf"]', 'attachments = ["nope.pdf"]')
    )
    result = cli.invoke(main, ["config", "check", path])
    assert result.exit_code != 0 and "dealers[0].templates.default.attachments[0]" in result.output


@pytest.fixture
def live(sqlite_url: str, sink: SmtpSink) -> Iterator[Stack]:
    s = Stack(sqlite_url, relay_url=sink.url)
    yield s
    s.close()


def test_a_hostile_customer_name_arrives_harmless_in_subject_and_body(live: Stack, sink: SmtpSink) -> None:
    with live.db.session() as session:
        from models.tables import Dealer

        dealer = session.get(Dealer, "muster")
        assert dealer is not None
        templates = dict(dealer.config["templates"])
        templates["default"] = {**templates["default"], "subject": {"de": "Ihre Anfrage, {{ contact.name }}"}}
        dealer.config = {**dealer.config, "templates": templates}
    # CR/LF can only reach a name through an encoded word (RFC 2047): "Erika\r\nBcc: … <script>…"
    evil = "=?utf-8?q?Erika=0D=0ABcc=3A_victim=40example.net_=3Cscript=3Ealert=281=29=3C/script=3E?="
    raw = enquiry().replace(
        b"From: Erika Mustermann <erika@example.org>", f"From: {evil} <erika@example.org>".encode()
    )
    live.send(raw)
    wait_until(lambda: sink.to("erika@example.org"), what="the autoresponse")
    [answer] = sink.to("erika@example.org")
    assert answer.recipients == ["erika@example.org"]  # no Bcc was smuggled in
    message = answer.message
    assert message["Bcc"] is None
    assert "\n" not in message["Subject"] and "\r" not in message["Subject"]
    html = message.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def two_dealers(tmp_path: Path, a_port: int, b_port: int) -> tuple[Path, Path]:
    template = """[[dealers]]
id = "{id}"
name = "Autohaus {id}"
mailboxes = ["{id}@leads.example.com"]
[dealers.distribution]
default = {{ method = "pool" }}
"""
    paths = []
    for name in ("alpha", "beta"):
        path = tmp_path / f"{name}.toml"
        path.write_text(template.format(id=name))
        paths.append(path)
    return paths[0], paths[1]


def test_two_instances_answering_each_other_exchange_at_most_one_mail_each(tmp_path: Path) -> None:
    a_port, b_port = free_port(), free_port()
    alpha_cfg, beta_cfg = two_dealers(tmp_path, a_port, b_port)
    # Each instance's relay is the other's SMTP intake: whatever one sends, the other receives.
    alpha = Stack(
        f"sqlite:///{tmp_path}/a.db",
        relay_url=f"smtp://127.0.0.1:{b_port}",
        config=alpha_cfg,
        smtp_port=a_port,
    )
    beta = Stack(
        f"sqlite:///{tmp_path}/b.db",
        relay_url=f"smtp://127.0.0.1:{a_port}",
        config=beta_cfg,
        smtp_port=b_port,
    )
    try:
        # Each dealer's mailbox writes to the other, as a customer would.
        alpha.send(
            enquiry(sender="beta@leads.example.com", to="alpha@leads.example.com"),
            to="alpha@leads.example.com",
            sender="beta@leads.example.com",
        )
        beta.send(
            enquiry(sender="alpha@leads.example.com", to="beta@leads.example.com"),
            to="beta@leads.example.com",
            sender="alpha@leads.example.com",
        )

        def settled() -> bool:
            stacks = (alpha, beta)
            return all(
                len(s.inbound()) == 2
                and all(r.state in ("processed", "ignored") for r in s.inbound())
                and all(o.state == "sent" for o in s.outbound())
                for s in stacks
            )

        wait_until(settled, timeout=30, what="both instances to settle")
        for stack in (alpha, beta):
            assert [o.kind for o in stack.outbound()] == ["autoresponse"]  # one mail each, no more
            states = sorted((r.state, (r.reason or "")[:10]) for r in stack.inbound())
            assert states == [("ignored", "auto_reply"), ("processed", "")]
    finally:
        alpha.close()
        beta.close()


def test_an_autoresponse_that_could_not_go_out_in_time_expires_and_is_not_sent_late(sqlite_url: str) -> None:
    clock = FakeClock()
    sink = SmtpSink(free_port())
    stack = Stack(sqlite_url, relay_url=sink.url, clock=clock, autoresponse_max_age_seconds=3600)
    try:
        stack.send(enquiry())
        # Failed and recorded, not just claimed: a send still in flight when the sink starts
        # would succeed, and the two hours below would make its lease look expired (sent twice).
        wait_until(
            lambda: len([o for o in stack.outbound() if o.attempts == 1 and o.state == "queued"]) == 3,
            what="first attempts failed",
        )
        sink.start()
        clock.advance(timedelta(hours=2))
        stack.runtime.sweep_once()
        wait_until(
            lambda: (
                {o.kind: o.state for o in stack.outbound()}
                == {"autoresponse": "expired", "forward": "sent", "notification": "sent"}
            ),
            what="expiry",
        )
        assert sink.to("erika@example.org") == []  # the customer got nothing late
        assert len(sink.messages) == 2  # the dealer's forward and the notification still arrive
        status = json.loads(
            CliRunner(env={"LMS_DATABASE_URL": sqlite_url}).invoke(main, ["ops", "status", "--json"]).output
        )
        assert status["outbound"] == {"expired": 1, "sent": 2}
    finally:
        stack.close()
        sink.stop()


def test_a_seller_reply_is_framed_threaded_recorded_and_stops_the_clock(
    live: Stack, sink: SmtpSink, tmp_path: Path
) -> None:
    live.send(enquiry(message_id="<frage-1@example.org>", subject="Probefahrt Golf"))
    wait_until(lambda: sink.to("erika@example.org"), what="the autoresponse")
    [lead] = live.leads()
    assert lead.reacted_at is None
    body = tmp_path / "answer.txt"
    body.write_text("Guten Tag Frau Mustermann,\nSamstag um 10 Uhr passt. <b>Bis dann</b>!\nAnna Berger")
    cli = CliRunner(env={"LMS_DATABASE_URL": live.settings.database_url})
    result = cli.invoke(main, ["leads", "reply", str(lead.id), "--body-file", str(body)])
    assert result.exit_code == 0, result.output
    live.runtime.sweep_once()  # at the same now as the workers: never ahead of their leases
    wait_until(lambda: len(sink.to("erika@example.org")) == 2, what="the reply at the sink")
    reply = sink.to("erika@example.org")[1]
    message = reply.message
    assert reply.envelope_from == DEMO_MAILBOX and message["Auto-Submitted"] is None  # a person wrote it
    assert message["Subject"] == "Re: Probefahrt Golf"
    assert message["In-Reply-To"] == "<frage-1@example.org>"
    assert message["From"].addresses[0].display_name == "Anna Berger | Autohaus Muster"
    html = message.get_body(("html",)).get_content()
    assert "Samstag um 10 Uhr passt. &lt;b&gt;Bis dann&lt;/b&gt;!" in html  # the seller's text, escaped
    assert "cid:" in html and "Musterstraße 1" in html  # framed by header image and legal footer
    assert list(message.iter_attachments()) == []  # the exposé belongs to the first answer only
    shown = json.loads(cli.invoke(main, ["leads", "show", str(lead.id), "--json"]).stdout)
    assert (
        shown["activities"][-1]["kind"] == "reply" and "Samstag um 10 Uhr" in shown["activities"][-1]["text"]
    )
    with live.db.session() as session:
        assert session.get(Lead, lead.id).reacted_at is not None  # type: ignore[union-attr]
    empty = tmp_path / "empty.txt"
    empty.write_text("  ")
    assert "empty" in cli.invoke(main, ["leads", "reply", str(lead.id), "--body-file", str(empty)]).output


def test_notes_and_completion(live: Stack, sink: SmtpSink) -> None:
    live.send(enquiry())
    wait_until(lambda: live.leads(), what="the lead")
    lead_id = str(live.leads()[0].id)
    cli = CliRunner(env={"LMS_DATABASE_URL": live.settings.database_url})
    assert cli.invoke(main, ["leads", "note", lead_id, "Kunde ruft Montag an", "--by", "anna"]).exit_code == 0
    wrong = cli.invoke(main, ["leads", "complete", lead_id, "--reason", "bought"])
    assert wrong.exit_code != 0 and "sold" in wrong.output  # the valid codes are named
    assert cli.invoke(main, ["leads", "complete", lead_id, "--reason", "sold"]).exit_code == 0
    shown = json.loads(cli.invoke(main, ["leads", "show", lead_id, "--json"]).stdout)
    assert shown["status"] == "completed" and shown["completion_reason"] == "sold"
    kinds = [(a["kind"], a["text"]) for a in shown["activities"]][-2:]
    assert kinds == [
        ("note", "anna: Kunde ruft Montag an"),
        ("completed", "Completed by operator: Fahrzeug verkauft"),
    ]
    assert cli.invoke(main, ["leads", "complete", lead_id, "--reason", "sold"]).exit_code != 0


def test_preview_and_test_mail(live: Stack, sink: SmtpSink, tmp_path: Path) -> None:
    env = {"LMS_DATABASE_URL": live.settings.database_url, "LMS_RELAY_URL": sink.url}
    cli = CliRunner(env=env)
    out = tmp_path / "vorschau"
    result = cli.invoke(
        main, ["templates", "preview", "--dealer", "muster", "--lang", "en", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    html = (tmp_path / "vorschau.html").read_text()
    assert "[contact.name]" in html and "Anna Berger" in html  # placeholders for lead data, the dealer's own
    eml = message_from_bytes((tmp_path / "vorschau.eml").read_bytes(), policy=policy.default)
    assert eml["Subject"] == "Your enquiry at Autohaus Muster GmbH"
    sent = cli.invoke(
        main, ["templates", "test-mail", "--dealer", "muster", "--to", "chef@autohaus-muster.example"]
    )
    assert sent.exit_code == 0, sent.output
    assert len(sink.to("chef@autohaus-muster.example")) == 1
    assert cli.invoke(main, ["templates", "preview", "--dealer", "nobody"]).exit_code != 0


def test_dkim_signature_verifies(tmp_path: Path) -> None:
    import dkim

    key = tmp_path / "dkim.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    public = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    import base64

    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    from workers.render.dkim import dkim_sign

    mail = render_mail(templates={}, group="default", lang="de", default_lang="de", context=CONTEXT)
    raw = build_message(
        mail,
        from_name="Autohaus Muster",
        from_address=DEMO_MAILBOX,
        to="e@example.org",
        message_id="<m@leads.example.com>",
        date=datetime(2026, 11, 30, tzinfo=UTC),
        origin="muster",
    )
    signed = dkim_sign(raw, selector="lms", domain="leads.example.com", key_file=str(key))
    assert signed.startswith(b"DKIM-Signature:")
    assert dkim.verify(
        signed,
        dnsfunc=lambda name, timeout=5: record if name == b"lms._domainkey.leads.example.com." else None,
    )


@pytest.mark.parametrize(
    "name",
    [
        "Erika\r\nBcc: victim@example.net",
        "=?utf-8?q?Erika=0D=0ABcc=3A_victim=40example.net?=",  # decoded by the email package if left alone
        "=?utf-8?b?" + __import__("base64").b64encode(b"Erika\r\nBcc: victim@example.net").decode() + "?=",
        "=?utf-8?q?=3D=3Futf-8=3Fq=3FX=3D0D=3D0ABcc=3A_v=40example.net=3F=3D?=",  # encoded twice
    ],
)
def test_no_header_injection_through_a_rendered_subject(name: str) -> None:
    context = {**CONTEXT, "contact": {**CONTEXT["contact"], "name": name}}
    templates = {"default": {"subject": {"de": "Ihre Anfrage, {{ contact.name }}"}}}
    mail = render_mail(templates=templates, group="default", lang="de", default_lang="de", context=context)
    raw = build_message(
        mail,
        from_name=name,
        from_address=DEMO_MAILBOX,
        to="e@example.org",
        message_id="<m@x>",
        date=datetime(2026, 11, 30, tzinfo=UTC),
        origin="muster",
        in_reply_to=name,
    )
    message = message_from_bytes(raw, policy=policy.default)
    assert message["Bcc"] is None
    assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
    header_block = raw.split(b"\r\n\r\n", 1)[0]
    assert not any(line.lower().startswith(b"bcc:") for line in header_block.split(b"\r\n"))
