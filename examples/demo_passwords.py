"""``make run`` only: give the demo dealer's users a demo password, once, and print them.

Never part of the product: a real installation sets passwords with ``lms users set-password``
or ``lms users invite``. Users who already have a password keep it.
"""

from __future__ import annotations

from sqlalchemy import select

from models.clock import system_clock
from models.db import Database
from models.settings import Settings
from models.tables import User
from models.web_tables import WebAccount
from workers.accounts import set_password

DEALER = "muster"


def main() -> None:
    settings = Settings()
    db = Database(settings.database_url)
    given: list[tuple[str, str, str]] = []
    with db.session() as session:
        users = select(User).where(User.dealer_id == DEALER, User.active).order_by(User.id)
        for user in session.scalars(users):
            account = session.get(WebAccount, user.id)
            if account is None or account.password_hash is None:
                password = f"{user.username}-demo-password"
                set_password(session, user, password, now=system_clock())
                given.append((user.username, user.role, password))
    db.dispose()
    if given:
        print(f"Demo sign-in for http://{settings.web_listen} (dealer {DEALER!r}); shown only this once:")
        for username, role, password in given:
            print(f"  {username:<6} {role:<10} {password}")


if __name__ == "__main__":
    main()
