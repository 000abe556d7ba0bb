#!/usr/bin/env python3
"""A receiver for carewatch's webhook notifications, with the standard library only.

Copy it and put what your system does with a notification in `handle()`. It does what
every receiver must (docs/notifications.md, "Writing a webhook receiver"):

1. Check the signature: `X-Carewatch-Signature` is
   `sha256=<hex HMAC-SHA256(secret, "<X-Carewatch-Timestamp>.<body>")>`, compared in
   constant time. A request that fails it gets 401.
2. Refuse a timestamp more than 5 minutes from now, in either direction (a recorded
   request sent again later): 401 too.
3. Deduplicate on `notification_id`: delivery is at least once, so a notification can
   come again (a retry after a slow answer, a notifier restarted mid-send). A repeat is
   answered 2xx too (else it is retried) and not handled again.
4. Answer at once, then do the work: carewatch waits 10 s at most, and counts a slow
   answer as a failure and sends again.

    python3 webhook_receiver.py --port 8000 --secret KEY    # or WEBHOOK_SECRET=KEY

It prints `listening on ...`, then `new <notification_id> ...` per new notification and
`duplicate <notification_id>` per repeat (refusals go to stderr). Put it behind your HTTPS
reverse proxy: the body holds a resident's name, address and phone number.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import queue
import sys
import threading
import time
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_S = 300  # how far the timestamp may be from our clock, either way
MAX_BODY_BYTES = 1024 * 1024
REMEMBERED_IDS = 100_000


def signed(secret: bytes, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """Whether `body` was signed with `secret` at `timestamp`, within TOLERANCE_S of now."""
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > TOLERANCE_S:
        return False
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(f"sha256={digest}".encode(), signature.strip().lower().encode())


class Seen:
    """The newest REMEMBERED_IDS notification ids taken, to recognise a repeat.

    In memory, so a restart forgets them: a real receiver keeps the notifications it
    takes in its database, with a unique key on notification_id, for a day at least.
    """

    def __init__(self, size: int = REMEMBERED_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, notification_id: str) -> bool:
        with self._lock:
            if notification_id in self._ids:
                return False
            self._ids[notification_id] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


def handle(notification: dict[str, Any]) -> None:
    """What your system does with a new notification; here, one line on stdout.

    `type` is "alert" (someone should go: the ack_url takes their answer), "resolved"
    (it is over: nobody needs to go) or "supervisor" (nobody took the alert in time).
    """
    alert = notification["alert"]
    who = (alert.get("resident") or {}).get("name") or alert["device_id"]
    print(
        f"new {notification['notification_id']} {notification['type']}:"
        f" alert {alert['alert_id']} {alert['severity']} {alert['kind']} {who}"
        f" ({alert['status']}) answer at {notification['ack_url']}",
        flush=True,
    )


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], secret: bytes) -> None:
        super().__init__(address, Handler)
        self.secret = secret
        self.seen = Seen()
        # Taken notifications wait here for `handle`, so the answer never waits for it.
        self.work: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._handle_taken, daemon=True).start()

    def _handle_taken(self) -> None:
        while True:
            notification = self.work.get()
            try:
                handle(notification)
            except Exception as exc:  # one bad notification must not stop the others
                print(f"could not handle {notification.get('notification_id')}: {exc!r}",
                      file=sys.stderr, flush=True)  # fmt: skip


class Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or not 0 < int(length) <= MAX_BODY_BYTES:
            self._answer(413 if length.isdigit() else 411, "a JSON body up to 1 MiB")
            return
        body = self.rfile.read(int(length))
        timestamp = self.headers.get("X-Carewatch-Timestamp", "")
        signature = self.headers.get("X-Carewatch-Signature", "")
        if not signed(self.server.secret, timestamp, signature, body, time.time()):
            self._answer(401, "bad signature or old timestamp")
            return
        try:
            notification = json.loads(body)
            notification_id = str(notification["notification_id"])
        except (ValueError, TypeError, KeyError):
            self._answer(400, "not a carewatch notification")
            return
        first = self.server.seen.first_time(notification_id)
        if first:
            # In a real receiver: store it (the unique key deduplicates) before answering.
            self.server.work.put(notification)
        self._answer(204)
        if not first:
            print(f"duplicate {notification_id}", flush=True)

    def _answer(self, status: int, refusal: str = "") -> None:
        if refusal:
            print(f"refused ({status}): {refusal}", file=sys.stderr, flush=True)
        self.send_response(status)
        if status != 204:
            self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: the lines above say what happened


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Receive carewatch's webhook notifications.")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="default: 8000")
    parser.add_argument(
        "--secret",
        default=os.environ.get("WEBHOOK_SECRET", ""),
        help="the webhook channel's secret (default: $WEBHOOK_SECRET)",
    )
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("give the channel's secret: --secret KEY, or WEBHOOK_SECRET=KEY")
    server = Receiver((args.host, args.port), args.secret.encode())
    print(f"listening on http://{args.host}:{server.server_port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
