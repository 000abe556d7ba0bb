"""PUBACKs leave in the order messages arrived, whatever order Kafka confirms them in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.acks import AckSequencer


def test_acks_wait_for_everything_received_before() -> None:
    acked: list[str] = []
    seq = AckSequencer(lambda msg, gen: acked.append(msg) or True)
    a, b, c = (seq.received(m, 1) for m in "abc")
    assert seq.done(c) == 0 and seq.done(b) == 0
    assert acked == [] and len(seq) == 3
    assert seq.done(a) == 3
    assert acked == ["a", "b", "c"] and len(seq) == 0


def test_the_generation_goes_with_the_ack() -> None:
    seen: list[tuple[str, int]] = []
    seq = AckSequencer(lambda msg, gen: seen.append((msg, gen)) or False)
    seq.done(seq.received("old", 1))
    seq.done(seq.received("new", 2))
    assert seen == [("old", 1), ("new", 2)]


@given(st.permutations(list(range(20))))
def test_any_completion_order_acks_in_arrival_order(order: list[int]) -> None:
    acked: list[int] = []
    seq = AckSequencer(lambda msg, gen: acked.append(msg) or True)
    deliveries = [seq.received(i, 1) for i in range(20)]
    for i in order:
        seq.done(deliveries[i])
        assert acked == list(range(len(acked)))  # always a prefix
    assert acked == list(range(20))
