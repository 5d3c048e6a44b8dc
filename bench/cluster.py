"""A throwaway production-shaped cluster on loopback: PostgreSQL, Redis, gunicorn (app and sandbox), Celery.

Every process logs into the run directory (scanned for secrets afterwards). Everything started here is stopped by
`Cluster.stop()` (also on Ctrl-C / errors through the context manager), by pid, never by name.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def pg_bin() -> Path:
    candidates = []
    if found := shutil.which("initdb"):
        candidates.append(Path(found).parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql")


@dataclass
class Process:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None
    kills: int = 0

    def start(self) -> None:
        handle = open(self.log, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.popen = subprocess.Popen(
            self.command, cwd=ROOT, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the process group this process leads (celery/gunicorn children included)."""
        if self.alive:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
            self.kills += 1

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)


@dataclass
class Cluster:
    """`extra_env` goes to every process; `sandbox_env` only to the sandbox's gunicorn."""

    run_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    sandbox_env: dict[str, str] = field(default_factory=dict)
    app_workers: int = 2
    app_threads: int = 16
    sandbox_workers: int = 2
    sandbox_threads: int = 16
    celery_workers: int = 2
    celery_concurrency: int = 8
    sandbox_separate: bool = True
    settings_module: str = "portal.settings"
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.run_dir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.pg_port, self.redis_port = free_port(), free_port()
        self.app_port = free_port()
        self.sandbox_port = free_port() if self.sandbox_separate else self.app_port
        self._pg_dir: Path | None = None
        self._pg_as: list[str] = []
        self._redis: subprocess.Popen | None = None

    # --- environment ---------------------------------------------------------------------------------------

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox_port}/sandbox/"

    @property
    def database_url(self) -> str:
        return f"postgres://facepay@127.0.0.1:{self.pg_port}/postgres"

    def environment(self) -> dict[str, str]:
        sandbox = f"http://127.0.0.1:{self.sandbox_port}/sandbox"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SANDBOX_", "PAYMENT_", "UPSTREAM_", "WECHATPAY_", "UMPAY_"))
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": self.settings_module,
                "DJANGO_ENV": "production",
                "DEBUG": "false",
                "SECRET_KEY": getattr(self, "_secret_key", None) or self._new_secret_key(),
                "FIELD_ENCRYPTION_KEY": getattr(self, "_field_key", None) or self._new_field_key(),
                "DATABASE_URL": self.database_url,
                "CELERY_BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "CACHE_URL": f"redis://127.0.0.1:{self.redis_port}/1",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "SANDBOX_ENABLED": "force",
                "PUBLIC_BASE_URL": self.app_url,
                "WECHATPAY_API_BASE": f"{sandbox}/wechatpay",
                "WECHATPAY_FACE_API_BASE": f"{sandbox}/wechatpay-face",
                "UMPAY_API_BASE": f"{sandbox}/umpay",
                "STATIC_ROOT": str(self.run_dir / "static"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def _new_secret_key(self) -> str:
        self._secret_key = secrets.token_urlsafe(48)
        return self._secret_key

    def _new_field_key(self) -> str:
        self._field_key = Fernet.generate_key().decode()
        return self._field_key

    @property
    def configured_secrets(self) -> list[str]:
        return [self.environment()["SECRET_KEY"], self.environment()["FIELD_ENCRYPTION_KEY"]]

    # --- services ------------------------------------------------------------------------------------------

    def start_database(self) -> None:
        binaries = self.pg_binaries = pg_bin()
        self._pg_dir = Path(tempfile.mkdtemp(prefix="facepay-bench-pg."))
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run the throwaway cluster as postgres (or nobody).
            user = "postgres"
            try:
                import pwd

                pwd.getpwnam(user)
            except KeyError:
                user = "nobody"
            shutil.chown(self._pg_dir, user)
            self._pg_as = ["runuser", "-u", user, "--"]
        data = self._pg_dir / "data"
        log = self._pg_dir / "server.log"
        subprocess.run(
            [*self._pg_as, str(binaries / "initdb"), "-D", str(data), "-U", "facepay", "--auth=trust", "-E", "UTF8",
             "--no-locale"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Durability settings are PostgreSQL's defaults (fsync on): the numbers must mean something.
        options = (
            f"-p {self.pg_port} -k {self._pg_dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c shared_buffers=256MB"
        )
        subprocess.run(
            [*self._pg_as, str(binaries / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-o", options, "start"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def start_redis(self) -> None:
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._redis = subprocess.Popen(
            [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=open(self.logs / "redis.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_port(self.redis_port)

    def manage(self, *args: str, capture: bool = False) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.environment(),
            check=True,
            stdout=subprocess.PIPE if capture else open(self.logs / "manage.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        return result.stdout.decode() if capture else ""

    def _gunicorn(self, name: str, port: int, workers: int, threads: int, env: dict[str, str]) -> Process:
        wsgi = "portal.wsgi:application"
        command = [
            PYTHON, "-m", "gunicorn", wsgi, "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(threads), "--timeout", "60", "--keep-alive", "30",
            "--backlog", "2048", "--access-logfile", str(self.logs / f"{name}-access.log"),
            "--error-logfile", str(self.logs / f"{name}-error.log"),
        ]  # fmt: skip
        return Process(name, command, env, self.logs / f"{name}.log")

    def celery_worker(self, index: int) -> Process:
        command = [
            PYTHON, "-m", "celery", "-A", "portal", "worker", "-l", "INFO", "--pool=threads",
            f"--concurrency={self.celery_concurrency}", "-n", f"w{index}@%h", "--without-gossip", "--without-mingle",
        ]  # fmt: skip
        return Process(f"worker{index}", command, self.environment(), self.logs / f"worker{index}.log")

    def start_servers(self, *, celery: bool = True) -> None:
        env = self.environment()
        self.processes["app"] = self._gunicorn("app", self.app_port, self.app_workers, self.app_threads, env)
        if self.sandbox_separate:
            self.processes["sandbox"] = self._gunicorn(
                "sandbox",
                self.sandbox_port,
                self.sandbox_workers,
                self.sandbox_threads,
                {**env, **self.sandbox_env},
            )
        if celery:
            for index in range(self.celery_workers):
                self.processes[f"worker{index}"] = self.celery_worker(index)
            beat = [
                PYTHON, "-m", "celery", "-A", "portal", "beat", "-l", "INFO",
                "--schedule", str(self.run_dir / "celerybeat-schedule"),
            ]  # fmt: skip
            self.processes["beat"] = Process("beat", beat, env, self.logs / "beat.log")
        for process in self.processes.values():
            process.start()
        wait_for_port(self.app_port, 60)
        wait_for_port(self.sandbox_port, 60)

    def start(self, *, celery: bool = True) -> None:
        self.start_database()
        self.start_redis()
        self.manage("migrate", "--noinput")
        self.start_servers(celery=celery)

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            try:
                process.stop()
            except Exception as exc:  # keep stopping the rest
                print(f"stopping {process.name}: {exc}", file=sys.stderr)
        if self._redis is not None and self._redis.poll() is None:
            self._redis.terminate()
            try:
                self._redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._redis.kill()
        if self._pg_dir is not None:
            subprocess.run(
                [*self._pg_as, str(self.pg_binaries / "pg_ctl"), "-D", str(self._pg_dir / "data"), "-m", "immediate",
                 "stop"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            log = self._pg_dir / "server.log"
            if log.exists():
                shutil.copy(log, self.logs / "postgresql.log")
            shutil.rmtree(self._pg_dir, ignore_errors=True)
            self._pg_dir = None

    # --- CPU accounting ----------------------------------------------------------------------------------

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) used so far by each part of the cluster: app, sandbox, celery, postgresql, redis.

        Read from /proc: a gunicorn/celery process group by its leader's pid; PostgreSQL as the postmaster and its
        children (backends keep their connection, so their time stays counted).
        """
        tick = os.sysconf("SC_CLK_TCK")
        # Process-group leader pid → part; celery workers and beat count together.
        leaders = {
            process.popen.pid: "celery" if name.startswith(("worker", "beat")) else name
            for name, process in self.processes.items()
            if process.alive
        }
        postmaster = 0
        if self._pg_dir is not None and (pid_file := self._pg_dir / "data" / "postmaster.pid").exists():
            postmaster = int(pid_file.read_text().split()[0])
        redis = self._redis.pid if self._redis is not None else 0
        totals = {name: 0.0 for name in ("app", "sandbox", "celery", "postgresql", "redis")}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, ppid, pgrp = int(stat.parent.name), int(fields[1]), int(fields[2])
            seconds = (int(fields[11]) + int(fields[12])) / tick
            if pgrp in leaders:
                totals[leaders[pgrp]] += seconds
            elif postmaster and postmaster in (pid, ppid):
                totals["postgresql"] += seconds
                if pid == postmaster:  # backends that have exited (connections closed) are counted here
                    totals["postgresql"] += (int(fields[13]) + int(fields[14])) / tick
            elif pid == redis:
                totals["redis"] += seconds
        return totals

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def django_setup(cluster: Cluster) -> None:
    """Make this process a Django client of the cluster's database and broker (for setup and the checks)."""
    os.environ.update(cluster.environment())
    import django

    django.setup()
