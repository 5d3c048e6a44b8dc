"""The benchmark cluster runs production's process lines (deploy/Procfile) as written; only the interpreter and
what the lines read from the environment differ per instance."""

import sys

import pytest

from bench import cluster
from bench.cluster import Cluster, parse_procfile, with_this_python


def test_procfile_lines_become_arguments():
    text = """# the production processes
web: gunicorn portal.asgi:application --config python:portal.gunicorn_conf

worker: celery --app portal worker --loglevel INFO  # a comment, as for the shell
beat:celery --app portal beat --schedule "/var/lib/facepay/beat schedule"
"""

    assert parse_procfile(text) == {
        "web": ["gunicorn", "portal.asgi:application", "--config", "python:portal.gunicorn_conf"],
        "worker": ["celery", "--app", "portal", "worker", "--loglevel", "INFO"],
        "beat": ["celery", "--app", "portal", "beat", "--schedule", "/var/lib/facepay/beat schedule"],
    }  # fmt: skip


@pytest.mark.parametrize("line", ["web gunicorn portal.asgi:application", ": gunicorn", "web:", "web:  # nothing"])
def test_procfile_lines_without_a_name_or_command_are_refused(line):
    with pytest.raises(ValueError, match="line 1"):
        parse_procfile(line)


def test_procfile_process_types_are_unique():
    with pytest.raises(ValueError, match="'web' is defined twice"):
        parse_procfile("web: gunicorn a:b\nweb: gunicorn c:d\n")


def test_the_repository_procfile_has_the_three_process_types():
    lines = parse_procfile(cluster.PROCFILE.read_text())

    assert {"web", "worker", "beat"} <= lines.keys()
    assert lines["web"][0] == "gunicorn" and lines["worker"][0] == lines["beat"][0] == "celery"


def test_python_programs_run_with_this_interpreter():
    assert with_this_python(["gunicorn", "portal.asgi:application"]) == [
        sys.executable, "-m", "gunicorn", "portal.asgi:application",
    ]  # fmt: skip
    assert with_this_python(["celery", "--app", "portal", "beat"]) == [sys.executable, "-m", "celery", "--app",
                                                                       "portal", "beat"]  # fmt: skip
    assert with_this_python(["nginx", "-g", "daemon off;"]) == ["nginx", "-g", "daemon off;"]


def test_every_process_comes_from_the_procfile_with_its_settings_in_the_environment(tmp_path, monkeypatch):
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        "web: gunicorn portal.asgi:application --config python:portal.gunicorn_conf\n"
        "worker: celery --app portal worker --pool threads\n"
        "beat: celery --app portal beat\n"
    )
    monkeypatch.setattr(cluster.Process, "start", lambda self: None)
    monkeypatch.setattr(cluster, "wait_for_port", lambda port, timeout=30: None)
    run = Cluster(
        tmp_path / "run", procfile=procfile, app_workers=3, sandbox_workers=2, celery_workers=2, celery_concurrency=6,
        sandbox_env={"SANDBOX_CHAOS": "0.1"},
    )  # fmt: skip
    run.start_servers()

    processes = run.processes
    assert list(processes) == ["app", "sandbox", "worker0", "worker1", "beat"]
    web = [sys.executable, "-m", "gunicorn", "portal.asgi:application", "--config", "python:portal.gunicorn_conf"]
    assert processes["app"].command == processes["sandbox"].command == web
    for name, port, workers in (("app", run.app_port, "3"), ("sandbox", run.sandbox_port, "2")):
        env = processes[name].env
        assert env["WEB_BIND"] == f"127.0.0.1:{port}" and env["WEB_WORKERS"] == workers
        assert env["WEB_ACCESS_LOG"] == str(run.logs / f"{name}-access.log")
        assert env["PGAPPNAME"] == name
    assert "SANDBOX_CHAOS" not in processes["app"].env and processes["sandbox"].env["SANDBOX_CHAOS"] == "0.1"
    worker = [sys.executable, "-m", "celery", "--app", "portal", "worker", "--pool", "threads"]
    assert processes["worker0"].command == [*worker, "-n", "w0@%h"]  # only the node name is added
    assert processes["worker1"].command == [*worker, "-n", "w1@%h"]
    assert processes["worker1"].env["CELERY_WORKER_CONCURRENCY"] == "6"
    assert processes["beat"].command == [sys.executable, "-m", "celery", "--app", "portal", "beat"]
    assert processes["beat"].env["CELERY_BEAT_SCHEDULE_FILE"] == str(run.run_dir / "celerybeat-schedule")


def test_one_celery_worker_runs_the_line_unchanged(tmp_path, monkeypatch):
    monkeypatch.setattr(cluster.Process, "start", lambda self: None)
    monkeypatch.setattr(cluster, "wait_for_port", lambda port, timeout=30: None)
    run = Cluster(tmp_path / "run", celery_workers=1)
    run.start_servers()

    assert run.processes["worker0"].command == with_this_python(parse_procfile(cluster.PROCFILE.read_text())["worker"])


def test_a_procfile_without_a_process_type_stops_the_start(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("web: gunicorn portal.asgi:application\n")

    with pytest.raises(RuntimeError, match=r"\['beat', 'worker'\]"):
        Cluster(tmp_path / "run", procfile=procfile).start_servers()
