"""The distribution decision, table-driven, with times in the dealer's zone (Europe/Berlin)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from models.dealer_config import DistributionConfig
from models.routing import Decision, LeadFacts, Person, RotationState, decide, keys_for, rotate

DISTRIBUTION_DATA: dict[str, Any] = {
    "existing_contacts": "owner",
    "default": {"method": "round_robin", "users": ["anna", "ben"]},
    "rules": [
        {
            "name": "VIP",
            "when": {"make": ["Porsche"]},
            "assign": {"method": "user", "user": "dora"},
            "group": "vip",
        },
        {
            "name": "Used from portals",
            "when": {"source": ["mobile.de", "AutoScout24"], "status": ["used"]},
            "assign": {"method": "least_open", "users": ["ben", "carla"]},
            "group": "used",
        },
        {
            "name": "Service on weekdays",
            "when": {
                "type": ["service"],
                "days": ["mon", "tue", "wed", "thu", "fri"],
                "hours": "08:00-18:00",
            },
            "assign": {"method": "round_robin", "users": ["anna", "ben"]},
            "group": "service",
        },
        {
            "name": "English",
            "when": {"language": ["en"]},
            "assign": {"method": "weighted", "users": ["anna", "carla"]},
        },
        {
            "name": "Fleet mailbox",
            "when": {"mailbox": ["fleet@leads.example.com"]},
            "assign": {"method": "pool"},
        },
        {
            "name": "Late night",
            "when": {"hours": "22:00-24:00"},
            "assign": {"method": "user", "user": "carla"},
        },
    ],
}
DISTRIBUTION = DistributionConfig.model_validate(DISTRIBUTION_DATA)
ABSENT = ((date(2026, 12, 1), date(2026, 12, 5)),)


def people(**changes: dict[str, Any]) -> dict[str, Person]:
    base = {
        "anna": Person("anna", weight=1, open_leads=3),
        "ben": Person("ben", weight=1, open_leads=1, max_open=5),
        "carla": Person("carla", weight=3, open_leads=0),
        "dora": Person("dora", weight=1, open_leads=2),
    }
    for name, fields in changes.items():
        base[name] = Person(**{**base[name].__dict__, **fields})
    return base


def at(text: str) -> datetime:
    """A UTC instant; Berlin is UTC+1 in winter (CET) and UTC+2 in summer (CEST)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


WEEKDAY_NOON = at("2026-11-27T11:00")  # Friday 12:00 in Berlin


def run(
    facts: LeadFacts,
    crowd: dict[str, Person] | None = None,
    now: datetime = WEEKDAY_NOON,
    states: dict[str, RotationState] | None = None,
) -> Decision:
    return decide(
        facts, crowd or people(), DISTRIBUTION, now=now, timezone="Europe/Berlin", states=states or {}
    )


