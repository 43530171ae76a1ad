"""Producer backpressure against a real Redis."""

import threading
import time

import redis

from workers import keys
from workers.producer import queue_depth, wait_below_high_water


def test_producer_waits_while_the_first_queue_is_above_high_water(redis_url):
    """wait_below_high_water blocks while the clean queue is over the mark and returns once it drains."""
    client = redis.Redis.from_url(redis_url)
    client.rpush(keys.queue_name("clean"), *[b"m"] * 12)

    def drain() -> None:
        time.sleep(0.6)
        client.ltrim(keys.queue_name("clean"), 0, 4)

    drainer = threading.Thread(target=drain)
    drainer.start()
    started = time.monotonic()
    waited = wait_below_high_water(client, high_water=10, poll_s=0.1)
    drainer.join()
    assert waited > 0
    assert time.monotonic() - started >= 0.5
    assert queue_depth(client) == 5


def test_producer_does_not_wait_below_high_water(redis_url):
    """Below the mark the producer goes on at once."""
    client = redis.Redis.from_url(redis_url)
    client.rpush(keys.queue_name("clean"), b"m")
    assert wait_below_high_water(client, high_water=10, poll_s=0.1) == 0.0
