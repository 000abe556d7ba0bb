"""What the processes' logs may not say."""

from __future__ import annotations

import logging

import pytest

from plumbing.logs import setup_logging


def test_http_request_lines_with_their_urls_stay_out_of_the_logs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(level="INFO", fmt="json", process_name="notifier")
        # What httpx says of every request: a bot's URL carries its token.
        logging.getLogger("httpx").info(
            "HTTP Request: POST https://oapi.dingtalk.com/robot/send?access_token=SECRET"
        )
        logging.getLogger("notifier").info("kept")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "kept" in err and "SECRET" not in err
