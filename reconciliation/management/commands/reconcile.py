"""`python manage.py reconcile --date YYYY-MM-DD [--merchant PK] [--file PATH] [--json]`: the beat job's pipeline by
hand, for one day: every merchant whose channel offers bills (or the one named), downloading each bill — or, with
--file, importing the given bill for the one merchant named."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from portal.models import Merchant
from reconciliation import services


class Command(BaseCommand):
    help = "Reconcile one day's channel bills against our payments and refunds."

    def add_arguments(self, parser):
        parser.add_argument("--date", required=True, help="The bill's day, YYYY-MM-DD (China time).")
        parser.add_argument("--merchant", type=int, help="Only this merchant (primary key).")
        parser.add_argument("--file", help="Import this bill file instead of downloading (needs --merchant).")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        try:
            bill_date = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        content = None
        if options["file"]:
            if not options["merchant"]:
                raise CommandError("--file needs --merchant: a bill belongs to one merchant")
            try:
                content = Path(options["file"]).read_bytes()
            except OSError as exc:
                raise CommandError(f"cannot read {options['file']}: {exc.strerror}") from None
        if options["merchant"]:
            merchants = list(Merchant.objects.select_related("provider").filter(pk=options["merchant"]))
            if not merchants:
                raise CommandError(f"no merchant {options['merchant']}")
        else:
            merchants = list(services.merchants_with_bills().select_related("provider"))
        results, failed = [], False
        for merchant in merchants:
            try:
                report = services.reconcile_day(merchant=merchant, bill_date=bill_date, content=content)
            except services.BillProblem as exc:
                failed = True
                kind = type(exc).__name__
                self.stderr.write(f"merchant {merchant.pk}: {kind}: {exc}")
                results.append({"merchant": merchant.pk, "error": kind, "message": str(exc)})
                continue
            results.append(report.as_json())
            if not options["json"]:
                self.stdout.write(
                    f"merchant {merchant.pk}: {report.status} v{report.version or '-'} rows {report.rows}, "
                    f"matched {report.matched}, differences {len(report.differences)}, carried {report.carried}"
                )
                for item in report.differences:
                    self.stdout.write(f"  {item['kind']} {item['out_trade_no']} {item['refund_no']}".rstrip())
        if options["json"]:
            self.stdout.write(json.dumps({"date": bill_date.isoformat(), "merchants": results}, ensure_ascii=False))
        if failed:
            raise CommandError("some bills were not reconciled (see above)")
