"""Automatic mails, written from the published formats and the vendors' documented texts.

RFC 3464 (delivery status notifications), RFC 5965 (abuse reports), RFC 8098 (read
receipts), RFC 3834 (auto-replies); the bounce texts of Postfix, Exim, Sendmail, qmail,
Exchange/Office 365, Gmail and German, French, Italian, Dutch and Spanish providers as their
documentation and public bounce collections show them; the JSON notifications of Amazon SES
(also in its SNS e-mail envelope), SendGrid, Mailgun, Postmark, SparkPost and Mandrill as
their webhook documentation describes them; Mailman, LISTSERV and Google Groups notices;
challenge-response systems. Names, hosts and ids are invented.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP

from tests.support.mails import DEMO_MAILBOX, enquiry


@dataclass(frozen=True)
class Robot:
    name: str
    family: str  # what the classifier must say (intake.parsing.classify)
    raw: bytes


def _headers(message: EmailMessage, sender: str | None, subject: str, extra: dict[str, str] | None) -> None:
    if sender is not None:
        message["From"] = sender
    message["To"] = DEMO_MAILBOX
    message["Subject"] = subject
    message["Date"] = "Mon, 30 Nov 2026 08:00:00 +0100"
    message["Message-ID"] = f"<{abs(hash((sender, subject))) % 10**12}@robot.example>"
    for key, value in (extra or {}).items():
        message[key] = value


def original_mail(
    message_id: str = "<8f2e1c@autohaus-muster.example>", to: str = "kunde@example.org"
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Autohaus Muster <muster@leads.example.com>"
    message["To"] = to
    message["Subject"] = "Ihre Anfrage bei Autohaus Muster"
    message["Message-ID"] = message_id
    message.set_content("Guten Tag, vielen Dank für Ihre Anfrage.")
    return message.as_bytes()


def dsn(
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <kunde@example.org>: Recipient address rejected: User unknown",
    *,
    recipient: str = "kunde@example.org",
    original: bytes | None = None,
    headers_only: bool = False,
    subject: str = "Undelivered Mail Returned to Sender",
    sender: str = "MAILER-DAEMON@mx.example.net (Mail Delivery System)",
) -> bytes:
    """RFC 3464 §2: multipart/report; report-type=delivery-status with a human part, the
    machine part (per-message and per-recipient fields) and the returned mail or headers."""
    boundary = "dsn-boundary-42"
    returned = original or original_mail(to=recipient)
    if headers_only:
        returned_part = b"Content-Type: text/rfc822-headers\r\n\r\n" + returned.split(b"\n\n", 1)[0] + b"\r\n"
    else:
        returned_part = b"Content-Type: message/rfc822\r\n\r\n" + returned
    fields = (
        "Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Mon, 30 Nov 2026 07:59:58 +0100\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.org\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n"
    )
    human = {
        "failed": "I'm sorry to have to inform you that your message could not be delivered.",
        "delayed": "Your message has not yet been delivered. The mail system will continue to try.",
        "delivered": "Your message was successfully delivered to the destination(s) listed below.",
        "relayed": "Your message was relayed to a system that does not send delivery notifications.",
        "expanded": "Your message was delivered to a mailing list and expanded.",
    }[action]
    return (
        (
            f"From: {sender}\r\nTo: {DEMO_MAILBOX}\r\nSubject: {subject}\r\n"
            "Date: Mon, 30 Nov 2026 08:00:00 +0100\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
            f"Message-ID: <dsn-{action}@mx.example.net>\r\n\r\n"
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            f"This is the mail system at host mx.example.net.\r\n\r\n{human}\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n{fields}\r\n"
            f"--{boundary}\r\n"
        ).encode()
        + returned_part
        + f"\r\n--{boundary}--\r\n".encode()
    )


def arf(feedback_type: str = "abuse", original: bytes | None = None) -> bytes:
    """RFC 5965 §2: multipart/report; report-type=feedback-report."""
    boundary = "arf-boundary-7"
    returned = original or original_mail()
    return (
        (
            "From: Feedback Loop <fbl@isp.example>\r\nTo: abuse@leads.example.com\r\n"
            "Subject: FW: Ihre Anfrage bei Autohaus Muster\r\nDate: Mon, 30 Nov 2026 08:00:00 +0100\r\n"
            "MIME-Version: 1.0\r\nMessage-ID: <arf-1@isp.example>\r\n"
            f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is an email abuse report for an email message received from IP 192.0.2.1.\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n"
            f"Feedback-Type: {feedback_type}\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
            "Original-Mail-From: <>\r\nOriginal-Rcpt-To: <kunde@example.org>\r\n"
            "Arrival-Date: Mon, 30 Nov 2026 07:00:00 +0100\r\nSource-IP: 192.0.2.1\r\n\r\n"
            f"--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
        ).encode()
        + returned
        + f"\r\n--{boundary}--\r\n".encode()
    )


def forward_with_attachment(
    subject: str,
    inner: bytes,
    *,
    sender: str = "Erika Support <erika@provider.example>",
    note: str = "Zur Info, siehe unten.",
) -> bytes:
    """A forward as mail clients write it: a note and the original as message/rfc822, 8bit
    (RFC 2046 §5.2.1 forbids encoding it)."""
    boundary = "fwd-boundary-3"
    return (
        (
            f"From: {sender}\r\nTo: {DEMO_MAILBOX}\r\nSubject: {subject}\r\n"
            "Date: Mon, 30 Nov 2026 08:00:00 +0100\r\nMessage-ID: <fwd-1@provider.example>\r\nMIME-Version: 1.0\r\n"
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'
            f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            f"{note}\r\n\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n"
            "Content-Disposition: attachment; filename=forwarded.eml\r\n\r\n"
        ).encode()
        + inner
        + f"\r\n--{boundary}--\r\n".encode()
    )


def _forward(subject: str, inner: bytes) -> bytes:
    return forward_with_attachment(subject, inner)


def text_bounce(
    subject: str,
    body: str,
    *,
    sender: str | None = "Mail Delivery System <MAILER-DAEMON@mx.example.net>",
    extra: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage(policy=SMTP)
    _headers(message, sender, subject, extra)
    message.set_content(body)
    return message.as_bytes()


TEXT_BOUNCES: list[tuple[str, str, str, str | None, dict[str, str] | None]] = [
    # name, subject, body, sender (None: no From header), extra headers
    (
        "postfix-text",
        "Undelivered Mail Returned to Sender",
        "This is the mail system at host mail.example.net.\n\nI'm sorry to have to inform you that your "
        "message could not\nbe delivered to one or more recipients.\n\n<kunde@example.org>: host mx.example.org"
        " said: 550 5.1.1 User unknown",
        "MAILER-DAEMON@mail.example.net (Mail Delivery System)",
        None,
    ),
    (
        "exim-no-from",
        "Mail delivery failed: returning message to sender",
        "This message was created automatically by mail delivery software.\n\nA message that you sent could "
        "not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es)"
        " failed:\n\n  kunde@example.org\n    550 5.1.1 User unknown",
        None,
        None,
    ),
    (
        "sendmail",
        "Returned mail: see transcript for details",
        "The original message was received at Mon, 30 Nov 2026 07:59:00 +0100\n\n   ----- The following "
        "addresses had permanent fatal errors -----\n<kunde@example.org>\n\n   ----- Transcript of session "
        "follows -----\n550 5.1.1 <kunde@example.org>... User unknown",
        "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>",
        None,
    ),
    (
        "qmail",
        "failure notice",
        "Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver your message "
        "to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        "<kunde@example.org>:\nSorry, no mailbox here by that name. (#5.1.1)",
        "MAILER-DAEMON@mx.example.net",
        {"Return-Path": "<>"},
    ),
    (
        "exchange-en",
        "Undeliverable: Ihre Anfrage bei Autohaus Muster",
        "Delivery has failed to these recipients or groups:\n\nkunde@example.org\nThe e-mail address you entered "
        "couldn't be found.\n\nDiagnostic information for administrators:\nRemote Server returned '550 5.1.10 "
        "RESOLVER.ADR.RecipientNotFound'",
        "Microsoft Outlook <postmaster@contoso.example>",
        None,
    ),
    (
        "exchange-de",
        "Unzustellbar: Ihre Anfrage bei Autohaus Muster",
        "Die Nachricht konnte nicht an folgende Empfänger oder Gruppen übermittelt werden:\n\n"
        "kunde@example.org\nDie eingegebene E-Mail-Adresse wurde nicht gefunden.\n\n"
        "Diagnoseinformationen für Administratoren:\nRemoteserver hat '550 5.1.1 User unknown' zurückgegeben",
        "Microsoft Outlook <Kunden@firma.example>",
        {"Auto-Submitted": "auto-replied"},
    ),
    (
        "gmx-de",
        "Mail delivery failed: returning message to sender",
        "Dies ist eine automatisch erstellte Benachrichtigung über den Zustellstatus.\n\nIhre Nachricht "
        "konnte nicht zugestellt werden:\n<kunde@example.org>: 550 Requested action not taken: mailbox unavailable",
        "Mail Delivery System <mailer-daemon@gmx.example>",
        None,
    ),
    (
        "t-online-de",
        "Unzustellbare Nachricht",
        "Ihre Nachricht konnte nicht zugestellt werden.\n\nEmpfänger: kunde@example.org\nGrund: 550 5.1.1 "
        "Benutzer unbekannt",
        "Mail Delivery Subsystem <bounce@t-online.example>",
        {"Return-Path": "<>"},
    ),
    (
        "orange-fr",
        "Échec de la remise du message",
        "Ceci est un message automatique.\n\nVotre message n'a pas pu être remis à kunde@example.org.\n"
        "550 5.1.1 Adresse inconnue",
        "Orange <postmaster@orange.example>",
        None,
    ),
    (
        "libero-it",
        "Messaggio non recapitabile",
        "Il messaggio non è stato recapitato ai seguenti destinatari:\n\nkunde@example.org\n"
        "550 5.1.1 Utente sconosciuto",
        "Libero <mailer-daemon@libero.example>",
        None,
    ),
    (
        "kpn-nl",
        "Onbestelbaar: Ihre Anfrage",
        "Uw bericht kon niet worden bezorgd bij de volgende ontvangers:\n\nkunde@example.org\n"
        "550 5.1.1 Onbekende gebruiker",
        "Microsoft Outlook <postmaster@kpn.example>",
        {"Auto-Submitted": "auto-replied"},
    ),
    (
        "telefonica-es",
        "No se puede entregar: Ihre Anfrage",
        "No se pudo entregar el mensaje a los siguientes destinatarios:\n\nkunde@example.org\n"
        "550 5.1.1 Usuario desconocido",
        "Microsoft Outlook <postmaster@telefonica.example>",
        None,
    ),
    (
        "gmail-text",
        "Delivery Status Notification (Failure)",
        "Address not found\n\nYour message wasn't delivered to kunde@example.org because the address couldn't be "
        "found, or is unable to receive mail.\n\nThe response from the remote server was:\n550 5.1.1 The email "
        "account that you tried to reach does not exist.",
        "Mail Delivery Subsystem <mailer-daemon@googlemail.example>",
        None,
    ),
    (
        "delayed-sendmail",
        "Warning: could not send message for past 4 hours",
        "    **********************************************\n    **      THIS IS A WARNING MESSAGE ONLY      **\n"
        "    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n\nThe original message was received at Mon, 30 Nov\n"
        "----- Transcript of session follows -----\n<kunde@example.org>... Deferred: Connection timed out\n"
        "Warning: message still undelivered after 4 hours\nWill keep trying until message is 5 days old",
        "Mail Delivery Subsystem <MAILER-DAEMON@relay.example.net>",
        None,
    ),
    (
        "delayed-exchange-de",
        "Zustellung verzögert: Ihre Anfrage",
        "Die Zustellung an folgende Empfänger oder Gruppen wurde verzögert:\n\nkunde@example.org\n"
        "Dies ist lediglich eine Warnung. Es wird weiter versucht, die Nachricht zuzustellen.",
        "Microsoft Outlook <postmaster@firma.example>",
        {"Return-Path": "<>"},
    ),
    (
        "relayed-exchange",
        "Relayed: Ihre Anfrage bei Autohaus Muster",
        "Delivery to these recipients or groups is complete, but no delivery notification was sent by the "
        "destination server:\n\nkunde@example.org",
        "Microsoft Outlook <postmaster@contoso.example>",
        {"Auto-Submitted": "auto-replied"},
    ),
    (
        "delivered-exchange-de",
        "Zugestellt: Ihre Anfrage bei Autohaus Muster",
        "Die Nachricht wurde an die folgenden Empfänger zugestellt:\n\nkunde@example.org",
        "Microsoft Outlook <postmaster@firma.example>",
        {"Return-Path": "<>"},
    ),
    (
        "domain-less-sender",
        "Returned mail: User unknown",
        "The original message was received.\n----- The following addresses had permanent fatal errors -----\n"
        "<kunde@example.org>",
        "MAILER-DAEMON",
        None,
    ),
]


def text_bounces() -> list[Robot]:
    return [
        Robot(f"text-bounce:{name}", "bounce", text_bounce(subject, body, sender=sender, extra=extra))
        for name, subject, body, sender, extra in TEXT_BOUNCES
    ]


def _ses_mail() -> dict[str, object]:
    return {
        "timestamp": "2026-11-30T07:00:00.000Z",
        "source": "muster@leads.example.com",
        "messageId": "0100018c-ses-id",
        "destination": ["kunde@example.org"],
        "headersTruncated": False,
        "headers": [{"name": "Message-ID", "value": "<8f2e1c@autohaus-muster.example>"}],
        "commonHeaders": {"messageId": "<8f2e1c@autohaus-muster.example>", "subject": "Ihre Anfrage"},
    }


def vendor_notifications() -> list[Robot]:
    """Bodies as the vendors document their webhooks (what a mail subscription carries)."""
    ses_bounce = {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": "Permanent",
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": "kunde@example.org",
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-30T07:00:01.000Z",
            "feedbackId": "0100018c-feedback",
        },
        "mail": _ses_mail(),
    }
    ses_complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "kunde@example.org"}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2026-11-30T07:00:01.000Z",
        },
        "mail": _ses_mail(),
    }
    ses_delivery_event = {
        "eventType": "Delivery",
        "delivery": {"recipients": ["kunde@example.org"], "smtpResponse": "250 ok"},
        "mail": _ses_mail(),
    }
    sns_envelope = {
        "Type": "Notification",
        "MessageId": "b1f0c3d2-sns",
        "TopicArn": "arn:aws:sns:eu-central-1:123456789012:ses-bounces",
        "Message": json.dumps(ses_bounce),
        "Timestamp": "2026-11-30T07:00:02.000Z",
    }
    sendgrid = [
        {
            "email": "kunde@example.org",
            "timestamp": 1796022000,
            "event": "bounce",
            "type": "bounce",
            "reason": "550 5.1.1 The email account that you tried to reach does not exist",
            "status": "5.1.1",
            "sg_event_id": "ZGVsaXZlcmVk",
            "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001",
            "smtp-id": "<8f2e1c@autohaus-muster.example>",
        }
    ]
    mailgun = {
        "signature": {"timestamp": "1796022000", "token": "abc", "signature": "def"},
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "recipient": "kunde@example.org",
            "delivery-status": {"code": 550, "description": "Not delivering to previously bounced address"},
            "message": {"headers": {"message-id": "8f2e1c@autohaus-muster.example"}},
        },
    }
    postmark = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "MessageID": "883953f4-postmark",
        "Email": "kunde@example.org",
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    }
    sparkpost = [
        {
            "msys": {
                "message_event": {
                    "type": "bounce",
                    "rcpt_to": "kunde@example.org",
                    "reason": "550 5.1.1 user unknown",
                    "bounce_class": "10",
                }
            }
        }
    ]
    mandrill = {
        "mandrill_events": json.dumps(
            [{"event": "hard_bounce", "msg": {"email": "kunde@example.org", "diag": "smtp;550 5.1.1"}}]
        )
    }
    bodies = [
        ("ses-bounce", ses_bounce),
        ("ses-complaint", ses_complaint),
        ("ses-delivery-event", ses_delivery_event),
        ("sns-envelope", sns_envelope),
        ("sendgrid", sendgrid),
        ("mailgun", mailgun),
        ("postmark", postmark),
        ("sparkpost", sparkpost),
        ("mandrill", mandrill),
    ]
    robots = []
    for name, body in bodies:
        text = json.dumps(body)
        if name == "sns-envelope":
            text += "\n\n--\nIf you wish to stop receiving notifications from this topic, please click below."
        message = EmailMessage(policy=SMTP)
        _headers(message, "Notifications <notifications@mailservice.example>", "Notification", None)
        message.set_content(text)
        robots.append(Robot(f"vendor:{name}", "vendor_notification", message.as_bytes()))
    # A webhook body attached as a .json file to a plain notice.
    message = EmailMessage(policy=SMTP)
    _headers(message, "Alerts <alerts@mailservice.example>", "Event notification", None)
    message.set_content("See the attached event.")
    message.add_attachment(
        json.dumps(postmark).encode(), maintype="application", subtype="json", filename="event.json"
    )
    robots.append(Robot("vendor:json-attachment", "vendor_notification", message.as_bytes()))
    return robots


def list_notices() -> list[Robot]:
    items = [
        (
            "mailman-moderation",
            "Your message to Autofreunde awaits moderator approval",
            "autofreunde-bounces@lists.example.org",
            {"X-Mailman-Version": "2.1.39", "Precedence": "bulk"},
        ),
        (
            "mailman3-not-member",
            "Your message to autofreunde@lists.example.org was rejected: you are not a member",
            "autofreunde-owner@lists.example.org",
            {"Auto-Submitted": "auto-replied"},
        ),
        (
            "listserv-rejected",
            "Rejected posting to AUTOS-L@LISTSERV.EXAMPLE.EDU",
            "LISTSERV@LISTSERV.EXAMPLE.EDU",
            None,
        ),
        (
            "google-groups",
            "Address not found: You are not a member of the group Autofreunde",
            "Google Groups <noreply-groups@googlegroups.example>",
            {"Auto-Submitted": "auto-replied"},
        ),
        (
            "loop-alert",
            "Loop alert: duplicated Message-ID <8f2e1c@autohaus-muster.example>",
            "sympa@lists.example.org",
            None,
        ),
        (
            "sympa-request",
            "Confirmation of your subscription to autofreunde",
            "autofreunde-request@lists.example.org",
            {"Return-Path": "<>"},
        ),
    ]
    robots = []
    for name, subject, sender, extra in items:
        robots.append(
            Robot(
                f"list:{name}",
                "list_notice",
                text_bounce(
                    subject, "This is an automatic notice of the list manager.", sender=sender, extra=extra
                ),
            )
        )
    return robots


def challenges() -> list[Robot]:
    items = [
        (
            "spamarrest",
            "Please confirm your message",
            "Spam Arrest <verify@spamarrest.com>",
            None,
            "Please click the link below to verify that you are a person.",
        ),
        (
            "boxbe",
            "Ihre E-Mail wartet auf Bestätigung",
            "Boxbe <notify@boxbe.com>",
            None,
            "Bitte bestätigen Sie, dass Sie ein Mensch sind.",
        ),
        (
            "boxtrapper",
            "Your email requires verification verify#1a2b3c",
            "kunde@example.org",
            {"Auto-Submitted": "auto-replied"},
            "The message you sent requires that you verify that you are a real live human being.",
        ),
        (
            "tmda",
            "Re: Ihre Anfrage",
            "Kunde <kunde-confirm@example.org>",
            {"X-TMDA-Fingerprint": "abc123"},
            "Your message is held until you confirm it.",
        ),
        (
            "mailinblack",
            "Confirmez votre message",
            "Mailinblack <noreply@mailinblack.com>",
            None,
            "Veuillez confirmer votre adresse.",
        ),
    ]
    return [
        Robot(f"challenge:{name}", "challenge", text_bounce(subject, body, sender=sender, extra=extra))
        for name, subject, sender, extra, body in items
    ]


def vacations() -> list[Robot]:
    items = [
        ("de-subject", "Abwesenheitsnotiz: Ihre Anfrage", None),
        ("de-auto", "Automatische Antwort: Ihre Anfrage", None),
        ("en-ooo", "Out of Office: Ihre Anfrage", None),
        ("fr", "Réponse automatique : Ihre Anfrage", None),
        ("it", "Risposta automatica: Ihre Anfrage", None),
        ("nl", "Automatisch antwoord: Ihre Anfrage", None),
        ("es", "Respuesta automática: Ihre Anfrage", None),
        ("header-auto-submitted", "Re: Ihre Anfrage", {"Auto-Submitted": "auto-replied"}),
        ("header-x-autoreply", "Re: Ihre Anfrage", {"X-Autoreply": "yes"}),
        ("header-exchange", "Re: Ihre Anfrage", {"X-MS-Exchange-AutoReply": "true"}),
    ]
    robots = []
    for name, subject, extra in items:
        family = "auto_reply" if name == "header-auto-submitted" else "vacation"
        robots.append(
            Robot(
                f"vacation:{name}",
                family,
                text_bounce(
                    subject,
                    "Ich bin bis zum 7.12. nicht im Büro.",
                    sender="Kunde <kunde@example.org>",
                    extra=extra,
                ),
            )
        )
    return robots


def read_receipt() -> Robot:
    boundary = "mdn-1"
    raw = (
        "From: Kunde <kunde@example.org>\r\nTo: muster@leads.example.com\r\nSubject: Gelesen: Ihre Anfrage\r\n"
        "Date: Mon, 30 Nov 2026 08:00:00 +0100\r\nMessage-ID: <mdn-1@example.org>\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=disposition-notification; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nIhre Nachricht wurde gelesen.\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/disposition-notification\r\n\r\n"
        "Reporting-UA: mail.example.org; Outlook\r\nFinal-Recipient: rfc822; kunde@example.org\r\n"
        "Original-Message-ID: <8f2e1c@autohaus-muster.example>\r\n"
        "Disposition: manual-action/MDN-sent-manually; displayed\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    return Robot("read-receipt", "read_receipt", raw)


def structured() -> list[Robot]:
    robots = [
        Robot(f"dsn:{action}", "dsn", dsn(action, status))
        for action, status in (
            ("failed", "5.1.1"),
            ("delayed", "4.4.7"),
            ("delivered", "2.0.0"),
            ("relayed", "2.0.0"),
            ("expanded", "2.0.0"),
        )
    ]
    robots.append(Robot("dsn:headers-only", "dsn", dsn(headers_only=True)))
    robots += [Robot(f"arf:{kind}", "arf", arf(kind)) for kind in ("abuse", "fraud", "not-spam", "opt-out")]
    robots.append(read_receipt())
    return robots


def forwarded() -> list[Robot]:
    """Reports a person forwarded: attached (message/rfc822) or inline ("Fw: …")."""
    inline_arf = text_bounce(
        "Fw: Abuse report",
        "-----Original Message-----\nFrom: fbl@isp.example\nSubject: Abuse report\n\nThis is an email abuse "
        "report for a message received from IP 192.0.2.1.\nFeedback-Type: abuse\nUser-Agent: SomeGenerator/1.0\n",
        sender="Jonas Admin <jonas@provider.example>",
    )
    inline_bounce = text_bounce(
        "Fwd: Returned mail: see transcript for details",
        "Kannst du dir das ansehen?\n\n---------- Forwarded message ---------\nFrom: Mail Delivery Subsystem "
        "<MAILER-DAEMON@relay.example.net>\n\nThe original message was received at Mon, 30 Nov 2026\n"
        "   ----- The following addresses had permanent fatal errors -----\n<kunde@example.org>\n",
        sender="Anna Berger <anna@autohaus-muster.example>",
    )
    return [
        Robot("forwarded:arf-attached", "arf", _forward("Fw: Spam complaint", arf())),
        Robot("forwarded:dsn-attached", "dsn", _forward("Fwd: Undelivered Mail Returned to Sender", dsn())),
        Robot("forwarded:arf-inline", "arf", inline_arf),
        Robot("forwarded:bounce-inline", "bounce", inline_bounce),
    ]


def all_robots() -> list[Robot]:
    return [
        *structured(),
        *text_bounces(),
        *vendor_notifications(),
        *list_notices(),
        *challenges(),
        *vacations(),
        *forwarded(),
    ]


def customer_mail_like_a_robot() -> list[bytes]:
    """People who write robot words: still leads."""
    return [
        enquiry(
            subject="Ihre Mail war unzustellbar?",
            body="Hallo, meine letzte Mail kam zurück. Ist der Golf noch da?",
        ),
        enquiry(
            subject="Abwesenheit im Dezember", body="Ich bin im Dezember weg, Probefahrt bitte im Januar."
        ),
        enquiry(
            subject="Bitte bestätigen Sie den Termin", body="Können Sie die Probefahrt am Samstag bestätigen?"
        ),
        enquiry(
            subject="Fwd: Angebot Golf", body="Hallo, ich leite Ihnen das Angebot weiter. Passt der Preis?"
        ),
    ]
