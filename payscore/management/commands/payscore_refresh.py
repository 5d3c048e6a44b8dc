from payscore import services

from ._common import PayscoreCommand


class Command(PayscoreCommand):
    help = "Query WeChat for a PayScore service order and take its state; audited."

    def handle(self, *args, merchant, out_order_no, user, **options):
        order = self.order(merchant, out_order_no)
        who = self.actor(user)
        self.run(lambda: services.service_order_refresh(order_id=order.pk, **who))
