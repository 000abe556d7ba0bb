"""The bot apps' addresses: what a contact pastes from WeCom, DingTalk or Feishu (or an
apprise URL) becomes an apprise URL that apprise accepts; anything else is refused for
good, without the token in the reason."""

from __future__ import annotations

import pytest
from apprise import Apprise, AppriseAsset

from notifier.channels.apps import APPS, AppChannel, apprise_url
from notifier.message import ChannelError

WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
DING_TOKEN = "1e5f0d6a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
DING_SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
FEISHU_TOKEN = "2f4e8a90-1b2c-4d3e-8f90-a1b2c3d4e5f6"


@pytest.mark.parametrize(
    ("channel_type", "address", "secret", "url"),
    [
        (
            "wecom",
            f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}",
            None,
            f"wecombot://{WECOM_KEY}",
        ),
        ("wecom", f"wecombot://{WECOM_KEY}", None, f"wecombot://{WECOM_KEY}"),
        ("wecom", f"  wecombot://{WECOM_KEY}/ ", "unused", f"wecombot://{WECOM_KEY}"),
        (
            "dingtalk",
            f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}",
            None,
            f"dingtalk://{DING_TOKEN}/",
        ),
        (
            "dingtalk",
            f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}",
            DING_SECRET,
            f"dingtalk://{DING_SECRET}@{DING_TOKEN}/",
        ),
        ("dingtalk", f"dingtalk://{DING_TOKEN}", None, f"dingtalk://{DING_TOKEN}/"),
        (
            "dingtalk",
            f"dingtalk://{DING_SECRET}@{DING_TOKEN}/",
            None,
            f"dingtalk://{DING_SECRET}@{DING_TOKEN}/",
        ),
        (
            "feishu",
            f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
            None,
            f"feishu://{FEISHU_TOKEN}",
        ),
        ("feishu", f"feishu://{FEISHU_TOKEN}", None, f"feishu://{FEISHU_TOKEN}"),
        (
            "feishu",
            f"https://open.larksuite.com/open-apis/bot/v2/hook/{FEISHU_TOKEN}",
            None,
            f"lark://{FEISHU_TOKEN}",
        ),
    ],
)
def test_each_address_becomes_an_apprise_url_apprise_takes(
    channel_type: str, address: str, secret: str | None, url: str
) -> None:
    assert apprise_url(channel_type, address, secret) == url
    apprise = Apprise(asset=AppriseAsset(storage_mode="memory"))
    assert apprise.add(url)
    # apprise read what we meant: the token (and DingTalk's secret) in their places.
    service = apprise[0]
    assert getattr(service, {"wecom": "key"}.get(channel_type, "token")) in url
    if channel_type == "dingtalk":
        assert getattr(service, "secret", None) == (DING_SECRET if DING_SECRET in url else None)


@pytest.mark.parametrize(
    ("channel_type", "address"),
    [
        ("wecom", f"https://qyapi.weixin.qq.com.evil.example/cgi-bin/webhook/send?key={WECOM_KEY}"),
        ("wecom", f"https://qyapi.weixin.qq.com/cgi-bin/other?key={WECOM_KEY}"),
        ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"),  # no key
        ("wecom", f"https://oapi.dingtalk.com/robot/send?access_token={DING_TOKEN}"),
        ("wecom", "wecombot://key with spaces"),
        ("dingtalk", f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}"),
        (
            "dingtalk",
            f"https://oapi.dingtalk.com.evil.example/robot/send?access_token={DING_TOKEN}",
        ),
        ("dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=a-b"),  # not alphanumeric
        ("dingtalk", f"wecombot://{WECOM_KEY}"),
        ("feishu", f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"),
        ("feishu", f"https://open.feishu.cn/open-apis/other/{FEISHU_TOKEN}"),
        ("feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/"),
        ("feishu", "13900000000"),  # a user's id: needs an app, not a bot
        ("feishu", ""),
        ("webhook", "https://example.org/hook"),  # not a bot app at all
    ],
)
def test_an_address_that_is_not_the_apps_is_refused_for_good(
    channel_type: str, address: str
) -> None:
    with pytest.raises(ChannelError) as error:
        apprise_url(channel_type, address, None)
    assert error.value.permanent
    for token in (WECOM_KEY, DING_TOKEN, FEISHU_TOKEN):
        assert token not in error.value.reason


def test_a_dingtalk_secret_apprise_cannot_use_is_refused() -> None:
    address = f"dingtalk://{DING_TOKEN}"
    with pytest.raises(ChannelError) as error:
        apprise_url("dingtalk", address, "SEC-with-dash")
    assert error.value.permanent and "SEC-with-dash" not in error.value.reason


def test_a_signed_feishu_bot_is_refused_with_what_to_do() -> None:
    address = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_TOKEN}"
    with pytest.raises(ChannelError) as error:
        apprise_url("feishu", address, "feishu-sign-secret")
    assert error.value.permanent and "signature" in error.value.reason


def test_there_is_one_channel_per_app() -> None:
    assert set(APPS) == {"wecom", "dingtalk", "feishu"}
    with pytest.raises(ValueError):
        AppChannel("sms")
