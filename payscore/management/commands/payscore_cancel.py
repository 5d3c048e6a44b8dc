from payscore import services

from ._common import PayscoreCommand


class Command(PayscoreCommand):
    help = "Cancel (取消) a CREATED or DOING PayScore service order; audited."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--reason", required=True, help="≤50 characters, shown to the user")

    def handle(self, *args, merchant, out_order_no, user, reason, **options):
        order = self.order(merchant, out_order_no)
        who = self.actor(user)
        self.run(lambda: services.service_order_cancel(order=order, reason=reason, **who))
