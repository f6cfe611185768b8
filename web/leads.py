"""The leads list and one lead: pages, fragments for htmx, and the lead actions."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from intake.parsing.mime import parse_mail
from models.lead_scope import LeadScope
from models.lead_views import count, lead_dict, lead_query, list_leads
from models.privacy_tables import AuditEntry
from models.routing import Person, absences_of
from models.tables import CompletionReason, Contact, InboundMessage, Lead, LeadActivity, Source, User
from models.vocabulary import LEAD_TYPES
from web.auth import form_of
from web.context import ctx_of
from web.i18n import Translator
from web.mail_view import attachment_download, attachment_list, html_document
from web.render import is_htmx, render
from web.scope import dealer_users, parse_id, scope_of, user_of, visible_lead
from workers import lead_actions as actions
from workers import privacy

PAGE_SIZE = 50
VIEWS = ("all", "my", "pool", "soon", "overdue", "completed")
FILTERS = ("q", "type", "source", "editor", "status", "due", "sort")


def view_filters(view: str, scope: LeadScope) -> dict[str, str]:
    return {
        "all": {"status": "open"},
        "my": {"editor": scope.username, "status": "open"},
        "pool": {"editor": "-", "status": "open"},
        "soon": {"due": "soon"},
        "overdue": {"due": "overdue"},
        "completed": {"status": "completed"},
    }.get(view, {"status": "open"})


@dataclass(frozen=True)
class ListParams:
    view: str
    filters: dict[str, str]  # the effective filters (the view's, overridden by the form's)
    page: int

    @classmethod
    def parse(cls, request: Request, scope: LeadScope) -> ListParams:
        params = request.query_params
        view = params.get("view", "all")
        view = view if view in VIEWS else "all"
        filters = view_filters(view, scope)
        for key in FILTERS:
            if key in params:
                filters[key] = params[key].strip()[:200]
        if filters.get("type") and filters["type"] not in LEAD_TYPES:
            filters["type"] = ""
        if filters.get("status") not in (None, "", "open", "completed"):
            filters["status"] = ""
        if filters.get("due") not in (None, "", "none", "soon", "overdue"):
            filters["due"] = ""
        if filters.get("sort") not in (None, "", "activity", "due"):
            filters["sort"] = ""
        raw_page = params.get("page", "1")
        page = int(raw_page) if raw_page.isdigit() and 0 < len(raw_page) < 7 else 1
        return cls(view=view, filters={k: v for k, v in filters.items() if v}, page=max(page, 1))

    @property
    def query_args(self) -> dict[str, Any]:
        f = self.filters
        return {
            "search": f.get("q"),
            "type_": f.get("type"),
            "source": f.get("source"),
            "editor": f.get("editor"),
            "status": f.get("status"),
            "due": f.get("due"),
            "sort": f.get("sort") or "activity",
        }

    @property
    def url_params(self) -> dict[str, Any]:
        """What the URL carries: the view and every filter the form shows (so a reload, a
        bookmark or the poller asks for exactly this list)."""
        return {"view": self.view, **{k: self.filters.get(k, "") for k in FILTERS}}


def change_stamp(session: Session, scope: LeadScope, now: datetime) -> str:
    """Changes whenever a lead in the person's scope arrives, changes or leaves it (every action
    moves ``last_activity_at``; leaving changes the open count), and every minute (due states
    move with the clock). The poller gets 204 while it stays the same. Index lookups only:
    (dealer, status, last activity)."""
    open_count, open_latest = session.execute(
        select(func.count(), func.max(Lead.last_activity_at)).where(scope.clause(), Lead.status == "open")
    ).one()
    done_latest = session.scalar(
        select(func.max(Lead.last_activity_at)).where(scope.clause(), Lead.status == "completed")
    )
    seed = f"{open_count}|{open_latest}|{done_latest}|{int(now.timestamp() // 60)}"
    return hashlib.sha256(seed.encode()).hexdigest()[:16]


def list_context(
    session: Session, scope: LeadScope, params: ListParams, now: datetime, stamp: str | None = None
) -> dict[str, Any]:
    """The list page's data; ``stamp``: the change stamp when the caller computed it already."""
    page = list_leads(
        session,
        now=now,
        scope=scope,
        limit=PAGE_SIZE,
        offset=(params.page - 1) * PAGE_SIZE,
        **params.query_args,
    )
    users = {u.username: u for u in dealer_users(session, scope)}
    counts = {
        view: count(session, lead_query(session, now=now, scope=scope, **_args(view_filters(view, scope))))
        for view in VIEWS
    }
    sources = list(
        session.scalars(select(Source.name).where(Source.dealer_id == scope.dealer_id).order_by(Source.name))
    )
    return {
        "leads": page["leads"],
        "total": page["total"],
        "params": params,
        "counts": counts,
        "users": users,
        "sources": sources,
        "types": LEAD_TYPES,
        "stamp": stamp or change_stamp(session, scope, now),
        "now": now,
        "page_size": PAGE_SIZE,
    }


