"""Kafka plumbing that must agree with every other Kafka client."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner

from plumbing.kafka import CachedPartitioner


def test_the_cached_partitioner_puts_each_key_where_any_client_would() -> None:
    cached = CachedPartitioner(max_keys=50)  # small: the cache fills and starts over
    for n in (3, 12):
        partitions = list(range(n))
        for round_ in range(2):  # the second round answers from the cache
            for i in range(120):
                key = f"watch-{i:04d}".encode()
                expected = DefaultPartitioner()(key, partitions, partitions)
                assert cached(key, partitions, partitions) == expected, (n, round_, key)
    assert cached(None, [0, 1, 2], [1]) == 1  # no key: any available partition
