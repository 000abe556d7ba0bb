"""In-order acknowledgement of QoS 1 messages once their Kafka writes are confirmed.

MQTT (3.1.1 and 5, section 4.6) says PUBACKs go out in the order the PUBLISHes came in.
Kafka confirms writes per partition, so they finish out of order; this holds each ack back
until every message received before it is done.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["AckSequencer", "Delivery"]


@dataclass(eq=False)
class Delivery:
    """One received message waiting for its ack."""

    message: Any
    generation: int
    done: bool = False


class AckSequencer:
    """`ack` is given each run of deliveries that became ackable at once, in order (one
    write of PUBACKs for the lot)."""

    def __init__(self, ack: Callable[[list[Delivery]], object]) -> None:
        self._ack = ack
        self._order: deque[Delivery] = deque()

    def received(self, message: Any, generation: int) -> Delivery:
        delivery = Delivery(message, generation)
        self._order.append(delivery)
        return delivery

    def done(self, delivery: Delivery) -> int:
        """Mark one delivery done; ack every done delivery at the head. Returns how many."""
        delivery.done = True
        order = self._order
        ready = []
        while order and order[0].done:
            ready.append(order.popleft())
        if ready:
            # Those of a connection that is gone are not acked: the broker redelivers them,
            # and the event ids make the second copy harmless.
            self._ack(ready)
        return len(ready)

    def __len__(self) -> int:
        return len(self._order)
