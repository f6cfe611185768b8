"""Is a mail that claims to come from a portal really from it? (Pure, RFC 8601 / RFC 6376.)

Trusted evidence is only what our side established:

- the *topmost* ``Authentication-Results`` header, and only if its authserv-id is one we
  configured (our receiving server writes it above everything the sender wrote; a result a
  sender forged, or another server's, is ignored, RFC 8601 §5), showing ``dkim=pass`` with a
  signing domain of the portal, or ``dmarc=pass`` for a From in the portal's domain;
- DKIM signatures we verified ourselves when we were the receiving server.

Verdicts: ``verified``; ``unverified`` (verification is configured and gave no pass: a
spoofed portal mail is then a plain mail enquiry); ``not_checked`` (nothing is configured:
the portal is recognised by its exact domain, and the lead says "sender not verified").
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from intake.parsing.mime import ParsedMail

State = Literal["verified", "unverified", "not_checked"]


@dataclass(frozen=True)
class DkimResult:
    domain: str  # the d= of the signature, lower case
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Trust:
    """What the receiving side established or may be believed about a mail."""

    authserv_ids: tuple[str, ...] = ()
    # Our own DKIM verification; None when we did not verify (not the receiving server).
    dkim_results: tuple[DkimResult, ...] | None = None

    @property
    def configured(self) -> bool:
        return bool(self.authserv_ids) or self.dkim_results is not None


@dataclass(frozen=True)
class Verdict:
    state: State
    detail: str


@dataclass
class AuthResults:
    authserv_id: str
    results: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)  # method, result, props


_COMMENT = re.compile(r"\((?:[^()\\]|\\.)*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_.-]+)(?:/\d+)?\s*=\s*([a-z]+)\b(.*)$", re.I | re.S)
_PROP = re.compile(r"([a-z0-9_-]+)\.([a-z0-9_.-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)", re.I)


def _uncomment(value: str) -> str:
    previous = None
    while previous != value:  # nested comments, innermost first
        previous, value = value, _COMMENT.sub(" ", value)
    return value


def parse_authentication_results(value: str) -> AuthResults:
    """``authserv-id [version] ; method=result ptype.property=value … ; …`` (RFC 8601 §2.2)."""
    parts = _uncomment(value).split(";")
    head = parts[0].split()
    parsed = AuthResults(authserv_id=head[0].lower().rstrip(".") if head else "")
    for part in parts[1:]:
        match = _RESULT.match(part)
        if not match:
            continue
        props = {f"{p}.{k}".lower(): v.strip('"').lower() for p, k, v in _PROP.findall(match.group(3))}
        parsed.results.append((match.group(1).lower(), match.group(2).lower(), props))
    return parsed


def _in_domains(domain: str, domains: Sequence[str]) -> bool:
    domain = domain.lower().strip().lstrip("@").rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in domains)


def sender_verdict(parsed: ParsedMail, domains: Sequence[str], trust: Trust | None) -> Verdict:
    """Is a mail claiming one of ``domains`` (the portal's) authentic, by ``trust``?"""
    if trust is None or not trust.configured:
        return Verdict(
            "not_checked", "sender not verified: no Authentication-Results or DKIM check configured"
        )
    for checked in trust.dkim_results or ():
        if checked.passed and _in_domains(checked.domain, domains):
            return Verdict("verified", f"DKIM signature of {checked.domain} verified on receipt")
    values = parsed.raw_headers.get("authentication-results", [])
    why = "no DKIM or DMARC pass for " + ", ".join(domains[:2])
    if trust.authserv_ids:
        if not values:
            why = "no Authentication-Results header from our receiving server"
        else:
            topmost = parse_authentication_results(values[0])
            if topmost.authserv_id not in trust.authserv_ids:
                by = topmost.authserv_id or "?"
                why = f"the topmost Authentication-Results is by {by}, not by our server"
            else:
                for method, result, props in topmost.results:
                    if result != "pass":
                        continue
                    if method == "dkim" and (
                        _in_domains(props.get("header.d", ""), domains)
                        or _in_domains(props.get("header.i", "").partition("@")[2], domains)
                    ):
                        return Verdict(
                            "verified", f"{topmost.authserv_id}: dkim=pass header.d={props.get('header.d')}"
                        )
                    if method == "dmarc" and _in_domains(props.get("header.from", ""), domains):
                        return Verdict(
                            "verified",
                            f"{topmost.authserv_id}: dmarc=pass header.from={props.get('header.from')}",
                        )
                found = ", ".join(f"{m}={r}" for m, r, _ in topmost.results) or "no results"
                why = f"{topmost.authserv_id} found no pass for {domains[0]} ({found})"
    elif trust.dkim_results is not None:
        failed = [r for r in trust.dkim_results if _in_domains(r.domain, domains)]
        why = failed[0].detail if failed else f"no DKIM signature of {domains[0]}"
    return Verdict("unverified", f"unverified sender: {why}")
