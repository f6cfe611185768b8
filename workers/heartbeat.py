"""The heartbeat of a periodic component: one row per component, overwritten every pass, so a
stalled scheduler is seen by whoever reads the row (the health verdict, the metrics)."""

from __future__ import annotations

import socket
from datetime import datetime

from models.db import Database
from models.ops_tables import Heartbeat


def beat(
    db: Database, name: str, started: datetime, finished: datetime, *, lag: float, interval: float
) -> None:
    with db.session() as session:
        row = session.get(Heartbeat, name)
        if row is None:
            row = Heartbeat(name=name)
            session.add(row)
        row.started_at, row.finished_at = started, finished
        row.duration_seconds = max(0.0, (finished - started).total_seconds())
        row.lag_seconds = lag
        row.interval_seconds = interval
        row.host = socket.gethostname()[:255]
