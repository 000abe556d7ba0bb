"""Answers from people who have no account: the ack link of a notification, and the SMS
and voice gateways' callbacks (docs/notifications.md).

`GET /ack/{notification_id}?e=…&s=…` shows the alert and two buttons; `POST` the same URL
accepts (the alert is acknowledged with the contact as the actor, through the alert
lifecycle, and every unsent notification of the alert is cancelled) or, with
`answer=decline`, declines (the chain moves on at once). The link's signature and expiry
are its authentication (notifier/links.py).

`POST /api/v1/gateways/sms` (a reply: `{"from", "text"}`, the text starting with the
notification's code, "<code> 0" to decline) and `POST /api/v1/gateways/voice` (a call's
outcome: `{"notification_id", "status", "digits"}`, 1 pressed = accepted, 2 = declined,
anything else = no answer) are signed by the gateway like our webhooks are
(`X-Carewatch-Timestamp`, `X-Carewatch-Signature`, CAREWATCH_GATEWAY_SECRET).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal, TypeVar

import jinja2
import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api import audit
from api.deps import Conn
from api.models import Error
from api.routes import API_PREFIX
from notifier import answers, store
from notifier.channels.signing import verify
from notifier.links import ACK_PATH, LinkError, Links

__all__ = ["gateways", "links"]

links = APIRouter(
    prefix=ACK_PATH,
    tags=["answers"],
    responses={
        403: {"model": Error, "description": "not a link the notifier made (or altered)"},
        404: {"model": Error, "description": "no such notification, or links are off"},
        409: {"model": Error, "description": "the alert is resolved already (JSON only)"},
        410: {"model": Error, "description": "the link has expired"},
        422: {"model": Error, "description": "the answer is neither accept nor decline"},
    },
)
gateways = APIRouter(
    prefix=f"{API_PREFIX}/gateways",
    tags=["answers"],
    responses={code: {"model": Error} for code in (401, 404, 422)},
)

_PAGES = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("api").joinpath("templates", name).read_text("utf-8")
    ),
    autoescape=True,
)
Parsed = TypeVar("Parsed", bound=BaseModel)
_DECLINE = re.compile(r"^\s*(0|n|no|不|否|不能|decline)\s*$", re.IGNORECASE)


class AnswerBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answer: Literal["accept", "decline"] = "accept"


class AnswerOut(BaseModel):
    notification_id: str
    alert_id: int
    answer: str = Field(description="the notification's status now: accepted, declined...")
    changed: bool = Field(description="false: it had been answered so already")
    alert_status: str
    acknowledged_by: str | None


@links.get("/{notification_id}", response_class=HTMLResponse, summary="an ack link's page")
async def show(
    request: Request, conn: Conn, notification_id: str, e: str = "", s: str = ""
) -> HTMLResponse:
    try:
        _check(request, notification_id, e, s)
    except HTTPException as exc:
        return _refused(exc)  # a person's browser: a page, not JSON
    found = await _notification(conn, notification_id)
    alert = await store.alert_for_notice(conn, found["alert_id"])
    return _page(found, alert, done=None)


@links.post(
    "/{notification_id}",
    response_model=AnswerOut,
    summary="accept (or, with answer=decline, decline) through an ack link",
)
async def answer_link(
    request: Request, conn: Conn, notification_id: str, e: str = "", s: str = ""
) -> Response:
    wants_json = any("json" in request.headers.get(h, "") for h in ("accept", "content-type"))
    try:
        _check(request, notification_id, e, s)
    except HTTPException as exc:
        if wants_json:
            raise
        return _refused(exc)
    said = await _said(request)
    result = await _answer(conn, notification_id, said, via="ack link")
    if not wants_json:
        return _page(result["notification"], result["alert"], done=result)
    if result["alert"]["status"] == "resolved" and not result["changed"]:
        raise HTTPException(409, f"alert {result['alert']['alert_id']} is already resolved")
    return JSONResponse(jsonable_encoder(_out(result)))


class SmsReply(BaseModel):
    model_config = ConfigDict(extra="ignore")  # gateways send more than this
    from_: str = Field(alias="from", min_length=3, max_length=40)
    text: str = Field(max_length=1000)


class VoiceOutcome(BaseModel):
    model_config = ConfigDict(extra="ignore")
    notification_id: str = Field(max_length=200)
    status: Literal["answered", "no_answer", "busy", "failed"]
    digits: str = Field("", max_length=20)


async def _signed(
    request: Request,
    timestamp: Annotated[str, Header(alias="X-Carewatch-Timestamp")] = "",
    signature: Annotated[str, Header(alias="X-Carewatch-Signature")] = "",
) -> bytes:
    """The body of a gateway's callback, once its signature is checked."""
    secret: str = request.app.state.gateway_secret
    if not secret:
        raise HTTPException(404, "gateway callbacks are off here: set CAREWATCH_GATEWAY_SECRET")
    body = await request.body()
    if not verify(secret, timestamp, signature, body, now=time.time()):
        raise HTTPException(401, "X-Carewatch-Signature does not match (or the timestamp is old)")
    return body


