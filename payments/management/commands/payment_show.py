from django.core.management.base import BaseCommand, CommandError

from payments.models import Payment


class Command(BaseCommand):
    help = "Print a payment, its refunds and its event timeline (redacted)."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", type=int, required=True)
        parser.add_argument("--out-trade-no", required=True)

    def handle(self, *args, merchant, out_trade_no, **options):
        payment = Payment.objects.filter(merchant_id=merchant, out_trade_no=out_trade_no).first()
        if payment is None:
            raise CommandError("No such payment.")
        self.stdout.write(
            f"{payment.out_trade_no} {payment.status} total {payment.total_fee} fen, refunded "
            f"{payment.refunded_fee}, transaction {payment.transaction_id or '-'}"
        )
        for refund in payment.refunds.order_by("created_at"):
            self.stdout.write(f"  refund {refund.out_refund_no} {refund.kind} {refund.refund_fee} {refund.status}")
        for event in payment.events.all():
            change = f" {event.from_status}->{event.to_status}" if event.to_status else ""
            self.stdout.write(
                f"  {event.created_at:%H:%M:%S} {event.actor:<12} {event.action:<14} "
                f"{event.outcome:<9} {event.code}{change} {event.message}"
            )
