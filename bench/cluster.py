"""A throwaway production-shaped cluster on loopback: PostgreSQL, Redis, and the production processes of
deploy/Procfile — the web tier (once for the product, once more for the sandbox standing in for the upstreams),
Celery workers and beat.

The Procfile's lines are run as written, with only `gunicorn` / `celery` taken from this interpreter's environment
(`python -m gunicorn`); what differs per instance goes through the environment those lines read (WEB_BIND,
WEB_WORKERS, WEB_ACCESS_LOG, CELERY_WORKER_CONCURRENCY, CELERY_BEAT_SCHEDULE_FILE), as in production.

Every process logs into the run directory (scanned for secrets afterwards). Everything started here is stopped by
`Cluster.stop()` (also on Ctrl-C / errors through the context manager), by pid, never by name.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
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
PROCFILE = ROOT / "deploy" / "Procfile"
HARNESS = "harness"  # the application_name of this process's own PostgreSQL connections
# Programs of the Procfile that are Python modules of this project's environment: run with this interpreter, so the
# cluster uses the venv's packages whatever PATH says.
PYTHON_MODULES = ("gunicorn", "celery")
PROCFILE_LINE = re.compile(r"([A-Za-z0-9_-]+):(.*)")  # a process type's name is letters, digits, "_" and "-"


def parse_procfile(text: str) -> dict[str, list[str]]:
    """`name: command` lines → the command's arguments by process type, split as the shell a Procfile runner hands
    them to would (quotes; `#` starts a comment) but without expanding variables — these lines read their settings
    from the environment themselves. Blank and comment lines are skipped."""
    commands: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PROCFILE_LINE.fullmatch(line)
        argv = shlex.split(match.group(2), comments=True) if match else []
        if not argv:
            raise ValueError(f"Procfile line {number}: expected `name: command`, got {line!r}")
        if match.group(1) in commands:
            raise ValueError(f"Procfile line {number}: {match.group(1)!r} is defined twice")
        commands[match.group(1)] = argv
    return commands


def with_this_python(argv: list[str]) -> list[str]:
    """A Procfile command as this process runs it: `gunicorn …` → `<python> -m gunicorn …` (likewise celery);
    anything else as written."""
    if argv[0] in PYTHON_MODULES:
        return [PYTHON, "-m", *argv]
    return list(argv)


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
    """`extra_env` goes to every process; `sandbox_env` only to the sandbox's web tier. `app_workers` /
    `sandbox_workers` are WEB_WORKERS of the two web tiers; `celery_concurrency` is CELERY_WORKER_CONCURRENCY."""

    run_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    sandbox_env: dict[str, str] = field(default_factory=dict)
    app_workers: int = 2
    sandbox_workers: int = 2
    celery_workers: int = 2
    celery_concurrency: int = 8
    settings_module: str = "portal.settings"
    procfile: Path = PROCFILE
    processes: dict[str, Process] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.logs = self.run_dir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.pg_port, self.redis_port = free_port(), free_port()
        self.app_port, self.sandbox_port = free_port(), free_port()
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
            # PROMETHEUS_: this process's own metrics directory (its settings joined one); the cluster's processes
            # join theirs, or none with METRICS_ENABLED false.
            if not key.startswith(("SANDBOX_", "PAYMENT_", "UPSTREAM_", "WECHATPAY_", "UMPAY_", "PROMETHEUS_"))
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
        data = self._pg_data = self._pg_dir / "data"
        subprocess.run(
            [*self._pg_as, str(binaries / "initdb"), "-D", str(data), "-U", "facepay", "--auth=trust", "-E", "UTF8",
             "--no-locale"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        # Durability settings are PostgreSQL's defaults (fsync on): the numbers must mean something.
        self._pg_options = (
            f"-p {self.pg_port} -k {self._pg_dir} -c listen_addresses=127.0.0.1 -c max_connections=300 "
            "-c shared_buffers=256MB"
        )
        self._pg_ctl("start")

    def _pg_ctl(self, action: str) -> None:
        if action == "start":
            log = self._pg_dir / "server.log"
            args = ["-l", str(log), "-w", "-o", self._pg_options, "start"]
        else:
            args = ["-m", "immediate", "-w", "stop"]
        subprocess.run(
            [*self._pg_as, str(self.pg_binaries / "pg_ctl"), "-D", str(self._pg_data), *args],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    # --- outages (the fault run): each by the process this cluster started, never by name -------------------------

    def restart_database(self, down_seconds: float) -> None:
        """PostgreSQL stopped the hard way (`pg_ctl -m immediate stop`: every connection cut, crash recovery at the
        next start), left down `down_seconds`, started again on the same port and data."""
        self._pg_ctl("stop")
        time.sleep(down_seconds)
        self._pg_ctl("start")

    def pause_redis(self, seconds: float) -> None:
        """Redis frozen (SIGSTOP) for `seconds`, then resumed (SIGCONT): connections stay open and nothing answers,
        as with a hung or failing-over server."""
        os.kill(self._redis.pid, signal.SIGSTOP)
        try:
            time.sleep(seconds)
        finally:
            os.kill(self._redis.pid, signal.SIGCONT)

    def restart_redis(self, down_seconds: float) -> None:
        """Redis killed (SIGKILL: no persistence in this cluster, so the broker's queues and the cache are lost, as
        a real restart without persistence loses them), down `down_seconds`, started again on the same port."""
        self._redis.kill()
        self._redis.wait(timeout=10)
        time.sleep(down_seconds)
        self.start_redis()

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

    def _process(self, name: str, command: list[str], env: dict[str, str]) -> Process:
        # libpq reads PGAPPNAME: each process's PostgreSQL connections carry its name in pg_stat_activity, so the
        # benchmark can count the web tier's connections apart from the worker's and the sandbox's.
        return Process(name, command, {**env, "PGAPPNAME": name}, self.logs / f"{name}.log")

    def _web(self, name: str, command: list[str], port: int, workers: int, env: dict[str, str]) -> Process:
        web_env = {
            "WEB_BIND": f"127.0.0.1:{port}",
            "WEB_WORKERS": str(workers),
            "WEB_ACCESS_LOG": str(self.logs / f"{name}-access.log"),
        }
        return self._process(name, command, {**env, **web_env})

    def start_servers(self, *, celery: bool = True) -> None:
        lines = parse_procfile(self.procfile.read_text())
        missing = {"web", "worker", "beat"} - lines.keys()
        if missing:
            raise RuntimeError(f"{self.procfile} lacks the process types {sorted(missing)}")
        web, worker, beat = (with_this_python(lines[name]) for name in ("web", "worker", "beat"))
        env = self.environment()
        self.processes["app"] = self._web("app", web, self.app_port, self.app_workers, env)
        # The sandbox is the same Django project served by the same web line, with its own environment.
        self.processes["sandbox"] = self._web(
            "sandbox", web, self.sandbox_port, self.sandbox_workers, {**env, **self.sandbox_env}
        )
        if celery:
            worker_env = {**env, "CELERY_WORKER_CONCURRENCY": str(self.celery_concurrency)}
            for index in range(self.celery_workers):
                # Two workers on one host need distinct node names; that is all a second worker changes.
                command = [*worker, "-n", f"w{index}@%h"] if self.celery_workers > 1 else worker
                self.processes[f"worker{index}"] = self._process(f"worker{index}", command, worker_env)
            beat_env = {**env, "CELERY_BEAT_SCHEDULE_FILE": str(self.run_dir / "celerybeat-schedule")}
            self.processes["beat"] = self._process("beat", beat, beat_env)
        for process in self.processes.values():
            process.start()
        wait_for_port(self.app_port, 60)
        wait_for_port(self.sandbox_port, 60)

    def restart_servers(self) -> None:
        """The processes of start_servers stopped and started again, reading the environment anew (`extra_env` may
        have changed since); PostgreSQL and Redis keep running."""
        celery = any(name.startswith(("worker", "beat")) for name in self.processes)
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()
        self.start_servers(celery=celery)

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

    # --- CPU and memory accounting --------------------------------------------------------------------------

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
        for pid, fields in _proc_stats():
            ppid, pgrp = int(fields[1]), int(fields[2])
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

    def rss_bytes(self, name: str) -> int:
        """Resident memory of the process group that process `name` leads (for a web tier: gunicorn's master and
        its uvicorn workers), as the sum of each process's RSS — pages the forked workers share with the master
        count once per process, so this is an upper bound."""
        process = self.processes.get(name)
        if process is None or not process.alive:
            return 0
        page = os.sysconf("SC_PAGE_SIZE")
        return sum(int(fields[21]) * page for _, fields in _proc_stats() if int(fields[2]) == process.popen.pid)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def group_cpu_seconds(leader: int) -> float:
    """CPU seconds (user + system) used so far by the processes of the process group `leader` leads (a process
    started by this module or `Process` leads its own group)."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(fields[11]) + int(fields[12])) / tick for _, fields in _proc_stats() if int(fields[2]) == leader)


def _proc_stats():
    """(pid, the fields of /proc/<pid>/stat after the command name) of every process: the name, in parentheses, may
    itself hold spaces, so fields[0] is the state (field 3 of proc(5)), fields[1] the ppid, and so on."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            yield int(stat.parent.name), stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while being read
            continue


def django_setup(cluster: Cluster) -> None:
    """Make this process a Django client of the cluster's database and broker (for setup and the checks)."""
    os.environ.update({**cluster.environment(), "PGAPPNAME": HARNESS})
    import django

    django.setup()