SignedBody = Annotated[bytes, Depends(_signed)]


@gateways.post("/sms", response_model=AnswerOut, summary="an SMS reply (the gateway's callback)")
async def sms_reply(conn: Conn, body: SignedBody) -> dict[str, Any]:
    reply = _parsed(SmsReply, body)
    code, _, rest = reply.text.strip().partition(" ")
    if not code.isdigit():
        raise HTTPException(422, "text: start with the code the message gave (6 digits)")
    found = await store.by_reply(conn, reply.from_, code)
    if found is None:
        raise HTTPException(404, f"no notification with code {code} was sent to {reply.from_}")
    said: answers.Answer = "declined" if _DECLINE.match(rest) else "accepted"
    return _out(await _answer(conn, found, said, via="SMS reply"))


@gateways.post("/voice", response_model=AnswerOut, summary="a call's outcome (the gateway's)")
async def voice_outcome(conn: Conn, body: SignedBody) -> dict[str, Any]:
    outcome = _parsed(VoiceOutcome, body)
    said: answers.Answer = "no_answer"
    if outcome.status == "answered" and outcome.digits.startswith("1"):
        said = "accepted"
    elif outcome.status == "answered" and outcome.digits.startswith("2"):
        said = "declined"
    return _out(await _answer(conn, outcome.notification_id, said, via="voice call"))


def _parsed(model: type[Parsed], body: bytes) -> Parsed:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_context=False)) from None


def _check(request: Request, notification_id: str, e: str, s: str) -> None:
    signer: Links | None = request.app.state.links
    if signer is None:
        raise HTTPException(404, "ack links are not enabled on this server")
    try:
        signer.check(notification_id, e, s, time.time())
    except LinkError as exc:
        raise HTTPException(410 if exc.expired else 403, str(exc)) from None


async def _said(request: Request) -> answers.Answer:
    """accept unless the form or JSON body says decline; an empty body accepts."""
    kind = request.headers.get("content-type", "")
    raw = await request.body()
    if not raw:
        return "accepted"
    if "json" in kind:
        try:
            wanted = AnswerBody.model_validate(orjson.loads(raw)).answer
        except (orjson.JSONDecodeError, ValueError):
            raise HTTPException(422, 'body: {"answer": "accept" | "decline"}') from None
    else:
        wanted = (await request.form()).get("answer", "accept")  # type: ignore[assignment]
        if wanted not in ("accept", "decline"):
            raise HTTPException(422, "answer: accept or decline")
    return "declined" if wanted == "decline" else "accepted"


async def _notification(conn: Conn, notification_id: str) -> dict[str, Any]:
    found = await store.get_notification(conn, notification_id)
    if found is None:
        raise HTTPException(404, f"no notification {notification_id}")
    return found


async def _answer(
    conn: Conn, notification_id: str, said: answers.Answer, *, via: str
) -> dict[str, Any]:
    now = datetime.now(UTC)
    async with conn.transaction():
        try:
            result = await answers.answer(conn, notification_id, said, now, via=via)
        except answers.UnknownNotification:
            raise HTTPException(404, f"no notification {notification_id}") from None
        if result["changed"]:
            n = result["notification"]
            await audit.record(
                conn, actor=answers.contact_actor(n), action=f"notification.{said}",
                target=f"alert:{n['alert_id']}", before=None,
                after={"notification_id": notification_id, "via": via},
            )  # fmt: skip
    return result


def _out(result: dict[str, Any]) -> dict[str, Any]:
    n, alert = result["notification"], result["alert"]
    return {
        "notification_id": n["notification_id"], "alert_id": n["alert_id"],
        "answer": n["status"], "changed": result["changed"], "alert_status": alert["status"],
        "acknowledged_by": alert["acknowledged_by"],
    }  # fmt: skip


_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_REFUSED = {
    403: "此链接无效。", 404: "此服务器未启用确认链接。",
    410: "此链接已过期。如仍需要您，监护中心会再联系您。",
}  # fmt: skip


def _refused(exc: HTTPException) -> HTMLResponse:
    """A link that does not work (forged, expired, links off), said to a person: a page in
    both languages, since who it was for is not known (or not to be trusted)."""
    en = str(exc.detail)
    page = _PAGES.get_template("ack_refused.html").render(
        zh=_REFUSED.get(exc.status_code, "此链接无法使用。"), en=f"{en[:1].upper()}{en[1:]}."
    )
    return HTMLResponse(page, status_code=exc.status_code, headers=_NO_STORE)


def _page(
    notification: dict[str, Any], alert: dict[str, Any] | None, *, done: dict[str, Any] | None
) -> HTMLResponse:
    message = notification["message"]
    zh = notification["language"].lower().startswith("zh")
    html = _PAGES.get_template("ack.html").render(
        zh=zh, lang="zh-CN" if zh else "en", body=message["body"], subject=message["subject"],
        text=message["text"], notification=notification, alert=alert or {}, done=done,
    )  # fmt: skip
    return HTMLResponse(html, headers=_NO_STORE)
