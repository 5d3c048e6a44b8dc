"""Shared parts of the payscore_* commands: find the order, the acting user, and print the outcome."""

from __future__ import annotations

import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from payscore.models import ServiceOrder, ServiceOrderEvent
from portal.errors import DomainError


class PayscoreCommand(BaseCommand):
    def add_arguments(self, parser):
        parser.add_argument("--merchant", type=int, required=True, help="Merchant primary key")
        parser.add_argument("--out-order-no", required=True)
        parser.add_argument("--user", default="", help="Console username to record as the actor")

    def order(self, merchant: int, out_order_no: str) -> ServiceOrder:
        order = ServiceOrder.objects.filter(merchant_id=merchant, out_order_no=out_order_no).first()
        if order is None:
            raise CommandError("No such service order.")
        return order

    def actor(self, username: str) -> dict:
        """Keyword arguments naming who acts: a console user, or "cli"."""
        if not username:
            return {"actor": ServiceOrderEvent.Actor.STAFF, "user": None, "actor_label": "cli"}
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}.")
        return {"actor": ServiceOrderEvent.Actor.STAFF, "user": user, "actor_label": ""}

    def run(self, call):
        try:
            order = call()
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {exc.details or ''}".strip()) from exc
        except ValidationError as exc:
            raise CommandError(f"INVALID_INPUT: {json.dumps(exc.detail, ensure_ascii=False)}") from exc
        line = f"{order.out_order_no}: {order.state_label}"
        if order.collection_state:
            line += f", collection {order.collection_state} (paid {order.paid_amount} fen)"
        if order.pending_action:
            line += f"; outcome of {order.pending_action} being confirmed (a worker re-queries WeChat)"
        if order.last_error_code:
            line += f"; last error {order.last_error_code} {order.last_error_message}"
        self.stdout.write(line)
        return order


def json_argument(value: str, name: str):
    try:
        return json.loads(value)
    except ValueError as exc:
        raise CommandError(f"--{name} is not JSON: {exc}") from exc
