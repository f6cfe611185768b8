"""Who gets a lead: the dealer's distribution rules as one explainable decision. (Pure.)

Rules are tried in order, first match wins. The chosen method picks among the rule's people
who are active, not absent today (in the dealer's time zone) and below their cap of open
leads. Nobody eligible: the default assignment, then the pool; every step is recorded.

Rotation (``round_robin``, ``weighted``) keeps a credit per person: each lead, every eligible
person earns their share (weight / total weight of the eligible), the one with the most credit
gets the lead and pays 1. Ties go to the order in the configuration. So a stable set rotates
strictly (anna, ben, carla, anna…), weights are met exactly over time, and every person's
count stays within one lead of their exact share even while others come and go; someone
back from an absence does not get a burst of "catch-up" leads, because nobody earns credit
while away. The state is stored per rotation in the database and locked for each decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:  # the schema's types only: a pure rule does not load configuration
    from models.dealer_config import Assignment, Conditions, DistributionConfig


DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Person:
    username: str
    weight: float = 1.0
    max_open: int | None = None
    open_leads: int = 0
    absences: tuple[tuple[date, date], ...] = ()
    active: bool = True

    def absent_on(self, day: date) -> bool:
        return self.absent_until(day) is not None

    def absent_until(self, day: date) -> date | None:
        """The last day of the absences covering ``day`` (overlapping ones: the latest)."""
        return max((end for start, end in self.absences if start <= day <= end), default=None)


def absences_of(spans: Sequence[Mapping[str, str]] | None) -> tuple[tuple[date, date], ...]:
    """A user row's stored absences (``[{"from": ISO, "to": ISO}]``) as date pairs."""
    return tuple((date.fromisoformat(a["from"]), date.fromisoformat(a["to"])) for a in spans or [])


@dataclass(frozen=True)
class LeadFacts:
    source: str = ""
    type: str = "general"
    make: str = ""
    status: str = ""
    mailbox: str = ""
    language: str = ""
    previous_editor: str | None = None


@dataclass
class RotationState:
    turn: int = 0
    credits: dict[str, float] = field(default_factory=dict)


@dataclass
class Decision:
    editor: str | None
    group: str = "default"
    rule: str | None = None  # None: the default assignment (or the owner rule)
    method: str = "pool"
    eligible: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    steps: list[str] = field(default_factory=list)
    rotation_key: str | None = None
    rotation: RotationState | None = None  # the state to store, when a rotation moved

    def explain(self) -> str:
        lines = list(self.steps)
        if self.skipped:
            lines.append("skipped: " + ", ".join(f"{u} ({why})" for u, why in self.skipped.items()))
        lines.append(f"assigned to {self.editor}" if self.editor else "no editor: the lead waits in the pool")
        return "; ".join(lines)

    def as_data(self) -> dict[str, Any]:
        return {
            "editor": self.editor,
            "group": self.group,
            "rule": self.rule,
            "method": self.method,
            "eligible": self.eligible,
            "skipped": self.skipped,
            "steps": self.steps,
            "turn": self.rotation.turn if self.rotation else None,
        }


def rotation_key(rule_index: int | None, assignment: Assignment) -> str:
    where = "default" if rule_index is None else f"rule{rule_index}"
    return f"{where}:{assignment.method}:{','.join(assignment.users)}"


def _in_hours(spec: str, moment: time) -> bool:
    for block in spec.split(","):
        start, _, end = block.strip().partition("-")
        if time.fromisoformat(start) <= moment and (end == "24:00" or moment < time.fromisoformat(end)):
            return True
    return False


def rule_matches(when: Conditions, lead: LeadFacts, local: datetime) -> bool:
    def one_of(key: str, value: str) -> bool:
        wanted = [str(v).lower() for v in getattr(when, key)]
        return not wanted or value.lower() in wanted

    if not (one_of("source", lead.source) and one_of("type", lead.type) and one_of("make", lead.make)):
        return False
    if not (
        one_of("status", lead.status)
        and one_of("mailbox", lead.mailbox)
        and one_of("language", lead.language)
    ):
        return False
    if when.days and DAY_NAMES[local.weekday()] not in when.days:
        return False
    return not (when.hours and not _in_hours(when.hours, local.time()))