@pytest.mark.parametrize(
    ("facts", "crowd", "now", "editor", "rule", "group"),
    [
        # each condition
        (LeadFacts(make="Porsche"), None, WEEKDAY_NOON, "dora", "VIP", "vip"),
        (LeadFacts(make="porsche"), None, WEEKDAY_NOON, "dora", "VIP", "vip"),  # case does not matter
        (
            LeadFacts(source="mobile.de", status="used"),
            None,
            WEEKDAY_NOON,
            "carla",
            "Used from portals",
            "used",
        ),
        (LeadFacts(source="mobile.de", status="new"), None, WEEKDAY_NOON, "anna", None, "default"),
        (LeadFacts(type="service"), None, WEEKDAY_NOON, "anna", "Service on weekdays", "service"),
        (LeadFacts(language="en"), None, WEEKDAY_NOON, "carla", "English", "default"),  # weight 3 beats 1
        (LeadFacts(mailbox="fleet@leads.example.com"), None, WEEKDAY_NOON, None, "Fleet mailbox", "default"),
        # the schedule, at the day's boundaries in Berlin time
        (
            LeadFacts(type="service"),
            None,
            at("2026-11-27T16:59:59"),
            "anna",
            "Service on weekdays",
            "service",
        ),
        (LeadFacts(type="service"), None, at("2026-11-27T17:00:00"), "anna", None, "default"),  # 18:00 local
        (
            LeadFacts(type="service"),
            None,
            at("2026-11-27T07:00:00"),
            "anna",
            "Service on weekdays",
            "service",
        ),
        (LeadFacts(type="service"), None, at("2026-11-27T06:59:59"), "anna", None, "default"),  # 07:59 local
        (LeadFacts(type="service"), None, at("2026-11-28T10:00:00"), "anna", None, "default"),  # Saturday
        (
            LeadFacts(type="service"),
            None,
            at("2026-07-03T15:59:00"),
            "anna",
            "Service on weekdays",
            "service",
        ),
        (LeadFacts(type="service"), None, at("2026-07-03T16:00:00"), "anna", None, "default"),  # 18:00 CEST
        (
            LeadFacts(),
            None,
            at("2026-11-27T22:59:59"),
            "carla",
            "Late night",
            "default",
        ),  # 23:59 local, "24:00"
        (LeadFacts(), None, at("2026-11-27T23:00:00"), "anna", None, "default"),  # Saturday 00:00 local
        # absences: dora is away 1 to 5 December, in Berlin dates
        (
            LeadFacts(make="Porsche"),
            people(dora={"absences": ABSENT}),
            at("2026-12-05T22:30"),
            "anna",
            "VIP",
            "vip",
        ),
        (
            LeadFacts(make="Porsche"),
            people(dora={"absences": ABSENT}),
            at("2026-12-05T23:30"),
            "dora",
            "VIP",
            "vip",
        ),
        # caps: ben has fewer open leads but is at his cap
        (
            LeadFacts(source="AutoScout24", status="used"),
            people(ben={"open_leads": 5}, carla={"open_leads": 9}),
            WEEKDAY_NOON,
            "carla",
            "Used from portals",
            "used",
        ),
        # least_open: people with no open leads count
        (
            LeadFacts(source="AutoScout24", status="used"),
            people(carla={"open_leads": 2}),
            WEEKDAY_NOON,
            "ben",
            "Used from portals",
            "used",
        ),
        # fallbacks: nobody in the rule → the default; nobody in the default → the pool
        (
            LeadFacts(source="mobile.de", status="used"),
            people(ben={"absences": ABSENT}, carla={"active": False}),
            at("2026-12-02T10:00"),
            "anna",
            "Used from portals",
            "used",
        ),
        (
            LeadFacts(),
            people(anna={"absences": ABSENT}, ben={"absences": ABSENT}),
            at("2026-12-02T10:00"),
            None,
            None,
            "default",
        ),
    ],
)
def test_decision(
    facts: LeadFacts,
    crowd: dict[str, Person] | None,
    now: datetime,
    editor: str | None,
    rule: str | None,
    group: str,
) -> None:
    decision = run(facts, crowd, now)
    assert decision.editor == editor, decision.explain()
    assert decision.rule == rule
    assert decision.group == group


def test_the_explanation_names_rule_eligible_skipped_and_chosen() -> None:
    decision = run(
        LeadFacts(source="mobile.de", status="used"),
        people(ben={"absences": ABSENT}, carla={"max_open": 1, "open_leads": 1}),
        at("2026-12-02T10:00"),
    )
    text = decision.explain()
    assert "rule 'Used from portals' matched" in text
    assert "ben (absent until 2026-12-05)" in text and "carla (at the cap of 1 open leads)" in text
    assert "falling back to the default assignment" in text
    assert text.endswith("assigned to anna")
    assert decision.as_data()["skipped"] == {
        "ben": "absent until 2026-12-05",
        "carla": "at the cap of 1 open leads",
    }


