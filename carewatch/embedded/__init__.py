"""The embedded stack: PostgreSQL, a Kafka-protocol broker and an MQTT broker as children.

`carewatch up` and the integration tests use it so that one command, with no
configuration, runs the whole system on one machine with real parts.
"""

from carewatch.embedded.kafka import EmbeddedKafka
from carewatch.embedded.mqtt import EmbeddedMqtt
from carewatch.embedded.postgres import EmbeddedPostgres
from carewatch.embedded.process import ChildProcess, EmbeddedError, free_port
from carewatch.embedded.stack import EmbeddedStack

__all__ = [
    "ChildProcess",
    "EmbeddedError",
    "EmbeddedKafka",
    "EmbeddedMqtt",
    "EmbeddedPostgres",
    "EmbeddedStack",
    "free_port",
]
