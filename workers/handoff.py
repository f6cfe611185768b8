"""Announce a stored inbound row to the ingest workers from a process that has none.

The MTA pipe uses this instead of :class:`workers.runtime.Runtime`, which imports the whole
pipeline (parsers, templates) to define its actors: a pipe only needs to put the row id on the
queue the workers read. Queue and actor names are the Runtime's (``{prefix}.ingest``).
"""

from __future__ import annotations

from collections.abc import Callable


def ingest_queue(prefix: str) -> str:
    return f"{prefix}.ingest"


def ingest_enqueuer(broker_url: str, queue_prefix: str) -> tuple[Callable[[int], None], Callable[[], None]]:
    """(enqueue, close) for a real broker (Redis, RabbitMQ)."""
    import dramatiq

    from workers.broker import make_broker

    broker = make_broker(broker_url)
    queue = ingest_queue(queue_prefix)
    broker.declare_queue(queue)

    def enqueue(inbound_id: int) -> None:
        broker.enqueue(
            dramatiq.Message(queue_name=queue, actor_name=queue, args=(inbound_id,), kwargs={}, options={})
        )

    return enqueue, broker.close