def _args(filters: dict[str, str]) -> dict[str, Any]:
    return {
        "type_": filters.get("type"),
        "editor": filters.get("editor"),
        "status": filters.get("status"),
        "due": filters.get("due"),
    }


async def leads_page(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    params = ListParams.parse(request, scope)
    stamp = request.query_params.get("stamp")

    def load() -> dict[str, Any] | None:
        now = ctx.clock()
        with ctx.db.session() as session:
            current = change_stamp(session, scope, now) if stamp else None
            if stamp and stamp == current:
                return None
            return list_context(session, scope, params, now, current)

    data = await run_in_threadpool(load)
    if data is None:
        return Response(status_code=204, headers={"Vary": "HX-Request, HX-Target, Cookie"})
    if is_htmx(request) and request.headers.get("HX-Target") == "results":
        return render(request, "_results.html", oob=True, **data)
    return render(request, "leads.html", **data)


# -- one lead ---------------------------------------------------------------------------------


def absence_note(user: User, today: date, t: Translator) -> str:
    """The same rule routing follows (overlapping absences: the latest end)."""
    end = Person(user.username, absences=absences_of(user.absences)).absent_until(today)
    if end is None:
        return ""
    return t("absent_until", date=t.date(datetime.combine(end, datetime.min.time(), t.zone)))


def reason_label(t: Translator, row: CompletionReason) -> str:
    """A system reason in the reader's language unless the dealer renamed it."""
    return t.system_reason(row.code, row.label) if row.dealer_id is None else row.label


def audit(
    session: Session, scope: LeadScope, action: str, lead_id: int, now: datetime, detail: str = ""
) -> None:
    """Who read or changed which lead, for data protection (:mod:`workers.privacy`)."""
    privacy.record(
        session,
        dealer_id=scope.dealer_id,
        actor=scope.username,
        user_id=scope.user_id,
        action=action,
        lead_id=lead_id,
        now=now,
        detail=detail,
    )


def lead_context(
    session: Session, scope: LeadScope, raw_id: object, t: Translator, now: datetime
) -> dict[str, Any]:
    lead = visible_lead(session, scope, raw_id)
    data = lead_dict(session, lead, now=now, with_activities=False)
    everyone = list(
        session.scalars(select(User).where(User.dealer_id == scope.dealer_id).order_by(User.name))
    )
    names = {u.id: u for u in everyone}  # inactive people too: their past actions stay named
    activities = [
        {
            "at": a.at,
            "kind": a.kind,
            "label": t.activity(a.kind),
            "text": a.text,
            "by": (names[a.user_id].name if a.user_id in names else (a.data or {}).get("by", "")),
        }
        for a in session.scalars(
            select(LeadActivity)
            .where(LeadActivity.lead_id == lead.id)
            .order_by(LeadActivity.at, LeadActivity.id)
        )
    ]
    others = [
        {"id": other.id, "type": other.type, "status": other.status, "created_at": other.created_at}
        for other in session.scalars(
            select(Lead)
            .where(Lead.contact_id == lead.contact_id, Lead.id != lead.id, scope.clause())
            .order_by(Lead.created_at.desc())
            .limit(50)
        ).unique()
    ]
    contact = session.get(Contact, lead.contact_id)
    original: dict[str, Any] = {"html": False, "attachments": []}
    if lead.inbound_id:
        inbound = session.get(InboundMessage, lead.inbound_id)
        if inbound is not None:
            parsed = parse_mail(inbound.raw)
            original = {
                "html": bool(parsed.html),
                "attachments": attachment_list(parsed),
                "text": parsed.body_text,
                "from": parsed.from_email,
            }
    today = now.astimezone(t.zone).date()
    users = [
        {"username": u.username, "name": u.name, "role": u.role, "absent": absence_note(u, today, t)}
        for u in everyone
        if u.active
    ]
    reasons = [
        {"code": code, "label": reason_label(t, row)}
        for code, row in sorted(actions.usable_reasons(session, scope.dealer_id).items())
    ]
    completion_label = reason_label(t, lead.completion_reason) if lead.completion_reason else None
    access_log = None
    if scope.is_admin:  # who read or changed this lead (data protection), newest first
        access_log = list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.lead_id == lead.id)
                .order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
                .limit(100)
            )
        )
    return {
        "access_log": access_log,
        "lead": data,
        "lead_row": lead,
        "details": (contact.details if contact else {}) or {},
        "activities": activities,
        "others": others,
        "original": original,
        "users": users,
        "reasons": reasons,
        "completion_label": completion_label,
        "editor_name": lead.editor.name if lead.editor else None,
        "due_input": t.local_input(lead.due_at),
        "now": now,
    }


