"""`carewatch decode`: events on stdout and exit 0, or the reason on stderr and exit 2."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from carewatch.cli import main


def _run(capsys: pytest.CaptureFixture[str], tmp_path: Path, payload: bytes, *args: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "payload"
    path.write_bytes(payload)
    code = main(["decode", *args, str(path)])
    out, err = capsys.readouterr()
    return code, [orjson.loads(line) for line in out.splitlines()], err


def test_events_print_as_json_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    payload = b'[{"kind": "sos"}, {"kind": "battery", "battery_pct": 40}]'
    code, events, err = _run(capsys, tmp_path, payload, "--format", "native")
    assert code == 0 and err == ""
    assert [e["kind"] for e in events] == ["sos", "battery"]
    assert events[0]["device_id"] == "device-1"


def test_a_rejection_prints_its_reason_and_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, events, err = _run(capsys, tmp_path, b"{nope", "--format", "native")
    assert code == 2 and events == []
    assert err.startswith("invalid_json: ") and len(err.splitlines()) == 1


def test_the_topic_names_the_device(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    topic = "owntracks/alice/phone"
    payload = b'{"_type": "location", "lat": 31.2, "lon": 121.5, "tst": 1763798400}'
    code, events, _ = _run(capsys, tmp_path, payload, "--format", "owntracks", "--topic", topic)
    assert code == 0 and events[0]["device_id"] == "alice:phone"
    code, _, err = _run(capsys, tmp_path, payload, "--format", "owntracks")
    assert code == 2 and "--topic is required" in err
    code, _, err = _run(capsys, tmp_path, payload, "--format", "owntracks", "--topic", "x/y")
    assert code == 2 and err.startswith("unroutable_topic")


def test_a_watch_capture_is_cut_into_frames_as_the_gateway_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    topic = ("--format", "watch", "--topic", "carewatch/v1/watch/8800000001/up")
    capture = b"[3G*8800000001*0002*LK]\r\n[3G*8800000001*0008*heart,72]\n"
    code, events, err = _run(capsys, tmp_path, capture, *topic)
    assert code == 0 and err == ""
    assert [e["kind"] for e in events] == ["heartbeat", "vitals"]
    code, events, err = _run(capsys, tmp_path, b"[3G*8800000001*0002*LK]\n[3G*88", *topic)
    assert code == 2 and [e["kind"] for e in events] == ["heartbeat"]
    assert err.startswith("invalid_frame: ")  # the cut-off rest is named, not ignored


def test_a_watch_clock_zone_as_the_registry_would_give_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    frame = b"[3G*8800000015*0041*UD,221126,083012,A,31.2,N,121.4,E,0,0,0,9,100,80,0,0,00000000]"
    args = ("--format", "watch", "--topic", "carewatch/v1/watch/8800000015/up")
    code, events, _ = _run(capsys, tmp_path, frame, *args, "--clock-tz", "Asia/Shanghai")
    assert code == 0 and events[0]["ts"] == "2026-11-22T00:30:12Z"
    code, events, err = _run(capsys, tmp_path, frame, *args, "--clock-tz", "Mars/Olympus")
    assert code == 2 and events == [] and "Mars/Olympus" in err and "IANA" in err


def test_a_watch_frame_names_its_device_when_no_topic_is_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capture = b"[3G*8800000001*0002*LK]\n[SG*8800000002*0008*heart,72]\n"
    code, events, err = _run(capsys, tmp_path, capture, "--format", "watch")
    assert code == 0 and err == ""
    assert [(e["device_id"], e["kind"]) for e in events] == [
        ("8800000001", "heartbeat"),
        ("8800000002", "vitals"),
    ]
    code, events, err = _run(capsys, tmp_path, b"no frame here", "--format", "watch")
    assert code == 2 and events == [] and err.startswith("invalid_frame: ")


def test_a_salvaged_alarm_prints_the_event_and_says_what_was_dropped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    payload = b'{"kind": "sos", "ts": "yesterday", "lat": 1000, "lon": 121.5}'
    code, events, err = _run(capsys, tmp_path, payload, "--format", "native")
    assert code == 2 and [e["kind"] for e in events] == ["sos"]
    assert events[0]["salvaged"] == ["ts", "position"] and "lat" not in events[0]
    assert err.startswith("salvaged_alarm: sos kept without: ts (")
