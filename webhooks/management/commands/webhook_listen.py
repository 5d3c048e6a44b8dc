"""Run the reference receiver: `manage.py webhook_listen --port 8765 --secret whsec_…` prints verified events."""

import os

from django.core.management.base import BaseCommand, CommandError

from webhooks.receiver import make_server


class Command(BaseCommand):
    help = "Receive webhook deliveries on a local port, verify their signatures and print the events."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument(
            "--secret",
            action="append",
            default=[],
            help="The endpoint's signing secret (repeat for the old and new secret during a rotation); "
            "or set WEBHOOK_SECRET.",
        )
        parser.add_argument("--tolerance", type=int, default=300, help="Seconds of clock difference accepted.")

    def handle(self, *args, host, port, secret, tolerance, **options):
        secrets = secret or [value for value in [os.environ.get("WEBHOOK_SECRET", "")] if value]
        if not secrets:
            raise CommandError("Give the endpoint's signing secret with --secret (or WEBHOOK_SECRET).")

        def write(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()  # shown at once, also when the output is a file or a pipe

        server = make_server(host, port, secrets, write, tolerance=tolerance)
        self.stdout.write(f"Listening on http://{host}:{server.server_address[1]}/ — Ctrl-C stops.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