def _eligible(
    names: Sequence[str], people: Mapping[str, Person], today: date
) -> tuple[list[str], dict[str, str]]:
    eligible: list[str] = []
    skipped: dict[str, str] = {}
    for name in names:
        person = people.get(name)
        if person is None or not person.active:
            skipped[name] = "no longer a user"
        elif (until := person.absent_until(today)) is not None:
            skipped[name] = f"absent until {until.isoformat()}"
        elif person.max_open is not None and person.open_leads >= person.max_open:
            skipped[name] = f"at the cap of {person.max_open} open leads"
        else:
            eligible.append(name)
    return eligible, skipped


def rotate(
    eligible: Sequence[str], weights: Mapping[str, float], state: RotationState
) -> tuple[str, RotationState]:
    """One turn of the credit rotation (see the module docstring). ``eligible`` is non-empty
    and has a positive total weight."""
    total = sum(weights[n] for n in eligible)
    credits = dict(state.credits)
    for name in eligible:
        credits[name] = credits.get(name, 0.0) + weights[name] / total
    chosen = max(eligible, key=lambda n: (round(credits[n], 9), -eligible.index(n)))
    credits[chosen] -= 1.0
    return chosen, RotationState(turn=state.turn + 1, credits={k: round(v, 9) for k, v in credits.items()})


def _apply(
    assignment: Assignment,
    key: str,
    people: Mapping[str, Person],
    states: Mapping[str, RotationState],
    today: date,
    decision: Decision,
) -> bool:
    """Try one assignment; fill ``decision`` and say whether someone was chosen."""
    method = assignment.method
    decision.method = method
    if method == "pool":
        decision.steps.append("method pool: nobody is assigned")
        return True
    names = list(assignment.users) + ([assignment.user] if assignment.user else [])
    eligible, skipped = _eligible(names, people, today)
    decision.skipped.update(skipped)
    decision.eligible = eligible
    if method == "weighted":
        zero = [n for n in eligible if people[n].weight <= 0]
        for name in zero:
            decision.skipped[name] = "weight 0"
        eligible = [n for n in eligible if n not in zero]
    if not eligible:
        decision.steps.append(f"method {method} over {', '.join(names)}: nobody eligible")
        return False
    decision.steps.append(f"method {method} over {', '.join(eligible)}")
    if method == "user":
        decision.editor = eligible[0]
    elif method == "least_open":
        decision.editor = min(eligible, key=lambda n: (people[n].open_leads, eligible.index(n)))
        decision.steps.append("open leads now: " + ", ".join(f"{n} {people[n].open_leads}" for n in eligible))
    else:
        weights = {n: (people[n].weight if method == "weighted" else 1.0) for n in eligible}
        decision.editor, decision.rotation = rotate(eligible, weights, states.get(key, RotationState()))
        decision.rotation_key = key
        decision.steps.append(f"turn {decision.rotation.turn} of rotation {key!r}")
    return True


def decide(
    lead: LeadFacts,
    people: Mapping[str, Person],
    distribution: DistributionConfig,
    *,
    now: datetime,
    timezone: str,
    states: Mapping[str, RotationState],
) -> Decision:
    local = now.astimezone(ZoneInfo(timezone))
    today = local.date()
    decision = Decision(editor=None)

    if distribution.existing_contacts == "owner" and lead.previous_editor:
        eligible, skipped = _eligible([lead.previous_editor], people, today)
        if eligible:
            decision.editor, decision.method = eligible[0], "owner"
            decision.steps.append(f"returning contact: their previous editor {eligible[0]}")
            return decision
        decision.steps.append(f"returning contact, but {lead.previous_editor} is not available")
        decision.skipped.update(skipped)

    for index, rule in enumerate(distribution.rules):
        if rule_matches(rule.when, lead, local):
            decision.rule, decision.group = rule.name, rule.group
            decision.steps.append(f"rule {rule.name!r} matched")
            if _apply(rule.assign, rotation_key(index, rule.assign), people, states, today, decision):
                return decision
            decision.steps.append("falling back to the default assignment")
            break
    else:
        decision.steps.append("no rule matched: the default assignment")
    default = distribution.default
    if _apply(default, rotation_key(None, default), people, states, today, decision):
        return decision
    decision.method = "pool"
    decision.steps.append("nobody available: the lead waits in the pool")
    return decision


def keys_for(distribution: DistributionConfig) -> list[str]:
    """Every rotation key a decision may touch, for the caller to load beforehand."""
    keys = [rotation_key(i, rule.assign) for i, rule in enumerate(distribution.rules)]
    keys.append(rotation_key(None, distribution.default))
    return sorted(set(keys))
