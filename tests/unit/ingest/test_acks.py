"""PUBACKs leave in the order messages arrived, whatever order Kafka confirms them in."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ingest.acks import AckSequencer, Delivery


def _messages(into: list[object]) -> AckSequencer:
    return AckSequencer(lambda ready: into.extend(d.message for d in ready))


def test_acks_wait_for_everything_received_before() -> None:
    acked: list[object] = []
    seq = _messages(acked)
    a, b, c = (seq.received(m, 1) for m in "abc")
    assert seq.done(c) == 0 and seq.done(b) == 0
    assert acked == [] and len(seq) == 3
    assert seq.done(a) == 3
    assert acked == ["a", "b", "c"] and len(seq) == 0


def test_a_run_that_became_ackable_at_once_goes_together_with_its_generations() -> None:
    runs: list[list[Delivery]] = []
    seq = AckSequencer(runs.append)
    old, new = seq.received("old", 1), seq.received("new", 2)
    seq.done(new)
    seq.done(old)
    assert [[(d.message, d.generation) for d in run] for run in runs] == [[("old", 1), ("new", 2)]]


@given(st.permutations(list(range(20))))
def test_any_completion_order_acks_in_arrival_order(order: list[int]) -> None:
    acked: list[object] = []
    seq = _messages(acked)
    deliveries = [seq.received(i, 1) for i in range(20)]
    for i in order:
        seq.done(deliveries[i])
        assert acked == list(range(len(acked)))  # always a prefix
    assert acked == list(range(20))
