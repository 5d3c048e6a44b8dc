"""Play a face-pay terminal against a running server (see payments/simulator.py)."""

import httpx
from django.core.management.base import BaseCommand, CommandError

from payments.simulator import run_payment
from payments.terminal_client import TerminalClient
from portal.models import Device


class Command(BaseCommand):
    help = "Simulate a terminal: rawdata → authinfo → face code → pay → poll, against a server with the sandbox."

    def add_arguments(self, parser):
        parser.add_argument("--device", required=True, help="device_id")
        parser.add_argument("--secret", default="", help="device secret (read from this database when omitted)")
        parser.add_argument("--amount", type=int, default=100, help="fen")
        parser.add_argument("--method", choices=["FACE", "CODE"], default="FACE")
        parser.add_argument("--scenario", default="", help="a sandbox scenario name; sets the amount's last digits")
        parser.add_argument("--server", default="http://127.0.0.1:8000")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--payscore", action="store_true", help="run a PayScore service order")
        parser.add_argument("--member", action="store_true", help="identify a member, then activate the card")

    def handle(self, *args, device, secret, amount, method, scenario, server, count, payscore, member, **options):
        if not secret:
            found = Device.objects.filter(device_id=device).first()
            if found is None:
                raise CommandError(f"No device {device!r} here; pass --secret.")
            secret = found.secret.reveal()
        if scenario:
            from sandbox.scenarios import UMF_AMOUNT_CODES, WECHAT_AMOUNT_CODES

            codes = {
                name.value: code for table in (WECHAT_AMOUNT_CODES, UMF_AMOUNT_CODES) for code, name in table.items()
            }
            if scenario.upper() not in codes and scenario.upper() != "SUCCESS":
                raise CommandError(f"Unknown scenario; one of: SUCCESS, {', '.join(sorted(codes))}")
            if scenario.upper() != "SUCCESS":
                amount = (amount // 1000) * 1000 + codes[scenario.upper()]  # e.g. 1101 fen = USERPAYING_THEN_SUCCESS
        terminal = TerminalClient(server, device_id=device, secret=secret, timeout=40)
        sandbox = httpx.Client(base_url=server.rstrip("/") + "/sandbox/", timeout=10)
        failures = 0
        for number in range(1, count + 1):
            if payscore:
                from payscore.simulator import run_payscore

                self.stdout.write(f"PayScore order {number}/{count}: ¥{amount / 100:.2f} on {device}")
                result = run_payscore(terminal, sandbox=sandbox, amount=amount, say=self.stdout.write)
                final = f"{result.out_order_no} {result.state} {result.collection_state}"
            elif member:
                from members.simulator import run_member

                self.stdout.write(f"Member visit {number}/{count} on {device}")
                result = run_member(terminal, sandbox=sandbox, say=self.stdout.write)
                final = result.summary
            else:
                self.stdout.write(f"Payment {number}/{count}: ¥{amount / 100:.2f} by {method} on {device}")
                result = run_payment(terminal, sandbox=sandbox, amount=amount, method=method, say=self.stdout.write)
                final = f"{result.out_trade_no} {result.status}"
            if result.error:
                failures += 1
                self.stderr.write(f"  error: {result.error}")
            else:
                self.stdout.write(self.style.SUCCESS(f"  final: {final}"))
        if failures:
            raise CommandError(f"{failures} of {count} simulated runs did not finish")
