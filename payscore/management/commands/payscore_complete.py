from payscore import inputs, services

from ._common import PayscoreCommand, json_argument


class Command(PayscoreCommand):
    help = "Complete (完结) a PayScore service order in DOING/USER_CONFIRM; audited."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--post-payments", required=True, help='JSON list, e.g. [{"name":"租借费","amount":300}]')
        parser.add_argument("--post-discounts", default="[]", help="JSON list")
        parser.add_argument("--total-amount", type=int, required=True, help="fen")
        parser.add_argument("--time-range", default="", help='JSON, e.g. {"end_time":"20260101120000"}')
        parser.add_argument("--location", default="", help="JSON")

    def handle(self, *args, merchant, out_order_no, user, post_payments, post_discounts, total_amount, **options):
        order = self.order(merchant, out_order_no)
        body = {
            "post_payments": json_argument(post_payments, "post-payments"),
            "post_discounts": json_argument(post_discounts, "post-discounts"),
            "total_amount": total_amount,
        }
        for name in ("time_range", "location"):
            if options[name]:
                body[name] = json_argument(options[name], name.replace("_", "-"))
        who = self.actor(user)
        self.run(
            lambda: services.service_order_complete(
                order=order, data=inputs.validated(inputs.ServiceOrderCompleteSerializer, body), **who
            )
        )
