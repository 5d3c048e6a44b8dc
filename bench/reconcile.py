"""How long and how much memory reconciling one large WeChat bill takes: `python -m bench.reconcile [--rows N]`.

A throwaway SQLite database (var/bench-reconcile.sqlite3, or DATABASE_URL) gets one merchant with N paid orders on
one day, and a bill of those N rows (written in WeChat's format, one row in a thousand planted as a difference); then
`reconciliation.services.reconcile_day` imports and matches it while the wall time and the process's peak memory
(VmHWM) are measured. Target (issue 18): 200,000 rows in ≤ 30 s and ≤ 300 MB on the project's 2-core machine.
Not a timed test: run it by hand. Nothing here is imported by the product.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if "DATABASE_URL" not in os.environ:
        path = ROOT / "var" / "bench-reconcile.sqlite3"
        path.parent.mkdir(exist_ok=True)
        path.unlink(missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run(rows: int = 200_000) -> dict[str, float]:
    _setup()
    from payments.gateways import wechatpay_bill as bills
    from payments.models import Payment
    from portal.models import Merchant, Store

    start = datetime(2026, 3, 10, 0, 0, tzinfo=UTC) - timedelta(hours=8)  # 00:00 China time
    merchant = Merchant.objects.create(name="bench", channel="WECHAT_DIRECT", mch_id="1900000109", appid="wxbench")
    store = Store.objects.create(merchant=merchant, store_id="S1", name="bench")
    payments, bill_rows = [], []
    for n in range(rows):
        paid_at = start + timedelta(seconds=n * 86_000 / rows)
        out_trade_no = f"B{n:012d}"
        transaction_id = f"42{n:026d}"
        amount = 100 + n % 9_000
        payments.append(
            Payment(
                merchant=merchant, store=store, channel="WECHAT_DIRECT", method="CODE", out_trade_no=out_trade_no,
                total_fee=amount, body="bench", request_fingerprint="x", status="SUCCESS",
                transaction_id=transaction_id, paid_at=paid_at, order_time=paid_at.strftime("%Y%m%d%H%M%S"),
            )
        )  # fmt: skip
        bill_rows.append(
            bills.WriteRow(
                trade_time=(paid_at + timedelta(hours=8)).replace(tzinfo=None), appid="wxbench", mch_id="1900000109",
                sub_mch_id="", transaction_id=transaction_id, out_trade_no=out_trade_no, openid="o",
                trade_state="SUCCESS", total_fee=amount + (1 if n % 1000 == 0 else 0), fee=(amount * 6 + 500) // 1000,
            )
        )  # fmt: skip
    Payment.objects.bulk_create(payments, batch_size=5000)
    bill_path = ROOT / "var" / "bench-reconcile-bill.csv"
    bill_path.write_bytes(bills.write_wechat_bill(bill_rows))
    del payments, bill_rows
    # Measured in a fresh process: the preparation above would otherwise set the peak.
    measured = subprocess.run(
        [sys.executable, "-m", "bench.reconcile", "--match", str(bill_path), "--merchant", str(merchant.pk)],
        cwd=ROOT, env=os.environ.copy(), check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(measured.stdout)


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss it starts afresh at exec, so the preparing
    parent's size does not show), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def match(bill_path: Path, merchant_id: int) -> dict[str, float]:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from portal.models import Merchant
    from reconciliation import services

    merchant = Merchant.objects.get(pk=merchant_id)
    content = bill_path.read_bytes()
    before = _peak_mb()
    started = time.monotonic()
    report = services.reconcile_day(merchant=merchant, bill_date=date(2026, 3, 10), content=content)
    seconds = time.monotonic() - started
    peak = _peak_mb()
    return {
        "rows": report.rows,
        "matched": report.matched,
        "differences": len(report.differences),
        "bill_mb": round(len(content) / 2**20, 1),
        "seconds": round(seconds, 1),
        "rss_mb_at_start": round(before),
        "peak_rss_mb": round(peak),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--match", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--merchant", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    print(json.dumps(match(args.match, args.merchant) if args.match else run(args.rows)))


if __name__ == "__main__":
    main()
