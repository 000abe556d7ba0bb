"""The codec registry: every codec module is registered, under its own name."""

from __future__ import annotations

import importlib
import pkgutil

import devices.codecs
from devices.codecs import CODECS, Codec, get_codec


def test_every_codec_module_is_registered() -> None:
    for info in pkgutil.iter_modules(devices.codecs.__path__):
        module = importlib.import_module(f"devices.codecs.{info.name}")
        codec = getattr(module, "CODEC", None)
        if codec is not None:
            assert isinstance(codec, Codec)
            assert CODECS.get(codec.name) is codec, f"{info.name}.CODEC is not in CODECS"


def test_a_codec_is_found_by_name() -> None:
    assert get_codec("native") is CODECS["native"]
