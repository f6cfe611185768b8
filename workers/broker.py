"""The Dramatiq broker named by ``LMS_BROKER_URL``: ``memory://``, ``redis://…``, ``amqp://…``."""

from __future__ import annotations

from dramatiq import Broker
from dramatiq.brokers.stub import StubBroker


def make_broker(url: str) -> Broker:
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        # Messages live in this process only; the sweeper recovers what a crash loses.
        return StubBroker()
    if scheme in ("redis", "rediss", "unix"):
        import redis
        from dramatiq.brokers.redis import RedisBroker

        # redis-py waits forever by default: a frozen Redis would hang every enqueue (and the
        # sender's reply behind it). Bounded waits make it an error the sweeper recovers from.
        # (Dramatiq's Redis consumer polls; it issues no blocking command to wait past these.)
        # Values in the URL (?socket_timeout=…) win over these (redis-py's rule).
        pool = redis.ConnectionPool.from_url(url, socket_timeout=10.0, socket_connect_timeout=5.0)
        return RedisBroker(client=redis.Redis(connection_pool=pool))
    if scheme in ("amqp", "amqps"):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url, confirm_delivery=True)
    raise ValueError(f"LMS_BROKER_URL: unknown scheme {scheme!r} (memory://, redis://, amqp://)")


def queue_depths(broker: Broker) -> dict[str, int]:
    """Messages waiting per queue, where the broker can tell (best effort, for ``ops status``)."""
    depths: dict[str, int] = {}
    for queue in sorted(broker.get_declared_queues()):
        try:
            if isinstance(broker, StubBroker):
                depths[queue] = broker.queues[queue].qsize()
            elif hasattr(broker, "get_queue_message_counts"):
                depths[queue] = int(broker.get_queue_message_counts(queue)[0])
            elif hasattr(broker, "client") and hasattr(broker, "namespace"):
                depths[queue] = int(broker.client.llen(f"{broker.namespace}:{queue}"))
        except Exception:  # a broker that cannot answer now: leave the queue out
            continue
    return depths


def broker_unready(url: str, timeout: float = 3.0) -> str | None:
    """Why the broker cannot take messages now, in one phrase, or None when it can (readiness).
    A fresh connection each time: a pooled one may look alive after the server went away."""
    scheme = url.partition("://")[0].lower()
    try:
        if scheme in ("redis", "rediss", "unix"):
            import redis

            client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
            try:
                client.ping()
            finally:
                client.close()
        elif scheme in ("amqp", "amqps"):
            import pika

            params = pika.URLParameters(url)
            params.socket_timeout = params.blocked_connection_timeout = timeout
            params.connection_attempts, params.retry_delay = 1, 0
            pika.BlockingConnection(params).close()
    except Exception as exc:
        return f"broker: {type(exc).__name__}: {exc}"[:300]
    return None
