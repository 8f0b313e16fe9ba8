"""Alert channels: each sends one `Notification` and says what went wrong when it cannot.

A channel is built from its configuration and an `httpx.AsyncClient` (the seam tests replace with
a client pointed at a local server). `send` returns a provider reference to keep (a Slack message's
`channel:ts`), or None, and raises `DeliveryError` with the HTTP status and Retry-After when the
service refused. Error texts never contain the URL or a secret. Channels that send one message per
recipient (e-mail, SMS) go through `send_each`, which skips the recipients in `note["done"]` and
appends each one it reaches, so a retry never sends twice to the same recipient.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from kansoku.alerts.channels._common import (
    Channel,
    DeliveryError,
    check_response,
    name_list,
    post,
    retry_after_seconds,
    send_each,
)
from kansoku.alerts.rules import ChannelConfig, SiteInfo
from kansoku.typing import Clock

if TYPE_CHECKING:  # httpx is imported by the channel modules, when a channel is built
    import httpx

__all__ = [
    "Channel",
    "DeliveryError",
    "build_channel",
    "check_response",
    "name_list",
    "post",
    "retry_after_seconds",
    "send_each",
]


def build_channel(
    config: ChannelConfig, client: httpx.AsyncClient, site: SiteInfo, clock: Clock = time.time
) -> Channel:
    """The channel object for a configuration."""
    from kansoku.alerts.channels import (
        alertmanager,
        apprise_channel,
        email,
        log,
        pagerduty,
        slack,
        sms,
        webhook,
    )

    builders: Mapping[str, Any] = {
        "slack": slack.SlackSender, "email": email.EmailSender, "webhook": webhook.WebhookSender,
        "pagerduty": pagerduty.PagerDutySender, "sms": sms.SmsSender,
        "alertmanager": alertmanager.AlertmanagerSender, "apprise": apprise_channel.AppriseSender,
        "log": log.LogSender,
    }
    if config.type in ("webhook", "alertmanager"):  # they stamp the time on what they send
        timed: Channel = builders[config.type](config, client, site, clock)
        return timed
    channel: Channel = builders[config.type](config, client, site)
    return channel
