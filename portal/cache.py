"""Django's Redis cache backend, keeping one `redis.Redis` client per connection pool.

Django's own backend builds a new `redis.Redis` for every cache operation, and building one registers ~170
response callbacks: measurable on every terminal request (the device throttle reads and writes the cache). The
clients are thread-safe and share the same pools as before, so reusing them changes nothing else.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class _ReusingClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = _ReusingClient
