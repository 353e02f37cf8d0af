import redis


def test_real_server_answers(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set("k", "v", px=5000)
    assert client.get("k") == b"v"
    assert 0 < client.pttl("k") <= 5000
    info = client.info("server")
    assert "redis_version" in info
