"""What the parser must know about the dealer and the receiving side of one stored mail:
the dealer's country (phones written without one), its own addresses (mail from them is our
own coming back) and numbers (never the customer's), and the trust established on receipt
(Authentication-Results by our authserv-id, our own DKIM check)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from intake.dkim_check import TxtResolver, verify_dkim

__all__ = ["ReceivingSide", "TxtResolver", "extract_options", "own_addresses", "own_numbers", "trust_for"]
from intake.parsing.authenticity import Trust
from intake.parsing.mime import ParsedMail
from intake.parsing.phones import phones_in_text
from intake.parsing.sources import portal_of
from models.policy import DealerPolicy

# Intakes where we are the receiving server, so the envelope is ours to read.
RECEIVING_VIAS = ("smtp", "lmtp")


@dataclass(frozen=True)
class ReceivingSide:
    """Process settings of the receiving side (``LMS_AUTHSERV_ID``, ``LMS_DKIM_VERIFY``)."""

    authserv_ids: tuple[str, ...] = ()
    verify_dkim: bool = False
    dns_txt: TxtResolver | None = None  # None: the system's DNS (tests pass their own)

    @classmethod
    def from_settings(
        cls, authserv_id: str, dkim_verify: bool, dns_txt: TxtResolver | None = None
    ) -> ReceivingSide:
        ids = tuple(i.strip().lower() for i in authserv_id.split(",") if i.strip())
        return cls(authserv_ids=ids, verify_dkim=dkim_verify, dns_txt=dns_txt)


NOTHING_CONFIGURED = ReceivingSide()


def own_addresses(policy: DealerPolicy) -> frozenset[str]:
    return frozenset([*(m.lower() for m in policy.mailboxes), policy.sender_address.lower()])


@lru_cache(maxsize=256)
def _numbers_in(text: str, region: str) -> frozenset[str]:
    return frozenset(p.e164 for p in phones_in_text(text, region))


def own_numbers(policy: DealerPolicy) -> frozenset[str]:
    """Phone numbers written in the dealer's own blocks (footers, intros): when a customer
    quotes our answer back, those are ours, not theirs."""
    texts: list[str] = []
    for template in policy.templates.values():
        texts += [template.seller_footer or "", template.legal_footer or "", *template.intro.values()]
    return _numbers_in("\n".join(texts), policy.country)


def trust_for(
    parsed: ParsedMail, raw: bytes, via: str, policy: DealerPolicy, receiving: ReceivingSide
) -> Trust:
    ids = receiving.authserv_ids + tuple(i.lower() for i in policy.config.authserv_ids)
    results = None
    # Only a mail that claims a portal needs the (DNS-costly) check, and only we can check
    # what reached our own SMTP intake unchanged.
    if receiving.verify_dkim and via in RECEIVING_VIAS and portal_of(parsed.from_email) is not None:
        results = verify_dkim(raw, receiving.dns_txt)
    return Trust(authserv_ids=ids, dkim_results=results)


def extract_options(
    parsed: ParsedMail,
    raw: bytes,
    via: str,
    envelope_to: tuple[str, ...],
    policy: DealerPolicy,
    receiving: ReceivingSide,
) -> dict[str, Any]:
    return {
        "dealer_sources": policy.source_rules,
        "envelope_to": envelope_to,
        "region": policy.country,
        "own_addresses": own_addresses(policy),
        "own_numbers": own_numbers(policy),
        "trust": trust_for(parsed, raw, via, policy, receiving),
    }


def parse_options(policy: DealerPolicy, authserv_id: str) -> dict[str, Any]:
    """``lms parse --dealer``: the dealer's facts, and the authserv-ids trusted for it (a file
    on disk was not received by us: our own DKIM check does not apply)."""
    receiving = ReceivingSide.from_settings(authserv_id, False)
    ids = receiving.authserv_ids + tuple(i.lower() for i in policy.config.authserv_ids)
    return {
        "rules": policy.source_rules,
        "region": policy.country,
        "own_addresses": own_addresses(policy),
        "trust": Trust(authserv_ids=ids),
    }
