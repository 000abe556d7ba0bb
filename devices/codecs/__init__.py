"""The codec registry: one module per protocol, each a pure function registered by name.

What a codec is given and returns (`Message`, `Decoded`, `Codec`) is in `devices.codecs.base`,
which every codec module imports; this package imports the codecs and registers them. A new
protocol is a new module here and one entry in `CODECS`.
"""

from __future__ import annotations

from devices.codecs import chirpstack, native, owntracks, ttn, watch
from devices.codecs.base import Codec, Decoded, Message

__all__ = ["CODECS", "Codec", "Decoded", "Message", "get_codec"]

CODECS: dict[str, Codec] = {
    codec.name: codec
    for codec in (native.CODEC, owntracks.CODEC, ttn.CODEC, chirpstack.CODEC, watch.CODEC)
}


def get_codec(name: str) -> Codec:
    try:
        return CODECS[name]
    except KeyError:
        raise KeyError(f"unknown codec {name!r}; known: {', '.join(sorted(CODECS))}") from None
