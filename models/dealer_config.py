"""The dealer configuration file (INTERFACE.md "Dealer configuration"): schema and validation.

Every section is strict: an unknown key is an error with its full path, because a
misspelled key silently ignored is a rule that silently does not apply.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from models.durations import parse_duration
from models.vocabulary import LEAD_TYPES

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
HOURS_BLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)$")


class ConfigError(Exception):
    """A refused configuration: ``key`` is the path in the file, ``reason`` says why."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}" if key else reason)
        self.key = key
        self.reason = reason


def _email(value: str) -> str:
    if not EMAIL.match(value):
        raise ValueError(f"{value!r} is not an email address")
    return value.strip().lower()


def _slug(value: str) -> str:
    if not SLUG.match(value):
        raise ValueError(f"{value!r} must be a lower-case slug (letters, digits, - _ .)")
    return value


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Email = Annotated[str, AfterValidator(_email)]
Slug = Annotated[str, AfterValidator(_slug)]
Duration = Annotated[str, AfterValidator(_duration)]


class Strict(BaseModel):
    # Frozen: the configuration in force is shared by every worker thread through the
    # dealer policy cache (models.policy); nobody may change it behind the others' backs.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class DateRange(Strict):
    from_: date = Field(alias="from")
    to: date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.to < self.from_:
            raise ValueError("'to' is before 'from'")
        return self


class UserConfig(Strict):
    id: Slug
    name: str = Field(min_length=1)
    email: Email
    role: Literal["seller", "supervisor", "admin"] = "seller"
    supervisor: str | None = None
    weight: float = Field(default=1.0, ge=0)
    max_open: int | None = Field(default=None, ge=0)
    absent: list[DateRange] = []
    # The weekly summary mail (supervisors and admins); the person may change it in the pane.
    weekly_summary: bool = True


class SourceConfig(Strict):
    name: str = Field(min_length=1)
    from_: list[str] = Field(default=[], alias="from")
    subject: list[str] = []


class Assignment(Strict):
    method: Literal["user", "round_robin", "weighted", "least_open", "pool"]
    users: list[str] = []
    user: str | None = None


DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Conditions(Strict):
    """Every given condition must hold; a list matches when the lead's value is in it."""

    source: list[str] = []
    type: list[str] = []
    make: list[str] = []
    status: list[Literal["new", "used", "other"]] = []
    mailbox: list[Email] = []
    language: list[str] = []
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = []
    hours: str | None = None  # "08:00-18:00" in the dealer's time zone

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            for block in value.split(","):
                block = block.strip()
                if not HOURS_BLOCK.match(block) or block[:5] >= block[6:]:
                    raise ValueError(f'{block!r} is no time range like "08:00-18:00"')
        return value

    @field_validator("type")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in LEAD_TYPES:
                raise ValueError(f"unknown lead type {item!r} (one of {', '.join(LEAD_TYPES)})")
        return value


class RuleConfig(Strict):
    name: str = Field(min_length=1)
    when: Conditions = Conditions()
    assign: Assignment
    group: str = "default"


class DistributionConfig(Strict):
    existing_contacts: Literal["owner", "normal"] = "owner"
    default: Assignment = Assignment(method="pool")
    rules: list[RuleConfig] = []


