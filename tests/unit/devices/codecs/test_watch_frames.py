"""Framing of the watch protocol: where frames end in a TCP stream, and the replies."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.codecs.watch_frames import (
    Frame,
    FrameSplitter,
    FrameTooLarge,
    build_frame,
    escape,
    parse_frame,
    reply_for,
    unescape,
)
from devices.errors import DecodeError, Reason
from simulators.watch import WatchEncoder

# Traccar's WatchFrameDecoderTest, as the watches sent them (hex there, text here).
CAPTURED_STREAM = (
    b"[3G*9705141740*0009*LK,0,0,53]"
    b"[3G*9705141740*005A*UD,190723,190707,A,36.815109,N,10.1792312,E,8.24,127.9,21.0,5,100,53,"
    b"0,0,00000000,0,0,58.0]"
    b"[3G*9705141740*0003*TKQ]"
    b"[3G*9705141740*0009*LK,0,0,53]"
)
# A Wi-Fi network named `[LG_Wall-Mount A/C]e725`: brackets inside the content.
WIFI_BRACKETS = (
    b"[3G*880900242*013D*UD,120623,140020,A,48.949273,N, 4.3783060,E,18.56,43.8,0.0,12,100,76,"
    b"226120,0,00000000,2,255,204,8,3110,55025,146,3130,49297,124,5,BangingWifi,"
    b"34:a1:ed:e1:91:4f,-71,BAR WiFi,36:a2:e1:ed:a1:de,-72,NetworkWifi,26:de:a1:ed:e1:a0,-73,"
    b"Fiber,36:a1:ed:e1:91:4f,-75,[LG_Wall-Mount A/C]e725,66:a1:ed:e1:e7:25,-82,15.0]"
)
INDEXED = b"[ZJ*014111001350304*0034*0009*LK,0,0,19]"
# Traccar's voice test: LEN 0x0e counts the unescaped bytes (8 text + 6 binary).
VOICE_UNESCAPED_LEN = (
    b"[CS*1234567890*000e*TK,#!AMR" + bytes.fromhex("7d017d027d037d047d05ff") + b"]"
)
# Hand-edited captures whose LEN is off: too long by one, too short by eight.
LEN_TOO_LONG = b"[SG*9081000548*0009*LK,0,100]"
LEN_TOO_SHORT = (
    b"[SG*8800000015*0087*UD,220414,134652,A,22.571707,N,113.8613968,E,0.1,0.0,100,7,60,90,"
    b"1000,50,0000,4,1,460,0,9360,4082,131,9360,4092,148,9360,4091,143,9360,4153,141]"
)
# Every byte the protocol escapes, and the escape byte's would-be partners unescaped.
AMR = b"#!AMR\n" + bytes([0x7D, 0x5B, 0x5D, 0x2C, 0x2A, 0x01, 0x02, 0x7D, 0x7D, 0x00, 0xFF]) * 3


def _voice() -> bytes:
    return WatchEncoder("1234567890", maker="CS").voice(AMR)


def _frames(stream: bytes) -> list[bytes]:
    return FrameSplitter().feed(stream)


def test_several_frames_in_one_read() -> None:
    frames = _frames(CAPTURED_STREAM)
    assert [parse_frame(f).content_type for f in frames] == ["LK", "UD", "TKQ", "LK"]
    assert b"".join(frames) == CAPTURED_STREAM


@pytest.mark.parametrize(
    "stream",
    [CAPTURED_STREAM, WIFI_BRACKETS + INDEXED, VOICE_UNESCAPED_LEN + INDEXED, _voice() * 2],
    ids=["captured", "brackets+indexed", "binary-unescaped-len", "binary-wire-len"],
)
def test_a_frame_split_at_every_byte_position_comes_out_whole(stream: bytes) -> None:
    whole = _frames(stream)
    assert b"".join(whole) == stream
    for cut in range(len(stream) + 1):
        splitter = FrameSplitter()
        assert splitter.feed(stream[:cut]) + splitter.feed(stream[cut:]) == whole, cut
        assert splitter.buffered == 0 and splitter.skipped_bytes == 0


def test_byte_by_byte() -> None:
    splitter = FrameSplitter()
    frames = [
        f for i in range(len(CAPTURED_STREAM)) for f in splitter.feed(CAPTURED_STREAM[i : i + 1])
    ]
    assert b"".join(frames) == CAPTURED_STREAM


def test_brackets_inside_the_content_do_not_end_the_frame() -> None:
    (frame,) = _frames(WIFI_BRACKETS)
    assert frame == WIFI_BRACKETS
    assert parse_frame(frame).content.endswith(
        b"[LG_Wall-Mount A/C]e725,66:a1:ed:e1:e7:25,-82,15.0"
    )


def test_binary_content_is_unescaped_by_parse_frame() -> None:
    (frame,) = _frames(_voice())
    parsed = parse_frame(frame)
    assert (parsed.content_type, parsed.content) == ("TK", AMR)
    assert int(frame.split(b"*")[2], 16) == len(frame) - len(b"[CS*1234567890*0000*]")
    assert parse_frame(VOICE_UNESCAPED_LEN).content == b"#!AMR}[],*\xff"


def test_escape_round_trip() -> None:
    assert escape(b"}[],*x") == b"}\x01}\x02}\x03}\x04}\x05x"
    assert unescape(escape(AMR)) == AMR
    assert unescape(b"}\x09}") == b"}\x09}"  # not an escape pair: kept as sent


@pytest.mark.parametrize("frame", [LEN_TOO_LONG, LEN_TOO_SHORT], ids=["too-long", "too-short"])
def test_a_wrong_len_still_ends_at_the_closing_bracket(frame: bytes) -> None:
    # Alone (the watch then waits for our reply), followed by a frame, or by CR LF + a frame.
    assert _frames(frame) == [frame]
    assert _frames(frame + INDEXED) == [frame, INDEXED]
    splitter = FrameSplitter()
    assert splitter.feed(frame + b"\r\n" + INDEXED) == [frame, INDEXED]
    assert splitter.skipped_bytes == 2


def test_garbage_between_frames_is_skipped_and_counted() -> None:
    garbage = [b"GET / HTTP/1.1\r\n\r\n", b"[not a frame]", b"]]\x00\xff", b"[SG*12*zz*"]
    stream = garbage[0] + INDEXED + garbage[1] + garbage[2] + LEN_TOO_LONG + garbage[3] + INDEXED
    splitter = FrameSplitter()
    assert splitter.feed(stream) == [INDEXED, LEN_TOO_LONG, INDEXED]
    assert splitter.skipped_bytes == sum(len(g) for g in garbage)


def test_a_frame_cut_short_by_the_next_one_is_skipped() -> None:
    cut = b"[3G*9705141740*005A*UD,190723,190707,A,36.8151"
    splitter = FrameSplitter()
    assert splitter.feed(cut + INDEXED) == [INDEXED]
    assert splitter.skipped_bytes == len(cut)


def test_a_partial_header_waits_for_the_index_field() -> None:
    splitter = FrameSplitter()
    assert splitter.feed(INDEXED[:30]) == []  # `...*0034*00`: index or content? not yet known
    (frame,) = splitter.feed(INDEXED[30:])
    assert (parse_frame(frame).index, parse_frame(frame).content) == ("0034", b"0,0,19")


def test_a_frame_past_the_size_limit_raises_and_drops_the_buffer() -> None:
    splitter = FrameSplitter(max_frame_bytes=256)
    assert splitter.feed(b"[3G*1*FFFF*UD," + b"1," * 100) == []
    with pytest.raises(FrameTooLarge) as caught:
        splitter.feed(b"1," * 100)
    assert caught.value.reason == Reason.INVALID_FRAME and caught.value.limit == 256
    assert splitter.buffered == 0


def test_frames_before_an_oversized_one_are_kept_on_the_error() -> None:
    with pytest.raises(FrameTooLarge) as caught:
        FrameSplitter(max_frame_bytes=64).feed(INDEXED + b"[3G*1*FFFF*TK," + b"x" * 64)
    assert caught.value.frames == [INDEXED]


def test_a_frame_at_the_size_limit_passes_and_garbage_is_not_buffered() -> None:
    frame = build_frame("3G", "1", b"X" * 100)
    assert FrameSplitter(max_frame_bytes=len(frame)).feed(frame) == [frame]
    with pytest.raises(FrameTooLarge):
        FrameSplitter(max_frame_bytes=len(frame) - 1).feed(frame)
    splitter = FrameSplitter(max_frame_bytes=64)
    assert splitter.feed(b"x" * 10_000) == [] and splitter.buffered == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"[", b"[3G*1*0002*LK", b"[sg*1*0002*LK]", b"[3G**0002*LK]", b"[3G*1*02*LK]",
     b"[3G*1*0000*]", b"[3G*1*0003*\xff\xfe,]", b"3G*1*0002*LK]", b"[3G*a/b*0002*LK]"],
)  # fmt: skip
def test_parse_frame_rejects_what_is_not_a_frame(raw: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_frame(raw)
    assert caught.value.reason == Reason.INVALID_FRAME and caught.value.protocol == "watch"


def test_parse_frame_reads_the_header() -> None:
    assert parse_frame(INDEXED) == Frame("ZJ", "014111001350304", "0034", "LK", b"0,0,19")
    assert parse_frame(b"[SG*8800000015*0002*LK]") == Frame("SG", "8800000015", None, "LK", b"")


@pytest.mark.parametrize(
    ("frame", "reply"),
    [
        (b"[SG*8800000015*0002*LK]", b"[SG*8800000015*0002*LK]"),
        (b"[3G*4700186508*000B*LK,0,10,100]", b"[3G*4700186508*0002*LK]"),
        (INDEXED, b"[ZJ*014111001350304*0034*0002*LK]"),
        (b"[CS*1*0004*INIT]", b"[CS*1*0006*INIT,1]"),
        (b"[3G*1*0004*AL,1]", b"[3G*1*0002*AL]"),
        (b"[3G*1*0008*AL_LTE,1]", b"[3G*1*0002*AL]"),
        (b"[3G*1*000D*ALCUSTOMER1,1]", b"[3G*1*0002*AL]"),
        (b"[3G*8800000015*0003*TKQ]", b"[3G*8800000015*0003*TKQ]"),
        (b"[3G*1*0004*TKQ2]", b"[3G*1*0004*TKQ2]"),
        (b"[ZJ*7*0034*0006*JXTK,0]", b"[ZJ*7*0034*0007*JXTKR,1]"),
        (b"[3G*1*0004*lk,1]", b"[3G*1*0002*LK]"),
        (b"[3G*1*0004*UD,1]", None),
        (b"[3G*1*0008*heart,71]", None),
        (b"[3G*1*0003*SOS]", None),  # a watch acknowledging the SOS-number command
    ],
)
def test_replies_echo_maker_id_and_index(frame: bytes, reply: bytes | None) -> None:
    assert reply_for(parse_frame(frame)) == reply


def test_reply_len_is_upper_case_hex() -> None:
    assert build_frame("3G", "1", b"x" * 171) == b"[3G*1*00AB*" + b"x" * 171 + b"]"


@given(st.binary(max_size=400), st.integers(min_value=16, max_value=512))
def test_random_bytes_only_ever_raise_frame_too_large(data: bytes, limit: int) -> None:
    splitter = FrameSplitter(max_frame_bytes=limit)
    try:
        frames = splitter.feed(data)
    except FrameTooLarge:
        return
    for frame in frames:
        assert len(frame) <= limit
        try:
            parse_frame(frame)
        except DecodeError:
            pass


_STREAM = CAPTURED_STREAM + WIFI_BRACKETS + INDEXED + _voice() + VOICE_UNESCAPED_LEN


@given(st.lists(st.integers(min_value=0, max_value=len(_STREAM)), max_size=8))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(_STREAM)]
    splitter = FrameSplitter()
    frames = [f for a, b in itertools.pairwise(bounds) for f in splitter.feed(_STREAM[a:b])]
    assert frames == _frames(_STREAM)
    assert b"".join(frames) == _STREAM
