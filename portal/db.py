"""Database connections in the ASGI serving model."""

from django.db import connections


def release_connections() -> None:
    """Hand this request's (or task's) database connections back before it waits — for an upstream answer or for a
    wake-up — so a waiting request holds no connection. With the pool (PostgreSQL, CONN_MAX_AGE=0) the connection
    returns to it; the next query borrows one again. Never inside a transaction: its connection must stay. SQLite
    (the embedded default) has no server connection to hand back: its connections stay until the request ends."""
    for connection in connections.all(initialized_only=True):
        if connection.vendor != "sqlite" and not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
