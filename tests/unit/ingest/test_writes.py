"""Ingest acknowledges a message once every one of its records is in Kafka, and writes it
again, whole and once, when a batch holding any of them failed (ingest/pipeline.py's
bookkeeping over plumbing/kafka_batches.py, whose Kafka side is
tests/integration/test_kafka_batches.py). Nothing here connects: the batches' reports are
given by hand."""

from __future__ import annotations

from aiokafka.errors import KafkaTimeoutError

from ingest.pipeline import EVENTS_TOPIC, Ingest, Record, _Pending


def _ingest(retried: list[_Pending]) -> Ingest:
    ingest = Ingest(
        mqtt_url="mqtt://127.0.0.1:1",
        kafka_bootstrap="127.0.0.1:1",
        client_id="test-writes",
        database_url="postgresql://127.0.0.1:1/none",
    )

    async def retry(pending: _Pending, exc: BaseException) -> None:  # instead of writing
        retried.append(pending)

    ingest._retry = retry  # type: ignore[method-assign]
    return ingest


def _message(ingest: Ingest, records: int) -> _Pending:
    session = ingest._sessions[0]
    delivery = session.acks.received(object(), 1)
    rows = [Record(EVENTS_TOPIC, b"device", b"{}", "vitals") for _ in range(records)]
    return _Pending(session, delivery, rows, 0.0, records)


async def test_a_message_is_done_when_its_last_record_is_written() -> None:
    ingest = _ingest([])
    first, second = _message(ingest, 2), _message(ingest, 1)
    ingest._batch_written([first, second], None)  # first's other record is in another batch
    assert second.delivery.done and not first.delivery.done
    assert len(ingest._sessions[0].acks) == 2  # acks keep their order: second waits for first
    ingest._batch_written([first], None)
    assert first.delivery.done and len(ingest._sessions[0].acks) == 0


async def test_a_message_in_two_failed_batches_is_written_again_once() -> None:
    retried: list[_Pending] = []
    ingest = _ingest(retried)
    message = _message(ingest, 3)
    ingest._batch_written([message, message], KafkaTimeoutError())
    ingest._batch_written([message], KafkaTimeoutError())
    assert await ingest.finish_tasks(5)  # the retry task has run
    assert retried == [message]
    assert not message.delivery.done  # acknowledged only once the retry has written it


async def test_a_batch_written_after_another_failed_does_not_ack_the_message() -> None:
    retried: list[_Pending] = []
    ingest = _ingest(retried)
    message = _message(ingest, 2)
    ingest._batch_written([message], KafkaTimeoutError())
    ingest._batch_written([message], None)  # its other record made it
    assert await ingest.finish_tasks(5)
    assert retried == [message] and not message.delivery.done
