"""Start web, Celery worker and Celery beat together for the embedded default; Ctrl-C stops all three."""

import io
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


def _wait_for_port(addr: str, timeout: float) -> None:
    host, _, port = addr.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.3)


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and the scheduler in one terminal (development / demo)."

    def add_arguments(self, parser):
        parser.add_argument("--addr", default=os.environ.get("RUN_ADDR", "127.0.0.1:8000"))
        parser.add_argument("--worker-concurrency", type=int, default=4)
        parser.add_argument("--demo", action="store_true", help="seed the demo data and print its logins")

    def handle(self, *args, addr, worker_concurrency, demo, **options):
        if settings.IS_PRODUCTION:
            raise CommandError("run_embedded is the laptop's runner (one process of each kind); see the README.")
        demo_summary = io.StringIO()
        if demo:
            call_command("seed_demo", stdout=demo_summary)  # idempotent; printed once the web server is up
        python = sys.executable
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        commands = {
            # The production web tier's own configuration, one worker process (portal/gunicorn_conf.py).
            "web": [python, "-m", "gunicorn", "portal.asgi:application", "--config", "python:portal.gunicorn_conf"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "-l",
                "INFO",
                "--pool=threads",
                f"--concurrency={worker_concurrency}",
                "-n",
                "worker@%h",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "beat",
                "-l",
                "INFO",
            ],
        }
        # The demo's sandbox users confirm and pay PayScore orders by themselves (unless configured otherwise).
        environment = {
            "SANDBOX_PAYSCORE_DEFAULT_SCENARIO": "PAYSCORE_AUTO",
            **os.environ,
            "WEB_BIND": addr,
            "WEB_WORKERS": "1",
            "WEB_ACCESS_LOG": "-",
        }
        processes = {
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR, env=environment) for name, cmd in commands.items()
        }
        base = f"http://{addr}"
        _wait_for_port(addr, timeout=30)
        self.stdout.write(
            self.style.SUCCESS(
                f"\n  Console:     {base}/\n  API schema:  {base}/api/schema/docs/\n  Health:      {base}/healthz\n"
            )
        )
        self.stdout.write(demo_summary.getvalue())
        self.stdout.write("  Ctrl-C stops web, worker and scheduler.\n")

        stopping = False

        def stop(signum=None, frame=None):
            nonlocal stopping
            if stopping:
                return
            stopping = True
            for process in processes.values():
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for process in processes.values():
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping the others.")
                        stop()
                        break
                time.sleep(0.5)
        finally:
            stop()
        return None
