"""The Redis cache backend (portal/cache.py) against a real Redis: CI starts one and sets REDIS_URL."""

import os
import threading

import pytest

from portal.cache import RedisCache


@pytest.fixture
def redis_cache():
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("REDIS_URL not set (CI starts a Redis server)")
    cache = RedisCache(url, {"KEY_PREFIX": "test-cache"})
    cache.clear()
    yield cache
    cache.clear()


def test_operations_work_and_reuse_one_client(redis_cache):
    redis_cache.set("throttle", [1.0, 2.0], 30)
    assert redis_cache.get("throttle") == [1.0, 2.0]
    assert redis_cache.add("throttle", "other", 30) is False
    assert redis_cache.add("n", 1, 30) is True
    assert redis_cache.incr("n", 2) == 3
    redis_cache.delete("throttle")
    assert redis_cache.get("throttle", "gone") == "gone"
    client = redis_cache._cache.get_client(write=True)
    assert redis_cache._cache.get_client(write=True) is client  # Django's own backend builds a new one each time
    assert redis_cache._cache.get_client(write=False) is client  # one server: reads use the same pool


def test_the_shared_client_is_safe_across_threads(redis_cache):
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(50):
                redis_cache.set(f"k{index}", (index, round_), 30)
                assert redis_cache.get(f"k{index}") == (index, round_)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
