"""Where an enquiry comes from: the dealer's own rules first, then the built-in portals. (Pure.)

A portal is recognised by the exact domain of the sender (or a subdomain of it), never by a
substring: ``mobile.de.example.com`` or ``rnobile.de`` are not mobile.de, and a mail from such
a look-alike is treated as a mail from whoever it says it is.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Portal:
    name: str
    domains: tuple[str, ...]


PORTALS = (
    Portal("mobile.de", ("mobile.de",)),
    Portal(
        "AutoScout24",
        tuple(f"autoscout24.{tld}" for tld in ("de", "com", "at", "ch", "it", "nl", "be", "fr", "es", "lu")),
    ),
)

_ALERT_SUBJECT = re.compile(
    r"(suchauftrag|gespeicherte suche|neue (fahrzeuge|angebote|treffer) f(ü|ue)r|preissenkung|"
    r"saved search|new (listings|vehicles|matches) for|price drop|ricerca salvata|zoekopdracht)",
    re.I,
)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def portal_of(address: str) -> Portal | None:
    domain = domain_of(address)
    for portal in PORTALS:
        if any(domain == d or domain.endswith("." + d) for d in portal.domains):
            return portal
    return None


def is_saved_search_alert(sender: str, subject: str) -> bool:
    return portal_of(sender) is not None and bool(_ALERT_SUBJECT.search(subject))


def _matches(patterns: Sequence[str], value: str) -> bool:
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def dealer_source(rules: Sequence[dict[str, Any]], *, sender: str, subject: str) -> str | None:
    """The first ``[[dealers.sources]]`` entry whose patterns match (each given list must match)."""
    for rule in rules:
        senders = rule.get("from") or []
        subjects = rule.get("subject") or []
        if not senders and not subjects:
            continue
        if senders and not _matches(senders, sender):
            continue
        if subjects and not _matches(subjects, subject):
            continue
        return str(rule["name"])
    return None
