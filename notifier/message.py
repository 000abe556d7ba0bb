"""What one notification says, rendered for one channel, and how a channel answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ChannelError", "Message", "Sent"]

# What a channel reports once it has handed the message over. Voice says "calling": the
# outcome (answered and pressed 1, no answer, busy) arrives later through the gateway's
# callback, so the call is not "delivered" until then.
Sent = Literal["delivered", "calling"]


class ChannelError(Exception):
    """The channel could not take the message. `permanent`: retrying cannot help (a bad
    address, a refused credential); the delivery stage then gives up at once."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """One notification to one channel of one contact, ready to send.

    `body` is the JSON document a webhook receives (DESIGN.md's contract: at least
    `notification_id`, `alert` and `ack_url`); `subject` and `text` are the same in words,
    in the contact's language, for every other channel; `short` fits one SMS.
    """

    notification_id: str
    channel: str  # sms, voice, email, wecom, dingtalk, feishu, webhook
    address: str
    secret: str | None
    language: str  # zh-CN or en
    subject: str
    text: str
    short: str
    body: dict[str, Any] = field(default_factory=dict)
    reply_code: str = ""  # what an SMS reply starts with to accept ("" for other channels)

    @property
    def ack_url(self) -> str:
        return str(self.body.get("ack_url", ""))
