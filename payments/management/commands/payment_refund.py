from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from payments import services
from payments.models import Payment
from portal.errors import DomainError


class Command(BaseCommand):
    help = "Refund part or all of a paid payment (reverse when allowed, else the refund API); audited."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", type=int, required=True, help="Merchant primary key")
        parser.add_argument("--out-trade-no", required=True)
        parser.add_argument("--fee", type=int, required=True, help="Refund amount in fen")
        parser.add_argument("--reason", default="")
        parser.add_argument("--user", default="", help="Console username to record as the actor")

    def handle(self, *args, merchant, out_trade_no, fee, reason, user, **options):
        payment = Payment.objects.filter(merchant_id=merchant, out_trade_no=out_trade_no).first()
        if payment is None:
            raise CommandError("No such payment.")
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user {user!r}.")
        try:
            refund = services.refund_create(
                payment=payment, refund_fee=fee, reason=reason, user=actor, actor_label="" if actor else "cli"
            )
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message} {exc.details or ''}".strip()) from exc
        self.stdout.write(f"{refund.out_refund_no}: {refund.kind} {refund.refund_fee} fen, {refund.status}")
        self.stdout.write("A worker completes it; follow it with payment_show.")
