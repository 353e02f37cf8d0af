"""The service's Redis client: the shared module's client for the invocation's settings."""

from __future__ import annotations

import redis

from service.redis_client import get_redis
from service.settings import env


def cache() -> redis.Redis:
    return get_redis(dict(env()))
