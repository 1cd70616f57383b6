"""kombu's Redis transport, with the fix that keeps a worker alive across a Redis restart.

When the broker connection drops, Celery's consumer calls ``Connection.collect()`` and then
``Connection.close()`` (celery.worker.consumer.Consumer.on_connection_error_after_connected).
``collect()`` tries to close the default channel, but the Redis channel's ``close()`` first reads
the pending BRPOP reply, which raises ``ConnectionError`` while Redis is down, so the channel stays
open; ``collect()`` then detaches the transport from its connection (``transport.client = None``).
``close()`` closes that channel again, and with ``acks_late`` the channel nearly always holds
unacknowledged messages, which it restores to their queue: the restore builds a new Redis pool
from ``self.connection.client.hostname``, ``client`` is None, and the ``AttributeError`` that
follows is not a connection error, so it escapes ``ignore_errors`` and Celery stops the worker
("Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"). The
same dereference fails a worker thread that acknowledges a task finished on the old channel.

This channel remembers the connection it was opened on and builds its pool from that once the
transport was detached: the restore (and a late acknowledgement) then reaches Redis if it is back,
or fails with a ``ConnectionError``, which kombu and Celery expect and handle. Messages a restore
could not put back stay in Redis's unacknowledged set and return after the visibility timeout; the
job sweep restarts their jobs sooner.

Used for a ``redis://`` broker through ``CELERY_BROKER_TRANSPORT`` (config/settings.py), by the
name ``oneoff-redis`` that this module gives it (so logs show ``oneoff-redis://host:port/db``);
config/celery.py imports it.
"""

import threading

from kombu.transport import TRANSPORT_ALIASES, redis

NAME = "oneoff-redis"

# A detached transport may be shared by several channels, and their worker threads.
_detached_lock = threading.RLock()


class Channel(redis.Channel):
    def __init__(self, connection, *args, **kwargs):
        # Before super(): it may already build the pool (from the still-attached client).
        self._opened_on = connection.client
        super().__init__(connection, *args, **kwargs)

    def _connparams(self, asynchronous=False):
        # Called only to build a pool, so the lock costs nothing. When Connection.collect() has
        # detached the transport, read the parameters of the connection this channel was opened
        # on: nothing else uses a detached transport, so lending it that client for the call is
        # safe, and the lock keeps worker threads acknowledging at once from seeing it half done.
        with _detached_lock:
            transport = self.connection
            lend = transport.client is None and self._opened_on is not None
            if lend:
                transport.client = self._opened_on
            try:
                return super()._connparams(asynchronous=asynchronous)  # type: ignore[misc]
            finally:
                if lend:
                    transport.client = None


class Transport(redis.Transport):
    Channel = Channel


TRANSPORT_ALIASES[NAME] = f"{__name__}:Transport"
