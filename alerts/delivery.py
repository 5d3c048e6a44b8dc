"""Sending alert deliveries to the chat robots (the outbox's other half; docs/alerts.md).

- Claim, in one short transaction: each enabled robot with due deliveries, its row locked (SKIP LOCKED: workers
  share the robots), gets at most its messages left this minute (ALERT_ROBOT_MESSAGES_PER_MINUTE, counted over the
  last 60 s in `recent_sends`). When more alerts wait than it has messages left, all but one go one per message and
  the rest together in one summary message. Claimed deliveries are leased (`next_attempt_at`) and their attempt
  numbered before anything is sent: a worker killed mid-send leaves leases that run out, and the alerts are sent
  again (at least once).
- Send, outside any transaction: one POST per message (`alerts.robots`), robots side by side, each robot's messages
  in order.
- Record: errcode 0 → SENT; errcode ≠ 0 or another refusal → FAILED; 5xx, a timeout or no connection → PENDING again
  after the next wait of ALERT_ROBOT_RETRY_SCHEDULE, FAILED after the last. Only rows still carrying this attempt's
  number are written.

Nothing here is on a payment's path: the rules only read, and the sending runs in the workers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from . import robots, text
from .models import AlertChannel, AlertDelivery

logger = logging.getLogger(__name__)

Status = AlertDelivery.Status
_CLAIM_LIMIT = 200  # deliveries read per robot and claim (more wait for the next run)
_THREADS = 8  # robots sent to at once (a slow one holds a thread, not the others' messages)


def _now() -> datetime:
    return timezone.now()


def take_slots(channel: AlertChannel, wanted: int, now: datetime) -> int:
    """Reserve up to `wanted` of the robot's messages for this minute on its locked row; returns how many."""
    moment = now.timestamp()
    recent = [sent for sent in channel.recent_sends if sent > moment - 60]
    granted = max(0, min(wanted, settings.ALERT_ROBOT_MESSAGES_PER_MINUTE - len(recent)))
    channel.recent_sends = recent + [moment] * granted
    channel.save(update_fields=["recent_sends"])
    return granted


@dataclass(frozen=True)
class Message:
    channel_id: int
    kind: str
    url: str
    secret: str
    title: str
    text: str
    deliveries: tuple[tuple[int, int], ...]  # (delivery id, its attempt number)
    in_summary: bool


def lease_seconds() -> float:
    """Long enough for a robot's minute of messages to be sent even if each one times out."""
    return settings.ALERT_ROBOT_TIMEOUT * settings.ALERT_ROBOT_MESSAGES_PER_MINUTE + 30


def claim(now: datetime) -> list[Message]:
    """Lease what is due and can be sent this minute, as the messages that carry it."""
    messages = []
    with transaction.atomic():
        due = AlertDelivery.objects.filter(status=Status.PENDING, next_attempt_at__lte=now)
        channels = AlertChannel.objects.filter(pk__in=due.values("channel_id"), is_active=True).select_for_update(
            skip_locked=True
        )
        for channel in channels:
            waiting = list(
                due.filter(channel=channel)
                .select_related("alert__merchant", "alert__provider")
                .order_by("next_attempt_at", "id")[:_CLAIM_LIMIT]
            )
            granted = take_slots(channel, min(len(waiting), settings.ALERT_ROBOT_MESSAGES_PER_MINUTE), now)
            if not granted:
                continue  # its minute is used up: the deliveries stay due
            if len(waiting) <= granted:
                groups = [[row] for row in waiting]
            else:
                groups = [[row] for row in waiting[: granted - 1]] + [waiting[granted - 1 :]]
            taken = [row.pk for group in groups for row in group]
            AlertDelivery.objects.filter(pk__in=taken).update(
                attempts=F("attempts") + 1,
                next_attempt_at=now + timedelta(seconds=lease_seconds()),
                last_attempt_at=now,
            )
            url = channel.webhook_url.reveal()
            secret = channel.secret.reveal() if channel.secret else ""
            for group in groups:
                summary = len(group) > 1
                title, markdown = (
                    text.chat_summary([row.alert for row in group]) if summary else text.chat_message(group[0].alert)
                )
                messages.append(
                    Message(
                        channel_id=channel.pk,
                        kind=channel.kind,
                        url=url,
                        secret=secret,
                        title=title,
                        text=markdown,
                        deliveries=tuple((row.pk, row.attempts + 1) for row in group),
                        in_summary=summary,
                    )
                )
    return messages


def _send_all(messages: list[Message]) -> list[tuple[Message, robots.Answer]]:
    by_channel: dict[int, list[Message]] = defaultdict(list)
    for message in messages:
        by_channel[message.channel_id].append(message)

    def send_in_order(queue: list[Message]) -> list[tuple[Message, robots.Answer]]:
        client = robots.robot_client
        return [
            (m, robots.send(client, kind=m.kind, url=m.url, secret=m.secret, title=m.title, text=m.text)) for m in queue
        ]

    if _THREADS == 1 or len(by_channel) == 1:
        return [result for queue in by_channel.values() for result in send_in_order(queue)]
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="alert-robot") as pool:
        return [result for results in pool.map(send_in_order, by_channel.values()) for result in results]


def record(results: list[tuple[Message, robots.Answer]], now: datetime) -> None:
    schedule = settings.ALERT_ROBOT_RETRY_SCHEDULE
    with transaction.atomic():
        for message, answer in results:
            for delivery_id, number in message.deliveries:
                rows = AlertDelivery.objects.filter(pk=delivery_id, attempts=number, status=Status.PENDING)
                if answer.ok:
                    rows.update(
                        status=Status.SENT, sent_at=now, next_attempt_at=None, last_error="",
                        in_summary=message.in_summary,
                    )  # fmt: skip
                elif answer.retry and number <= len(schedule):
                    rows.update(next_attempt_at=now + timedelta(seconds=schedule[number - 1]), last_error=answer.error)
                else:
                    rows.update(status=Status.FAILED, next_attempt_at=None, last_error=answer.error)
            if not answer.ok:
                logger.warning(
                    "alerts: robot %s did not take a message of %d alert(s): %s",
                    message.channel_id,
                    len(message.deliveries),
                    answer.error,
                )


def deliver(*, now: datetime | None = None) -> int:
    """Send what is due at `now` (default: now). Returns the number of messages sent (delivered or not)."""
    messages = claim(now or _now())
    if not messages:
        return 0
    record(_send_all(messages), now or _now())  # retries wait from the moment the answers came
    return len(messages)