def test_a_returning_contact_goes_to_the_previous_editor_when_available() -> None:
    assert run(LeadFacts(previous_editor="carla")).editor == "carla"
    assert run(LeadFacts(previous_editor="carla")).method == "owner"
    away = run(LeadFacts(previous_editor="carla"), people(carla={"absences": ABSENT}), at("2026-12-02T10:00"))
    assert away.editor == "anna" and "carla is not available" in away.explain()
    normal = decide(
        LeadFacts(previous_editor="carla"),
        people(),
        DistributionConfig.model_validate({**DISTRIBUTION_DATA, "existing_contacts": "normal"}),
        now=WEEKDAY_NOON,
        timezone="Europe/Berlin",
        states={},
    )
    assert normal.editor == "anna"


def test_round_robin_rotates_strictly_and_skips_the_absent_without_losing_their_place() -> None:
    key = keys_for(DISTRIBUTION)[0]
    state = RotationState()
    crowd = people(ben={"max_open": None})
    order = []
    for day in (1, 1, 1, 2, 2, 2):  # ben is absent on 2 December
        now = at(f"2026-12-0{day}T10:00") if day == 2 else at("2026-11-30T10:00")
        crowd_today = people(ben={"absences": ((date(2026, 12, 2), date(2026, 12, 2)),), "max_open": None})
        decision = run(LeadFacts(), crowd_today if day == 2 else crowd, now, {key: state})
        assert decision.rotation_key == key and decision.rotation is not None
        state = decision.rotation
        order.append(decision.editor)
    assert order == ["anna", "ben", "anna", "anna", "anna", "anna"]
    assert state.turn == 6
    # ben is back: no burst of catch-up leads, he just takes his turns again
    back = []
    for _ in range(4):
        decision = run(LeadFacts(), crowd, at("2026-12-03T10:00"), {key: state})
        assert decision.rotation is not None
        state = decision.rotation
        back.append(decision.editor)
    assert sorted(back) == ["anna", "anna", "ben", "ben"]


def test_weight_zero_gets_nothing_under_weighted() -> None:
    distribution = DistributionConfig.model_validate(
        {"default": {"method": "weighted", "users": ["anna", "dora"]}}
    )
    decision = decide(
        LeadFacts(),
        people(dora={"weight": 0}),
        distribution,
        now=WEEKDAY_NOON,
        timezone="Europe/Berlin",
        states={},
    )
    assert decision.editor == "anna" and decision.skipped == {"dora": "weight 0"}


def test_fairness_1000_leads_weights_1_1_2_0_one_absent_for_a_day() -> None:
    """Every count within one lead of its exact share: the sum, over all leads, of the
    person's weight divided by the total weight of those eligible for that lead."""
    weights = {"anna": 1.0, "ben": 1.0, "carla": 2.0, "dora": 0.0}
    distribution = DistributionConfig.model_validate(
        {"default": {"method": "weighted", "users": list(weights)}}
    )
    key = keys_for(distribution)[0]
    ben_away = ((date(2026, 12, 3), date(2026, 12, 3)),)
    crowd = {n: Person(n, weight=w, absences=ben_away if n == "ben" else ()) for n, w in weights.items()}
    state = RotationState()
    counts = dict.fromkeys(weights, 0)
    exact = dict.fromkeys(weights, 0.0)
    for index in range(1000):
        now = at(f"2026-12-{1 + index // 100:02d}T{8 + (index % 100) // 10:02d}:{(index % 10) * 5:02d}")
        decision = decide(
            LeadFacts(), crowd, distribution, now=now, timezone="Europe/Berlin", states={key: state}
        )
        assert decision.rotation is not None and decision.editor is not None
        state = decision.rotation
        counts[decision.editor] += 1
        present = [n for n in weights if weights[n] > 0 and not crowd[n].absent_on(now.date())]
        for name in present:
            exact[name] += weights[name] / sum(weights[p] for p in present)
    assert sum(counts.values()) == 1000 and counts["dora"] == 0
    for name in weights:
        assert abs(counts[name] - exact[name]) <= 1, (name, counts, exact)
    assert state.turn == 1000


def test_rotate_breaks_ties_by_configuration_order() -> None:
    chosen, state = rotate(["ben", "anna"], {"ben": 1.0, "anna": 1.0}, RotationState())
    assert chosen == "ben" and state.credits == {"ben": -0.5, "anna": 0.5}
