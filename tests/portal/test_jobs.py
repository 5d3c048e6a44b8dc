"""Services queue the workers' tasks by name once their transaction commits, and never import the tasks modules
that import them."""

import ast
from pathlib import Path

import pytest
from django.db import transaction

from members import services as member_services
from payments import services as payment_services
from payscore import services as payscore_services
from portal import jobs
from portal.celery import app


def test_every_task_name_a_service_queues_is_a_registered_task():
    app.loader.import_default_modules()  # the tasks modules, as a worker imports them
    for name in (
        payment_services.RESOLVE_PAYMENT_TASK,
        payment_services.PROCESS_REFUND_TASK,
        payscore_services.REFRESH_ORDER_TASK,
    ):
        assert name in app.tasks, name


@pytest.mark.django_db
def test_a_job_is_sent_when_the_transaction_commits_and_not_when_it_rolls_back(
    monkeypatch, django_capture_on_commit_callbacks
):
    sent = []
    monkeypatch.setattr(
        jobs.current_app, "send_task", lambda name, args, countdown: sent.append((name, args, countdown))
    )

    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            jobs.enqueue_on_commit("payments.tasks.resolve_payment", 7, countdown=5.0)
            assert sent == []  # not before the commit
    assert sent == [("payments.tasks.resolve_payment", [7], 5.0)]

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with transaction.atomic():
            jobs.enqueue_on_commit("payments.tasks.process_refund", 8)
            raise RuntimeError("rolled back")
    assert sent == [("payments.tasks.resolve_payment", [7], 5.0)]


@pytest.mark.parametrize("module", [payment_services, payscore_services, member_services])
def test_services_do_not_import_the_tasks_that_run_them(module):
    app_name = module.__name__.split(".")[0]
    tree = ast.parse(Path(module.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert f"{app_name}.tasks" not in imported
    assert not any(
        isinstance(node, ast.ImportFrom) and node.module == app_name and any(a.name == "tasks" for a in node.names)
        for node in ast.walk(tree)
    )
