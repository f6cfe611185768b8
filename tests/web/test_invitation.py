"""An invitation: mailed through the outbox, one use, expiring."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from models.tables import OutboundMessage
from tests.support.processes import lms_env, lms_here
from tests.web.conftest import WebStack, csrf_of
from workers import accounts


def invitation_link(web: WebStack) -> str:
    with web.db.session() as session:
        row = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.kind == "invitation")
            .order_by(OutboundMessage.id.desc())
        ).first()
        assert row is not None and row.state == "queued" and row.recipient == "carl@autohaus-muster.example"
        text = row.raw.decode()
    found = re.search(r"(http://\S+/invite/(\S+))", text)
    assert found, text
    return found.group(1)


def accept(web: WebStack, link: str, password: str) -> tuple[int, object]:
    client = web.client()
    path = link[link.index("/invite/") :]
    page = client.get(path)
    if page.status_code != 200:
        return page.status_code, client
    response = client.post(
        path, data={"password": password, "password2": password, "csrf_token": csrf_of(page.text)}
    )
    return response.status_code, client


def test_an_invitation_is_mailed_sets_a_password_once_and_expires(web_sqlite: WebStack) -> None:
    web = web_sqlite
    env = lms_env(database_url=web.stack.settings.database_url, web_public_url="http://lms.example:8025")
    out = lms_here("users", "invite", "muster", "carl", env=env)
    assert out.exit_code == 0, out.stderr
    assert "carl@autohaus-muster.example" in out.stdout
    link = invitation_link(web)
    assert link.startswith("http://lms.example:8025/invite/")
    assert link.split("/")[-1] not in out.output  # the secret goes by mail only
    assert accept(web, link, "short")[0] == 422
    status, client = accept(web, link, "carls invited password")
    assert status == 303
    assert client.get("/leads").status_code == 200  # type: ignore[attr-defined]
    assert accept(web, link, "another password!")[0] == 404  # used once
    # An invitation not taken within its time is gone.
    with web.db.session() as session:
        carl = accounts.find_user(session, "muster", "carl")
        accounts.invite(
            session,
            carl,
            base_url="http://x",
            now=web.clock() - timedelta(hours=80),
            valid=timedelta(hours=72),
            grace=timedelta(0),
        )
    assert accept(web, invitation_link(web), "too late password")[0] == 404
    unknown = lms_here("users", "invite", "muster", "nobody", env=env)
    assert unknown.exit_code == 1 and "no user 'nobody'" in unknown.stderr
