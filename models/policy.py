"""A dealer's configuration in force as one typed, immutable value: the dealer policy.

The configuration is validated once when it is applied (``models.dealer_config``) and stored
as JSON on the dealer's row. Every consumer used to read that JSON back as untyped dicts with
defaults of its own; now one function builds the typed policy from it, once per dealer and
configuration version, and each consumer takes its part: the calendar and the escalation
rules (already parsed), the distribution, the templates, the sources, the autoresponse
window, DKIM, the IMAP mailboxes. Defaults live in the schema only.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy.orm import Session

from models.business_calendar import BusinessCalendar
from models.dealer_config import (
    DealerConfig,
    DistributionConfig,
    DkimConfig,
    ImapConfig,
    SourceConfig,
    TemplateConfig,
)
from models.durations import parse_duration
from models.escalation import EscalationRules
from models.tables import Dealer


@dataclass(frozen=True, eq=False)
class DealerPolicy:
    config: DealerConfig
    # The configuration this policy was built from: when it was applied, and a digest of it.
    version: tuple[datetime, str]

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def sender_name(self) -> str:
        return self.config.sender_name

    @property
    def sender_address(self) -> str:
        return self.config.sender_address

    @property
    def language(self) -> str:
        return self.config.language

    @property
    def country(self) -> str:
        return self.config.country

    @property
    def timezone(self) -> str:
        return self.config.timezone

    @property
    def mailboxes(self) -> Sequence[str]:
        return self.config.mailboxes

    @property
    def forward_to(self) -> Sequence[str]:
        return self.config.forward_to

    @property
    def distribution(self) -> DistributionConfig:
        return self.config.distribution

    @property
    def templates(self) -> Mapping[str, TemplateConfig]:
        return self.config.templates

    @property
    def sources(self) -> Sequence[SourceConfig]:
        return self.config.sources

    @property
    def dkim(self) -> DkimConfig | None:
        return self.config.dkim

    @property
    def imap(self) -> Sequence[ImapConfig]:
        return self.config.imap

    @cached_property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar.from_schema(self.config.timezone, self.config.hours)

    @cached_property
    def escalation(self) -> EscalationRules:
        return EscalationRules.from_schema(self.config.escalation)

    @cached_property
    def delivery_silence_limit(self) -> timedelta | None:
        """Opening hours without a delivered mail before the health verdict raises an issue."""
        limit = self.config.monitoring.silence_limit
        return parse_duration(limit) if limit else None

    def imap_key(self, box: ImapConfig) -> str:
        """The poller's account key of a mailbox (``intake.imap.ImapAccount.key``): its status
        row in ``imap_status`` is found by it."""
        return f"{self.id}:{box.user}@{box.host}:{box.port}"

    def imap_silence_limit(self, box: ImapConfig) -> timedelta:
        return parse_duration(box.silence_limit)

    @cached_property
    def autoresponse_window(self) -> timedelta:
        return parse_duration(self.config.autoresponse_window)

    @cached_property
    def source_rules(self) -> tuple[dict[str, object], ...]:
        """The dealer's source rules in the shape recognition reads (``intake.parsing``)."""
        return tuple({"name": s.name, "from": s.from_, "subject": s.subject} for s in self.config.sources)

    @cached_property
    def legal_footer(self) -> str:
        """The default group's legal footer: it goes on every mail the dealer sends."""
        default = self.config.templates.get("default")
        return (default.legal_footer if default else None) or ""


_CACHE: dict[str, DealerPolicy] = {}
_LOCK = threading.Lock()


def _version(dealer: Dealer) -> tuple[datetime, str]:
    # The digest too: several databases in one process (tests, a migration) may hold a dealer
    # of the same id applied at the same instant with different configurations.
    digest = hashlib.blake2b(json.dumps(dealer.config, sort_keys=True).encode(), digest_size=16).hexdigest()
    return dealer.updated_at, digest


def policy_for(dealer: Dealer) -> DealerPolicy:
    """The dealer's policy, built once per configuration version and shared by every thread."""
    version = _version(dealer)
    with _LOCK:
        cached = _CACHE.get(dealer.id)
        if cached is not None and cached.version == version:
            return cached
    policy = DealerPolicy(config=DealerConfig.model_validate(dealer.config), version=version)
    with _LOCK:
        _CACHE[dealer.id] = policy
    return policy


class UnknownDealer(LookupError):
    pass


def load_policy(session: Session, dealer_id: str) -> DealerPolicy:
    dealer = session.get(Dealer, dealer_id)
    if dealer is None:
        raise UnknownDealer(f"no dealer {dealer_id!r}")
    return policy_for(dealer)
