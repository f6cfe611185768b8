"""Who gets in and who sees what, over real HTTP: sign-in, sessions, CSRF, tokens, scope."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models.config_apply import apply_config
from models.dealer_config import load_config_file
from models.tables import LeadActivity
from models.web_tables import WebSession
from tests.support.processes import lms_env, lms_here
from tests.web.conftest import PASSWORD, WEB_CONFIG, WebStack, csrf_of, post_form, sign_in
from web.app import create_app
from workers.accounts import prune

PUBLIC = {"/healthz", "/readyz", "/login", "/invite/{token}", "/static/{path:path}"}
SAMPLE = {"{id}": "1", "{action}": "note", "{index}": "0", "{token}": "x"}


def test_every_route_the_app_lists_answers_401_or_a_redirect_without_a_session(web_sqlite: WebStack) -> None:
    web = web_sqlite
    web.lead()
    routes = [r for r in create_app(web.ctx).routes if getattr(r, "path", None) not in PUBLIC]
    assert len(routes) >= 20  # the sweep covers the pages, the actions and the API
    anonymous = web.client()
    tried = 0
    for route in routes:
        path = route.path  # type: ignore[attr-defined]
        for placeholder, value in SAMPLE.items():
            path = path.replace(placeholder, value)
        for method in sorted(route.methods - {"HEAD"}):  # type: ignore[attr-defined]
            response = anonymous.request(method, path, data={"text": "x"} if method == "POST" else None)
            assert response.status_code in (401, 302, 303), (method, path, response.status_code)
            if path.startswith("/api/"):
                assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]
            tried += 1
    assert tried >= 20
    # A forged or stale cookie is no session either.
    forged = web.client(cookies={web.ctx.session_cookie: "forged"})
    assert forged.get("/leads").status_code == 303
    assert anonymous.get("/healthz").json() == {"ok": True}
    with web.db.session() as session:  # the POSTs above changed nothing
        assert session.scalar(select(LeadActivity).where(LeadActivity.kind == "note")) is None


def test_sign_in_and_out_and_the_old_cookie_opens_nothing(web: WebStack) -> None:
    lead_id = web.lead(subject="Probefahrt Golf")
    browser = web.client()
    assert sign_in(browser, "muster", "anna", "wrong password!").status_code == 401
    assert sign_in(browser, "muster", "nobody", PASSWORD).status_code == 401
    response = sign_in(browser, "muster", "anna", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/leads"
    cookie = response.cookies[web.ctx.session_cookie]
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header and "secure" not in header
    page = browser.get("/leads")
    assert page.status_code == 200 and "Probefahrt Golf" in page.text
    assert browser.get(f"/leads/{lead_id}").status_code == 200
    assert post_form(browser, "/logout", {}).status_code == 303
    stolen = web.client(cookies={web.ctx.session_cookie: cookie})
    assert stolen.get(f"/leads/{lead_id}").status_code == 303
    assert stolen.get("/api/leads").status_code == 401


def test_a_seller_sees_their_leads_and_the_pool_never_another_team_or_dealer(web: WebStack) -> None:
    mine = web.lead(editor="anna", sender="Erika <erika@example.org>")
    pool = web.lead(editor=None, sender="Pia Pool <pia@example.org>")
    teammate = web.lead(editor="ben", sender="Bernd <bernd@example.org>")
    other_team = web.lead(editor="carl", sender="Clara <clara@example.org>")
    other_dealer = web.lead(dealer="other", editor="otto", sender="Oskar <oskar@example.org>")
    expected = {
        ("muster", "anna"): {mine, pool},
        ("muster", "max"): {mine, pool, teammate},
        ("muster", "lisa"): {pool, other_team},
        ("muster", "olga"): {mine, pool, teammate, other_team},
        ("other", "otto"): {other_dealer},
    }
    everything = {mine, pool, teammate, other_team, other_dealer}
    for (dealer, user), visible in expected.items():
        client = web.sign_in(dealer, user)
        listed = client.get("/api/leads?limit=100").json()
        assert {lead["id"] for lead in listed["leads"]} == visible, user
        assert listed["total"] == len(visible)
        for lead_id in everything:
            page = client.get(f"/leads/{lead_id}").status_code
            api = client.get(f"/api/leads/{lead_id}").status_code
            assert (page, api) == ((200, 200) if lead_id in visible else (404, 404)), (user, lead_id)
        for hidden in everything - visible:  # not even its HTML body or attachments
            assert client.get(f"/leads/{hidden}/original.html").status_code == 404
            assert post_form(client, f"/leads/{hidden}/note", {"text": "x"}).status_code == 404
    anna = web.sign_in("muster", "anna")
    for absurd in ("99999999999999999999999", "0", "-1", "1e3", "%00", "١٢"):
        assert anna.get(f"/leads/{absurd}").status_code == 404, absurd
        assert anna.get(f"/api/leads/{absurd}").status_code == 404, absurd
    assert anna.get("/api/ops/status").status_code == 404  # admins only
    assert anna.get("/unassigned").status_code == 404
    assert web.sign_in("muster", "olga").get("/api/ops/status").status_code == 200


def test_a_request_without_the_csrf_token_changes_nothing(web: WebStack) -> None:
    lead_id = web.lead()
    anna = web.sign_in("muster", "anna")
    token = csrf_of(anna.get(f"/leads/{lead_id}").text)
    refused = [
        anna.post(f"/leads/{lead_id}/note", data={"text": "no token"}),
        anna.post(f"/leads/{lead_id}/note", data={"text": "wrong token", "csrf_token": "x" * 43}),
        anna.post(
            f"/leads/{lead_id}/note",
            data={"text": "other origin", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        ),
        anna.post(f"/leads/{lead_id}/complete", data={"reason": "sold"}),
        anna.post("/logout"),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    page = anna.get(f"/leads/{lead_id}")
    assert page.status_code == 200 and "no token" not in page.text  # still signed in, nothing noted
    with web.db.session() as session:
        assert (
            session.scalar(select(LeadActivity).where(LeadActivity.kind.in_(("note", "completed")))) is None
        )
    # The header htmx sends counts as well as the form field.
    ok = anna.post(f"/leads/{lead_id}/note", data={"text": "with token"}, headers={"X-CSRF-Token": token})
    assert ok.status_code == 303
    assert "with token" in anna.get(f"/leads/{lead_id}").text


def test_failed_sign_ins_are_throttled_per_account_and_per_address(web_sqlite: WebStack) -> None:
    web = web_sqlite
    client = web.client()
    for _ in range(web.ctx.throttle.per_account):
        assert sign_in(client, "muster", "anna", "guess guess guess").status_code == 401
    blocked = sign_in(client, "muster", "anna", PASSWORD)  # even the right password now
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 60
    assert "try again in 15 minutes" in blocked.text
    assert sign_in(web.client(), "muster", "max", PASSWORD).status_code == 303  # another account is fine
    # Per address: guessing across many accounts from one address stops too.
    for n in range(web.ctx.throttle.per_address):
        sign_in(client, "muster", f"nobody{n}", "guess guess guess")
    assert sign_in(client, "muster", "olga", PASSWORD).status_code == 429


def test_api_tokens_from_the_cli_are_scoped_and_revocable(web: WebStack) -> None:
    mine = web.lead(editor="anna")
    web.lead(editor="carl")
    env = lms_env(database_url=web.stack.settings.database_url)
    out = lms_here("users", "token", "muster", "anna", env=env)
    assert out.exit_code == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("lms_") and token not in out.stderr
    api = web.client(headers={"Authorization": f"Bearer {token}"})
    assert [lead["id"] for lead in api.get("/api/leads").json()["leads"]] == [mine]
    assert api.get(f"/api/leads/{mine}").json()["activities"][0]["kind"] == "received"
    assert api.get("/leads").status_code == 303  # a token is for the API, not for pages
    assert web.client(headers={"Authorization": "Bearer lms_wrong"}).get("/api/leads").status_code == 401
    assert lms_here("users", "revoke-token", "muster", "anna", "--all", env=env).exit_code == 0
    assert api.get("/api/leads").status_code == 401
    unknown = lms_here("users", "token", "muster", "nobody", env=env)
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "error: no user 'nobody' at dealer 'muster'"


def test_deactivating_a_user_or_changing_the_password_ends_their_sessions(web: WebStack) -> None:
    anna = web.sign_in("muster", "anna")
    max_ = web.sign_in("muster", "max")
    assert anna.get("/leads").status_code == 200
    # The dealer file without anna: applying it deactivates her, and her session ends at once.
    config = load_config_file(WEB_CONFIG)  # the configuration is immutable: a changed copy
    dealer = config.dealers[0].model_copy(
        update={"users": [u for u in config.dealers[0].users if u.id != "anna"]}
    )
    config = config.model_copy(update={"dealers": [dealer]})
    with web.db.session() as session:
        apply_config(session, config, now=web.clock())
    assert anna.get("/leads").status_code == 303
    assert sign_in(web.client(), "muster", "anna", PASSWORD).status_code == 401
    # Max changes his password on the settings page: his other browser is signed out, this one not.
    other_browser = web.sign_in("muster", "max")
    changed = post_form(
        max_,
        "/settings/password",
        {"current": PASSWORD, "new": "a brand new secret", "new2": "a brand new secret"},
        page="/settings",
    )
    assert changed.status_code == 303
    max_.cookies.update(changed.cookies)
    assert max_.get("/leads").status_code == 200
    assert other_browser.get("/leads").status_code == 303
    assert sign_in(web.client(), "muster", "max", "a brand new secret").status_code == 303


def test_set_password_from_the_cli_prompts_or_reads_stdin_and_never_echoes(web_sqlite: WebStack) -> None:
    env = lms_env(database_url=web_sqlite.stack.settings.database_url)
    secret = b"carls new password\n"
    out = lms_here("users", "set-password", "muster", "carl", "--stdin", env=env, input=secret)
    assert out.exit_code == 0 and "carls new password" not in out.output
    assert sign_in(web_sqlite.client(), "muster", "carl", "carls new password").status_code == 303
    short = lms_here("users", "set-password", "muster", "carl", "--stdin", env=env, input=b"short\n")
    assert short.exit_code == 1 and short.stderr.startswith("error: the password needs at least")
    assert sign_in(web_sqlite.client(), "muster", "carl", "carls new password").status_code == 303


def test_sign_in_rows_that_open_nothing_are_forgotten_after_a_week(web: WebStack) -> None:
    anna = web.sign_in("muster", "anna")
    assert anna.post("/logout", data={"csrf_token": csrf_of(anna.get("/leads").text)}).status_code == 303
    web.sign_in("muster", "max")  # still signed in: stays
    with web.db.session() as session:
        assert prune(session, now=web.clock() + timedelta(days=1)) == 0  # ended yesterday: kept
    with web.db.session() as session:
        assert prune(session, now=web.clock() + timedelta(days=8)) == 1  # ended a week ago: gone
        rows = session.scalars(select(WebSession)).all()
    assert len(rows) == 1 and rows[0].revoked_at is None
