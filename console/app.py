"""Putting the console into the API's application: its pages at `/`, its static files
(vendored, no CDN) at `/static`, and where a page without a session goes."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from console import fleet, mapping, queue, session, supervision
from console.geo import tile_source
from console.web import LoginRequired, login_required
from plumbing.settings import ConfigError

__all__ = ["ConsoleConfig", "install"]


@dataclass(frozen=True)
class ConsoleConfig:
    """What the console needs beyond the API: the centre's time zone (for users who set
    none) and the map's tile source (CAREWATCH_MAP_TILES; '' draws on a plain background)."""

    centre_tz: str = "Asia/Shanghai"
    map_tiles: str = ""


def install(app: FastAPI, config: ConsoleConfig | None = None) -> None:
    """Serve the console from `app` (an application made by api.app.create_app)."""
    app.state.console = config or ConsoleConfig()
    try:  # a bad setting stops the process at start, not each map later
        app.state.map_tiles = tile_source(app.state.console.map_tiles)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    static = resources.files("console") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="console-static")
    for module in (session, queue, fleet, mapping, supervision):
        app.include_router(module.router)
    app.add_exception_handler(LoginRequired, login_required)
