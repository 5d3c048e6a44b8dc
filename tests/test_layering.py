"""The import rules of docs/architecture.md ("What may import what"), checked on the source.

Every module of the five apps is parsed (not imported) and each of its `import` / `from … import` statements is
resolved to a dotted name; the rules below name which app may import which, and which imports must stay inside a
function (lazy) because they point upward for one feature.
"""

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("portal", "payments", "payscore", "members", "sandbox", "reconciliation", "webhooks", "merchant_api", "alerts")
PRODUCT = ("portal", "payments", "payscore", "members", "reconciliation", "webhooks", "merchant_api", "alerts")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # the imported module, dotted and absolute
    lazy: bool  # inside a function or method, not at module level

    @property
    def app(self) -> str:
        return self.target.split(".")[0]

    def __str__(self) -> str:
        return f"{self.module} imports {self.target}{' (lazily)' if self.lazy else ''}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[Import]:
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                found.extend(Import(module, alias.name, lazy) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package[: len(package) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append(Import(module, target, lazy))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), False)
    return found


def _all_imports(*apps: str) -> list[Import]:
    result = []
    for app in apps:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                result.extend(_imports(path))
    return result


def _violations(imports, rule) -> list[str]:
    return [str(i) for i in imports if rule(i)]


def test_the_parser_sees_the_imports_it_checks():
    # The rules below are only as good as the parse: a known module-level and a known lazy import are found.
    found = {(i.module, i.target, i.lazy) for i in _all_imports("portal", "members")}
    assert ("portal.urls", "payments.urls", False) in found or ("portal.urls", "payments", False) in found
    assert any(m == "members.services" and t.startswith("payscore") and lazy for m, t, lazy in found)


def test_product_code_never_imports_the_sandbox():
    assert _violations(_all_imports(*PRODUCT), lambda i: i.app == "sandbox") == []


def test_gateways_import_no_django_and_no_app():
    imports = [i for i in _all_imports("payments") if i.module.startswith("payments.gateways")]
    assert imports, "the gateways package was not found"
    assert (
        _violations(
            imports,
            lambda i: i.app == "django" or (i.app in APPS and not i.target.startswith("payments.gateways")),
        )
        == []
    )


@pytest.mark.parametrize(
    ("app", "forbidden"),
    [
        ("payments", {"payscore", "members", "reconciliation"}),
        ("payscore", {"members", "reconciliation"}),
    ],
)
def test_apps_depend_downward(app, forbidden):
    assert _violations(_all_imports(app), lambda i: i.app in forbidden) == []


def test_reconciliation_uses_payments_and_portal_only_and_only_the_console_uses_it():
    assert _violations(_all_imports("reconciliation"), lambda i: i.app in {"payscore", "members", "sandbox"}) == []
    others = _all_imports("portal", "payments", "payscore", "members", "sandbox", "webhooks")
    # Its console routes are included by portal/urls.py; the dashboard's card is read lazily by portal/views.py.
    # (The merchant API, above it, lists its differences.)
    console = {("portal.urls", False), ("portal.views", True)}
    assert _violations(others, lambda i: i.app == "reconciliation" and (i.module, i.lazy) not in console) == []


def test_webhooks_sit_below_the_apps_that_report_to_them():
    # payments, payscore and reconciliation write events into the outbox inside their own transactions, so the
    # webhooks app may import only portal (and Django, libraries).
    assert _violations(_all_imports("webhooks"), lambda i: i.app in set(APPS) - {"portal", "webhooks"}) == []


def test_nothing_imports_the_merchant_api_but_the_routes():
    others = _all_imports(*(set(APPS) - {"merchant_api"}))
    assert _violations(others, lambda i: i.app == "merchant_api" and i.module != "portal.urls") == []


# alerts: the app may import portal, payments and reconciliation (the rules read them); nothing imports it but the
# routes, and the sandbox's demo seed (lazily, for the demo group's robot). Its templates reach base.html through a
# template tag library, which is no import.
ALERTS_MAY_IMPORT = {"portal", "payments", "reconciliation", "alerts"}


def test_alerts_import_only_portal_payments_and_reconciliation():
    assert _violations(_all_imports("alerts"), lambda i: i.app in set(APPS) - ALERTS_MAY_IMPORT) == []


def test_nothing_imports_alerts_but_the_routes_and_the_demo_seed():
    others = _all_imports(*(set(APPS) - {"alerts"}))
    allowed = {("portal.urls", False), ("sandbox.management.commands.seed_demo", True)}
    assert _violations(others, lambda i: i.app == "alerts" and (i.module, i.lazy) not in allowed) == []


def test_members_reaches_payscore_only_lazily():
    assert _violations(_all_imports("members"), lambda i: i.app == "payscore" and not i.lazy) == []


# portal's console and URL modules reach into the apps (the dashboard, onboarding's "test connection", the routes);
# its domain modules - models, services, selectors, credentials, terminal authentication … - import no other app.
PORTAL_MODULES_THAT_REACH_THE_APPS = {"portal.urls", "portal.views", "portal.views_onboarding"}


def test_portal_domain_modules_import_no_other_app():
    assert (
        _violations(
            _all_imports("portal"),
            lambda i: i.app in set(APPS) - {"portal"} and i.module not in PORTAL_MODULES_THAT_REACH_THE_APPS,
        )
        == []
    )


def test_portal_views_reach_the_apps_only_lazily():
    # Module-level imports from the console into the apps would make `portal` unimportable without them.
    assert (
        _violations(
            _all_imports("portal"),
            lambda i: i.app in set(APPS) - {"portal"} and i.module != "portal.urls" and not i.lazy,
        )
        == []
    )


def test_the_wheel_carries_every_app_of_the_project():
    """Each app of INSTALLED_APPS that lives in this checkout is a package of the wheel (pyproject's hatch list):
    an app left out installs nothing and the production start fails on the missing module."""
    import tomllib

    from django.conf import settings

    packaged = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    )
    ours = {app.split(".")[0] for app in settings.INSTALLED_APPS if (ROOT / app.split(".")[0] / "__init__.py").exists()}
    assert ours - packaged == set()
