"""Parse throughput: our parse + recognition (mail-parser, stdlib fallback, ADF, forms,
classification) against the bare standard-library parse of the same mixed corpus, in the
same run.

    .venv/bin/python bench/parse_throughput.py [--rounds 7]

The corpus: the public mails of tests/fixtures/corpora, the ADF samples of tests/fixtures/adf
wrapped as text body and as attachment, the non-lead fixtures of tests/fixtures, and
generated portal and web-form enquiries. Prints the median messages per second of each and
the ratio.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import time
from email import message_from_bytes, policy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from intake.parsing.extract import extract  # noqa: E402
from intake.parsing.mime import parse_mail  # noqa: E402
from tests.support.mails import enquiry, html_mail, with_attachment  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


def corpus() -> list[bytes]:
    mails: list[bytes] = []
    for path in sorted((FIXTURES / "corpora").glob("*.jsonl")):
        mails += [
            base64.b64decode(json.loads(line)["raw_b64"]) for line in path.read_text().splitlines() if line
        ]
    for path in sorted((FIXTURES / "adf").glob("*.xml")):
        document = path.read_text()
        mails.append(enquiry(sender="Leads <leads@provider.example>", body=document))
        mails.append(
            with_attachment("lead", document.encode(), filename="lead.xml", maintype="text", subtype="xml")
        )
    mails += [p.read_bytes() for p in sorted((ROOT / "tests" / "fixtures").glob("*.eml"))]
    for n in range(20):
        mails.append(
            enquiry(
                sender="mobile.de <noreply@mobile.de>",
                headers={"Reply-To": f"kunde{n}@example.org"},
                subject=f"Anfrage zu Ihrem Inserat VW Golf {n}",
                body=f"Name: Kunde {n}\nE-Mail: kunde{n}@example.org\nTelefon: 0176 1234{n:04d}\n"
                "Fahrzeug: VW Golf 1.5 TSI\nPreis: 18.900 €\nNachricht:\nIst eine Probefahrt möglich?\n",
            )
        )
        mails.append(
            html_mail(
                f"<table><tr><td>Vorname</td><td>Erika{n}</td></tr><tr><td>E-Mail</td>"
                f"<td>erika{n}@example.org</td></tr><tr><td>Nachricht</td><td>Finanzierung?</td></tr></table>",
                sender="Website <web@autohaus-muster.example>",
            )
        )
    return mails


def ours(mails: list[bytes]) -> None:
    for raw in mails:
        extract(parse_mail(raw), region="DE")  # as ingest calls it: the dealer's country


def stdlib(mails: list[bytes]) -> None:
    for raw in mails:
        message = message_from_bytes(raw, policy=policy.default)
        try:
            str(message["from"])
            str(message["subject"])
            body = message.get_body(("plain", "html"))
            if body is not None:
                body.get_content()
        except Exception:
            pass  # the bare parse gives up on some of the corpus; that is its result


def rate(fn: object, mails: list[bytes]) -> float:
    start = time.perf_counter()
    fn(mails)  # type: ignore[operator]
    return len(mails) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    mails = corpus()
    ours(mails)  # warm up imports and caches of both
    stdlib(mails)
    our_rates, std_rates = [], []
    for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
        std_rates.append(rate(stdlib, mails))
        our_rates.append(rate(ours, mails))
    o, s = statistics.median(our_rates), statistics.median(std_rates)
    print(
        f"corpus: {len(mails)} messages, {sum(map(len, mails)) / 1e6:.1f} MB; median of {args.rounds} rounds"
    )
    print(f"stdlib parse (policy.default):  {s:8.0f} msg/s")
    print(f"lms parse + recognition:        {o:8.0f} msg/s")
    print(f"ratio lms / stdlib:             {o / s:8.2f}")


if __name__ == "__main__":
    main()