async def lead_page(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    t = request.state.auth.t

    def load() -> dict[str, Any]:
        with ctx.db.session() as session:
            data = lead_context(session, scope, request.path_params["id"], t, ctx.clock())
            audit(session, scope, "read", data["lead"]["id"], ctx.clock())
            return data

    data = await run_in_threadpool(load)
    done = request.query_params.get("done", "")
    return render(request, "lead.html", done=done, error=None, form={}, preview=None, **data)


def _original(request: Request, detail: str) -> Any:
    """The raw mail a lead came from, for a person who may see the lead (the access audited)."""
    ctx = ctx_of(request)
    scope = scope_of(request)

    def load() -> bytes:
        with ctx.db.session() as session:
            lead = visible_lead(session, scope, request.path_params["id"])
            inbound = session.get(InboundMessage, lead.inbound_id) if lead.inbound_id else None
            if inbound is None:
                raise HTTPException(404)
            audit(session, scope, "download", lead.id, ctx.clock(), detail)
            return inbound.raw

    return run_in_threadpool(load)


async def lead_original(request: Request) -> Response:
    return html_document(await _original(request, "the original mail"))


async def lead_attachment(request: Request) -> Response:
    index = request.path_params["index"]
    return attachment_download(await _original(request, f"attachment {index}"), index)


ACTIONS = ("assign", "pool", "due", "note", "reply", "preview", "complete", "reopen")


def _perform(
    session: Session, lead: Lead, action: str, form: dict[str, str], me: User, now: datetime, grace: Any
) -> list[int]:
    by = me.username
    if action == "assign":
        actions.assign(session, lead, form.get("user", ""), by=by, reason=form.get("reason", ""), now=now)
    elif action == "pool":
        actions.to_pool(session, lead, by=by, reason=form.get("reason", ""), now=now)
    elif action == "due":
        when = form.get("when", "").strip() or form.get("when_local", "").replace("T", " ").strip()
        if not when:
            raise actions.ActionError("give a date, e.g. 2026-12-01 10:00 or +2h")
        actions.set_due(session, lead, when, by=by, now=now)
    elif action == "note":
        actions.note(session, lead, form.get("text", ""), by=by, now=now)
    elif action == "reply":
        if lead.status != "open":
            raise actions.ActionError(f"lead {lead.id} is {lead.status}")
        by_user = session.get(User, me.id)
        assert by_user is not None
        return [actions.reply(session, lead, form.get("body", ""), by=by_user, now=now, grace=grace)]
    elif action == "complete":
        code = form.get("reason", "")
        if not code:
            raise actions.ActionError("choose a completion reason")
        actions.complete(session, lead, code, by=by, now=now)
    elif action == "reopen":
        actions.reopen(session, lead, by=by, now=now)
    return []


async def lead_action(request: Request) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    me = user_of(request)
    action = request.path_params["action"]
    lead_id = parse_id(request.path_params["id"])
    if action not in ACTIONS:
        raise HTTPException(404)
    form = await form_of(request)

    if action == "preview":
        return await _preview(request, lead_id, form)

    def work() -> list[int]:
        now = ctx.clock()
        with ctx.db.session() as session:
            lead = visible_lead(session, scope, lead_id, lock=True)
            outbound = _perform(session, lead, action, form, me, now, ctx.send_grace)
            audit(session, scope, "change", lead.id, now, action)
            return outbound

    try:
        outbound = await run_in_threadpool(work)
    except actions.ActionError as exc:
        return await _lead_with_error(request, lead_id, str(exc), form)
    ctx.announce(outbound)
    if action in ("assign", "pool") and not scope.is_admin:
        given_to = form.get("user") if action == "assign" else None
        ids = {u.id for u in await run_in_threadpool(_users_named, ctx, scope, given_to)}
        if given_to is not None and not ids & scope.editors:
            # Handed to someone outside the person's view: the list, not a page they can't open.
            return RedirectResponse("/leads?done=assign", status_code=303)
    return RedirectResponse(f"/leads/{lead_id}?done={action}", status_code=303)


def _users_named(ctx: Any, scope: LeadScope, username: str | None) -> list[User]:
    if username is None:
        return []
    with ctx.db.session() as session:
        return list(
            session.scalars(select(User).where(User.dealer_id == scope.dealer_id, User.username == username))
        )


async def _lead_with_error(request: Request, lead_id: int, error: str, form: dict[str, str]) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    t = request.state.auth.t

    def load() -> dict[str, Any]:
        with ctx.db.session() as session:
            return lead_context(session, scope, lead_id, t, ctx.clock())

    data = await run_in_threadpool(load)
    return render(request, "lead.html", status=422, done="", error=error, form=form, preview=None, **data)


async def _preview(request: Request, lead_id: int, form: dict[str, str]) -> Response:
    ctx = ctx_of(request)
    scope = scope_of(request)
    me = user_of(request)
    t = request.state.auth.t

    def build() -> dict[str, Any]:
        with ctx.db.session() as session:
            lead = visible_lead(session, scope, lead_id)
            by_user = session.get(User, me.id)
            assert by_user is not None
            rendered = actions.reply_preview(session, lead, form.get("body", ""), by=by_user)
            result: dict[str, Any] = {"subject": rendered.subject, "html": rendered.html}
            if not is_htmx(request):
                result["page"] = lead_context(session, scope, lead_id, t, ctx.clock())
            return result

    try:
        preview = await run_in_threadpool(build)
    except actions.ActionError as exc:
        if is_htmx(request):
            return render(request, "_preview.html", status=422, preview=None, error=str(exc))
        return await _lead_with_error(request, lead_id, str(exc), form)
    if is_htmx(request):
        return render(request, "_preview.html", preview=preview, error=None)
    page = preview.pop("page")
    return render(request, "lead.html", done="", error=None, form=form, preview=preview, **page)


def visible_sources(session: Session, scope: LeadScope) -> list[str]:
    return list(
        session.scalars(
            select(Source.name)
            .where(or_(Source.dealer_id == scope.dealer_id, Source.dealer_id.is_(None)))
            .order_by(Source.name)
            .distinct()
        )
    )
