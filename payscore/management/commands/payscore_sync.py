from payscore import services

from ._common import PayscoreCommand


class Command(PayscoreCommand):
    help = "Sync Order_Paid: tell WeChat a completed order was paid another way; audited."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--paid-time", required=True, help="yyyyMMddHHmmss (China time)")

    def handle(self, *args, merchant, out_order_no, user, paid_time, **options):
        order = self.order(merchant, out_order_no)
        who = self.actor(user)
        self.run(lambda: services.service_order_sync(order=order, paid_time=paid_time, **who))