class HoursConfig(Strict):
    mon: str | None = None
    tue: str | None = None
    wed: str | None = None
    thu: str | None = None
    fri: str | None = None
    sat: str | None = None
    sun: str | None = None
    holidays: str | None = None
    closed: list[date] = []

    @field_validator("holidays")
    @classmethod
    def _holidays(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import holidays as holidays_lib

        country, _, subdivision = value.partition("-")
        try:
            holidays_lib.country_holidays(country, subdiv=subdivision or None, years=2026)
        except NotImplementedError:
            raise ValueError(f'{value!r}: unknown country or subdivision (e.g. "DE-BY")') from None
        return value

    @field_validator("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    @classmethod
    def _blocks(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for block in value.split(","):
            block = block.strip()
            if not HOURS_BLOCK.match(block) or block[:5] >= block[6:]:
                raise ValueError(f'{block!r} is no opening block like "08:00-18:00"')
        return value


class EscalationConfig(Strict):
    stage1: Duration = "2h"
    reminder: Duration = "30m"
    stage2: Duration = "4h"
    stage2_resubmission: Duration = "24h"
    stage2_action: Literal["inform", "pool", "supervisor"] = "inform"


class RetentionConfig(Strict):
    """How long the dealer keeps personal data (GDPR Art. 5(1)(e)); unset: kept until erased."""

    # A completed lead's personal content is anonymised this long after its completion (and
    # its contact, once none of the contact's leads is open or younger).
    completed_leads: Duration | None = None
    # Raw mails (received and sent) lose their bytes after this long; rows and states stay.
    raw_mails: Duration | None = None


class TemplateConfig(Strict):
    header_image: str | None = None
    subject: dict[str, str] = {}
    intro: dict[str, str] = {}
    seller_footer: str | None = None
    legal_footer: str | None = None
    attachments: list[str] = []


class DkimConfig(Strict):
    selector: str = Field(min_length=1)
    domain: str = Field(min_length=3)
    key_file: str  # PEM private key; the DNS record <selector>._domainkey.<domain> holds the public key


class OAuthConfig(Strict):
    """An OAuth2 client registered at the mail provider (README "IMAP intake: OAuth2").

    The endpoints default to the provider's documented ones; they are settings so a test (or
    a sovereign cloud) can point them elsewhere. The refresh token is never here: it lives
    encrypted in the database (``lms imap connect``)."""

    provider: Literal["microsoft", "google", "generic"]
    client_id: str = Field(min_length=1)
    client_secret: str | None = None
    client_secret_env: str | None = None
    tenant: str | None = None  # Microsoft: tenant id or domain; default "organizations"
    scopes: list[str] | None = None  # default: the provider's IMAP + SMTP scopes
    device_endpoint: str | None = None
    token_endpoint: str | None = None
    authorize_endpoint: str | None = None
    redirect_uri: str = "http://localhost"  # for --auth-code; the web pane passes its own

    @model_validator(mode="after")
    def _consistent(self) -> OAuthConfig:
        if self.client_secret is not None and self.client_secret_env is not None:
            raise ValueError("give at most one of 'client_secret' and 'client_secret_env'")
        if self.tenant is not None and self.provider != "microsoft":
            raise ValueError("'tenant' is for provider = \"microsoft\" only")
        if self.provider == "generic" and not self.token_endpoint:
            raise ValueError("provider = \"generic\" needs 'token_endpoint'")
        if self.provider == "generic" and not (self.device_endpoint or self.authorize_endpoint):
            raise ValueError("provider = \"generic\" needs 'device_endpoint' or 'authorize_endpoint'")
        for name in ("device_endpoint", "token_endpoint", "authorize_endpoint"):
            url = getattr(self, name)
            if url is not None and not _https_or_loopback(url):
                raise ValueError(f"{name} must be an https:// URL (http:// only on loopback)")
        return self


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _https_or_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and bool(parts.hostname) and is_loopback(parts.hostname or "")


class ImapConfig(Strict):
    host: str
    port: int = Field(default=993, gt=0, lt=65536)
    # tls: implicit TLS (port 993); starttls: upgrade on 143 and refuse to go on without it;
    # none: clear text, refused for anything but loopback.
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: str | None = None  # PEM bundle of a private CA; default: the system trust store
    user: str
    auth: Literal["password", "xoauth2"] = "password"
    password: str | None = None
    password_env: str | None = None
    oauth: OAuthConfig | None = None
    folder: str = "INBOX"
    after: Literal["flag", "move"] = "flag"
    move_to: str | None = None
    poll_seconds: float = Field(default=60, gt=0)  # when the server has no IDLE
    # Health (issue 14): an issue when no poll of this mailbox succeeded for this long.
    silence_limit: Duration = "1h"

    @model_validator(mode="after")
    def _consistent(self) -> ImapConfig:
        if self.auth == "password":
            if (self.password is None) == (self.password_env is None):
                raise ValueError("give exactly one of 'password' and 'password_env'")
            if self.oauth is not None:
                raise ValueError("'oauth' needs auth = \"xoauth2\"")
        else:
            if self.password is not None or self.password_env is not None:
                raise ValueError("auth = \"xoauth2\" takes no password: the token comes from 'oauth'")
            if self.oauth is None:
                raise ValueError("auth = \"xoauth2\" needs an [oauth] table (provider, client_id)")
        if self.after == "move" and not self.move_to:
            raise ValueError("after = \"move\" needs 'move_to'")
        if self.security == "none" and not is_loopback(self.host):
            raise ValueError(
                f"security = \"none\" sends the password in clear: refused for {self.host!r} "
                "(only loopback hosts); use \"tls\" or \"starttls\""
            )
        if self.security == "none" and self.ca_file is not None:
            raise ValueError("'ca_file' makes no sense with security = \"none\"")
        return self


WebhookEvent = Literal["lead.created", "lead.assigned", "lead.answered", "lead.completed", "lead.escalated"]
WEBHOOK_EVENTS: tuple[str, ...] = get_args(WebhookEvent)


class WebhookConfig(Strict):
    """A dealer system that takes each lead event as signed JSON (or ADF/XML): README "Webhooks"."""

    url: str
    name: str | None = None  # stable name of the subscription; default: the URL
    events: list[WebhookEvent] = Field(min_length=1)
    secret: str | None = None
    secret_env: str | None = None
    format: Literal["json", "adf"] = "json"

    @model_validator(mode="after")
    def _consistent(self) -> WebhookConfig:
        if not _https_or_loopback(self.url):
            raise ValueError(f"{self.url!r}: a webhook URL must be https:// (http:// only on loopback)")
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError("give exactly one of 'secret' and 'secret_env'")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("the secret is too short to sign with (at least 16 characters)")
        if len(set(self.events)) != len(self.events):
            raise ValueError("an event is named twice")
        return self

    @property
    def key(self) -> str:
        return self.name or self.url


class LeadFloor(Strict):
    """At least ``count`` leads between ``hours`` (the dealer's time) on ``days``, counted when
    the window has closed; fewer is a health issue (the silence alarm)."""

    count: int = Field(ge=1)
    hours: str = "09:00-18:00"
    # "working": the dealer's opening days (holidays and closed days excluded); or named days.
    days: Literal["working"] | list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = "working"

    @field_validator("hours")
    @classmethod
    def _window(cls, value: str) -> str:
        if not HOURS_BLOCK.match(value) or value[:5] >= value[6:]:
            raise ValueError(f'{value!r} is no window like "09:00-18:00"')
        return value


class ExpectationConfig(Strict):
    """The learnt expectation: leads in the same weekday and hour over the last ``weeks`` weeks;
    fewer than ``ratio`` × their mean over the last ``window`` hours is a health issue, when
    the mean says at least ``min_expected`` leads were to come (quiet dealers stay quiet)."""

    weeks: int = Field(default=4, ge=1, le=26)
    window: Duration = "3h"
    ratio: float = Field(default=0.3, gt=0, le=1)
    min_expected: float = Field(default=3.0, gt=0)


class ProbeConfig(Strict):
    """The end-to-end probe (``lms ops probe``; periodic when ``every`` is set)."""

    # "smtp": to our own SMTP listener; "imap": appended to the dealer's IMAP mailbox ``mailbox``.
    via: Literal["smtp", "imap"] = "smtp"
    mailbox: str | None = None  # the [[dealers.imap]] entry (its user) for via = "imap"
    every: Duration | None = None
    timeout: Duration = "2m"


class MonitoringConfig(Strict):
    """What the health verdict expects of this dealer (``lms ops health``)."""

    # No mail delivered to the dealer (SMTP, LMTP, the pipe) for this long in its opening hours
    # is an issue; unset: no limit. IMAP mailboxes have their own ``silence_limit``.
    silence_limit: Duration | None = None
    min_leads: list[LeadFloor] = []
    expectation: ExpectationConfig | None = None
    probe: ProbeConfig | None = None


class ReportsConfig(Strict):
    # Completion reasons that say the customer was reached: completing a lead with one of them
    # before any reply counts as its first answer (models.response_facts).
    answered_reasons: list[Slug] = ["sold", "bought_elsewhere", "no_interest"]
    weekly_summary: bool = True  # the weekly summary mail of the dealer at all


class CompletionReasonConfig(Strict):
    code: Slug
    label: str = Field(min_length=1)
    hidden: bool = False


class DealerConfig(Strict):
    id: Slug
    name: str = Field(min_length=1)
    mailboxes: list[Email] = Field(min_length=1)
    forward_to: list[Email] = []
    from_name: str | None = None
    from_address: Email | None = None
    timezone: str = "Europe/Berlin"
    language: Literal["de", "en"] = "de"
    country: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    hours: HoursConfig = HoursConfig()
    escalation: EscalationConfig = EscalationConfig()
    users: list[UserConfig] = []
    sources: list[SourceConfig] = []
    distribution: DistributionConfig = DistributionConfig()
    templates: dict[str, TemplateConfig] = {}
    # At most one autoresponse per recipient address in this window (RFC 3834 §2).
    autoresponse_window: Duration = "24h"
    dkim: DkimConfig | None = None
    # Authentication-Results authserv-ids trusted for this dealer's mail besides LMS_AUTHSERV_ID
    # (e.g. the mail provider of a polled IMAP mailbox).
    authserv_ids: list[str] = []
    imap: list[ImapConfig] = []
    completion_reasons: list[CompletionReasonConfig] = []
    retention: RetentionConfig = RetentionConfig()
    webhooks: list[WebhookConfig] = []
    reports: ReportsConfig = ReportsConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'{value!r} is no IANA time zone such as "Europe/Berlin"') from None
        return value

    @model_validator(mode="after")
    def _probe_mailbox(self) -> DealerConfig:
        """A probe via IMAP appends to one of the dealer's own polled mailboxes: that one must
        exist (named by its user; unnamed only when there is exactly one)."""
        probe = self.monitoring.probe
        if probe is None or probe.via != "imap":
            return self
        users = [box.user for box in self.imap]
        if probe.mailbox is None and len(users) != 1:
            raise ValueError(
                "monitoring.probe: via = \"imap\" needs 'mailbox', the user of a [[dealers.imap]] entry"
            )
        if probe.mailbox is not None and probe.mailbox not in users:
            raise ValueError(
                f"monitoring.probe.mailbox: no [[dealers.imap]] entry with user {probe.mailbox!r}"
            )
        return self

    @property
    def sender_name(self) -> str:
        return self.from_name or self.name

    @property
    def sender_address(self) -> str:
        return self.from_address or self.mailboxes[0]


class FileConfig(Strict):
    dealers: list[DealerConfig] = []


def _loc_to_key(loc: tuple[int | str, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += ("." if key else "") + str(part).rstrip("_")
    return key


def _check_references(config: FileConfig) -> None:
    """Rules across keys that the per-field schema cannot see."""
    seen_dealers: set[str] = set()
    seen_mailboxes: dict[str, str] = {}
    for d_index, dealer in enumerate(config.dealers):
        where = f"dealers[{d_index}]"
        for u_index, user in enumerate(dealer.users):
            if user.role == "seller" and not user.supervisor:
                raise ConfigError(f"{where}.users[{u_index}].supervisor", "a seller needs a supervisor")
        if dealer.id in seen_dealers:
            raise ConfigError(f"{where}.id", f"dealer {dealer.id!r} appears twice")
        seen_dealers.add(dealer.id)
        for m_index, mailbox in enumerate(dealer.mailboxes):
            if mailbox in seen_mailboxes:
                raise ConfigError(
                    f"{where}.mailboxes[{m_index}]",
                    f"{mailbox} already belongs to dealer {seen_mailboxes[mailbox]!r}",
                )
            seen_mailboxes[mailbox] = dealer.id
        users = {u.id: u for u in dealer.users}
        if len(users) != len(dealer.users):
            raise ConfigError(f"{where}.users", "a user id appears twice")
        for u_index, user in enumerate(dealer.users):
            if user.supervisor is not None and user.supervisor not in users:
                raise ConfigError(
                    f"{where}.users[{u_index}].supervisor",
                    f"unknown user {user.supervisor!r}",
                )
        hooks: set[str] = set()
        for w_index, hook in enumerate(dealer.webhooks):
            if hook.key in hooks:
                raise ConfigError(f"{where}.webhooks[{w_index}]", f"webhook {hook.key!r} appears twice")
            hooks.add(hook.key)
        assignments = [("distribution.default", dealer.distribution.default)] + [
            (f"distribution.rules[{i}].assign", rule.assign)
            for i, rule in enumerate(dealer.distribution.rules)
        ]
        for path, assignment in assignments:
            named = list(assignment.users) + ([assignment.user] if assignment.user else [])
            for name in named:
                if name not in users:
                    raise ConfigError(f"{where}.{path}.users", f"unknown user {name!r}")
            if assignment.method not in ("pool",) and not named:
                raise ConfigError(f"{where}.{path}", f"method {assignment.method!r} names no user")
            if assignment.method == "user" and len(named) != 1:
                raise ConfigError(f"{where}.{path}", 'method "user" names exactly one user')


def validate_config(data: dict[str, Any]) -> FileConfig:
    try:
        config = FileConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            reason = "unknown key"
        raise ConfigError(_loc_to_key(first["loc"]), reason) from None
    _check_references(config)
    return config


def _resolve_files(config: FileConfig, base: Path) -> FileConfig:
    """Make template and key files absolute (relative to the configuration file) and check
    that each can be read now, so a typo is refused here and not at the first lead."""

    def resolve(key: str, value: str) -> str:
        path = Path(value).expanduser()
        if not path.is_absolute():
            # Relative to the configuration file; else to the working directory, as
            # INTERFACE.md's example ("examples/header.png") is written.
            path = base / path if (base / path).exists() else Path.cwd() / path
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(key, f"cannot read {path}: {exc.strerror or exc}") from None
        return str(path.resolve())

    dealers = []
    for d_index, dealer in enumerate(config.dealers):
        templates = {}
        for group, template in dealer.templates.items():
            where = f"dealers[{d_index}].templates.{group}"
            image = template.header_image
            templates[group] = template.model_copy(
                update={
                    "header_image": resolve(f"{where}.header_image", image) if image else None,
                    "attachments": [
                        resolve(f"{where}.attachments[{i}]", a) for i, a in enumerate(template.attachments)
                    ],
                }
            )
        update: dict[str, Any] = {"templates": templates}
        if dealer.dkim:
            key_file = resolve(f"dealers[{d_index}].dkim.key_file", dealer.dkim.key_file)
            update["dkim"] = dealer.dkim.model_copy(update={"key_file": key_file})
        update["imap"] = [
            box.model_copy(update={"ca_file": resolve(f"dealers[{d_index}].imap[{i}].ca_file", box.ca_file)})
            if box.ca_file
            else box
            for i, box in enumerate(dealer.imap)
        ]
        dealers.append(dealer.model_copy(update=update))
    return config.model_copy(update={"dealers": dealers})


def load_config_file(path: str | Path) -> FileConfig:
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("", f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("", f"{path}: not valid TOML ({exc})") from None
    return _resolve_files(validate_config(data), Path(path).resolve().parent)


SECRET = "********"


def redacted(dealer: dict[str, Any]) -> dict[str, Any]:
    """The dealer configuration without secrets, for display."""
    copy = dict(dealer)
    boxes = []
    for box in dealer.get("imap", []):
        shown = dict(box)
        if shown.get("password") is not None:
            shown["password"] = SECRET
        if isinstance(shown.get("oauth"), dict) and shown["oauth"].get("client_secret") is not None:
            shown["oauth"] = {**shown["oauth"], "client_secret": SECRET}
        boxes.append(shown)
    copy["imap"] = boxes
    copy["webhooks"] = [
        {**hook, "secret": SECRET} if hook.get("secret") is not None else dict(hook)
        for hook in dealer.get("webhooks", [])
    ]
    return copy
