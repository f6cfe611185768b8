"""One scrape: a fresh registry with the MultiProcessCollector (every process's counters and
histograms from the multiprocess directory) and the database's gauges, in Prometheus' text
format. For an admin's token (``dealer``) the series labelled with another dealer are left out:
a dealer's admin sees the installation's totals and their own dealer's figures only."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from models.db import Database
from workers.metrics_db import DatabaseCollector

CONTENT_TYPE = CONTENT_TYPE_LATEST


class _OneDealer(Collector):
    def __init__(self, inner: Collector, dealer: str) -> None:
        self.inner = inner
        self.dealer = dealer

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():
            family.samples = [s for s in family.samples if s.labels.get("dealer", self.dealer) == self.dealer]
            yield family


def exposition(
    db: Database, clock: Callable[[], datetime], *, directory: str | None, dealer: str | None = None
) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    if directory and os.path.isdir(directory):
        processes: Collector = MultiProcessCollector(None, path=directory)
        registry.register(_OneDealer(processes, dealer) if dealer else processes)
    registry.register(DatabaseCollector(db, clock, dealer=dealer))
    return generate_latest(registry)
