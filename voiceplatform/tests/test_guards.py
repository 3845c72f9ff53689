"""Conventions a machine checks (DESIGN.md conventions 2, 8 and 9).

- Every concrete ``OrgScopedModel`` has a factory registered for the isolation matrix
  (``voiceplatform.testing``), so a new model cannot be silently left out of it.
- Every view under ``/api/v1`` derives from ``OrgScopedViewSet``, or is listed below
  with the reason it does not.
- The environment is read in ``voiceplatform/settings.py`` only: no other project
  source reads ``os.environ``/``os.getenv`` or the ``voiceplatform.env`` helpers,
  except the files listed below with the reason.
- Every setting the project reads (``settings.X``, ``getattr(settings, "X", …)``) is
  defined, by settings.py or by Django: a ``getattr`` default must never stand in for a
  setting nobody can set.

Each scanner is itself tested on small sources, so a guard that stopped seeing
anything would fail rather than pass.
"""
from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver

from voiceplatform.api import OrgContextMixin, OrgScopedViewSet
from voiceplatform.models import OrgScopedModel
from voiceplatform.testing import load_factories

ROOT = Path(__file__).resolve().parents[2]
FACTORIES = load_factories()


# --- every org-scoped model has a factory ------------------------------------------------

def test_every_org_scoped_model_has_a_factory() -> None:
    """Without one, the isolation matrix skips the model's admin pages and API routes."""
    missing = sorted(model._meta.label for model in apps.get_models()
                     if issubclass(model, OrgScopedModel) and model not in FACTORIES)
    assert not missing, ("org-scoped models with no factory; register one in <app>/tests/factories.py "
                         f"with voiceplatform.testing.register_factory: {missing}")


@pytest.mark.django_db
@pytest.mark.parametrize("model", sorted(FACTORIES, key=lambda m: m._meta.label), ids=lambda m: m._meta.label)
def test_factories_build_their_model_in_the_given_org(model: Any, org_a: Any, org_b: Any) -> None:
    obj = FACTORIES[model](org_a)
    assert type(obj) is model
    assert obj.org_id == org_a.pk
    assert not model.objects.for_org(org_b).filter(pk=obj.pk).exists()


# --- every API view is org-scoped, or says why not -------------------------------------

# View class → why it does not derive from OrgScopedViewSet. Each still resolves the
# org the one way (OrgContextMixin), which the test checks too.
NOT_ORG_SCOPED_VIEWS: dict[str, str] = {
    "orgs.api.views.CurrentOrganizationView":
        "serves request.org itself (the Organization row, not an OrgScopedModel); there is no id to look up",
    "orgs.api.views.MemberViewSet":
        "Membership joins a user to an org and is not an OrgScopedModel (no for_org manager); "
        "its queryset filters on request.org and removals go through orgs.services.remove_member",
    "orgs.api.views.ProviderCredentialViewSet":
        "one credential per provider, addressed by provider name rather than public_id, and its secrets are "
        "never serialized back: a plain ViewSet whose every lookup is ProviderCredential.objects.for_org(request.org)",
    "agents.api.views.ProviderCatalogView":
        "the static catalogue of AI providers; its only org data is whether request.org has each credential",
    "analytics.api.views.OverviewView":
        "read-only figures from analytics.services.overview, which reads DailyRollup rows of request.org only and "
        "resolves every filter id with for_org(request.org) (another org's id is a 404)",
    "analytics.api.views.AgentAnalyticsViewSet":
        "read-only figures of one agent: the agent is looked up with Agent.objects.for_org(request.org) "
        "(another org's id is a 404) and only request.org's rollups are read",
    "analytics.api.views.CampaignAnalyticsViewSet":
        "read-only figures of one batch: Batch.objects.for_org(request.org) (another org's id is a 404), "
        "then only request.org's rollups and entries are read",
    "privacy.api.views.SubjectExportView":
        "a data-subject request names a person, not a row: privacy.subjects reads only request.org's calls, "
        "campaign rows, schedules and do-not-call entries (each query starts from for_org(request.org))",
    "privacy.api.views.SubjectErasureView":
        "as SubjectExportView: privacy.subjects.erase_subject changes only request.org's rows",
    "privacy.api.views.LegalHoldView":
        "acts on one call or campaign given in the body, resolved with OrgRelatedField against request.org "
        "(another org's id is a 400 naming no such object) and changed through privacy.services.set_legal_hold",
    "privacy.api.views.StorageView":
        "figures of request.org itself (privacy.services.storage_usage counts only its rows)",
}


def _api_views() -> list[tuple[str, type]]:
    views: list[tuple[str, type]] = []

    def walk(patterns: list[Any], prefix: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern) and prefix.startswith("api/v1/"):
                cls = getattr(pattern.callback, "cls", None) or getattr(pattern.callback, "view_class", None)
                path = prefix + str(pattern.pattern)
                assert cls is not None, f"/{path} is a function view; API views are classes"
                views.append((path, cls))

    walk(get_resolver().url_patterns, "")
    return views


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def test_every_api_view_is_org_scoped_or_listed() -> None:
    views = _api_views()
    assert len(views) > 20, "the walk found no API routes: the guard would pass vacuously"
    problems = []
    for path, cls in views:
        if issubclass(cls, OrgScopedViewSet):
            model = getattr(cls, "model", None)
            if not (isinstance(model, type) and issubclass(model, OrgScopedModel)):
                problems.append(f"/{path}: {_dotted(cls)}.model must be an OrgScopedModel, not {model!r}")
        elif _dotted(cls) not in NOT_ORG_SCOPED_VIEWS:
            problems.append(f"/{path}: {_dotted(cls)} does not derive from OrgScopedViewSet; derive from it, "
                            "or add it to NOT_ORG_SCOPED_VIEWS with the reason")
        elif not issubclass(cls, OrgContextMixin):
            problems.append(f"/{path}: {_dotted(cls)} must resolve the org through OrgContextMixin")
    assert not problems, "\n".join(problems)
    served = {_dotted(cls) for _path, cls in views}
    stale = sorted(set(NOT_ORG_SCOPED_VIEWS) - served)
    assert not stale, f"NOT_ORG_SCOPED_VIEWS lists views no API route serves any more: {stale}"


# --- project sources ----------------------------------------------------------------------

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "tests"}
# Data directories at the root only (MEDIA_ROOT, collected assets, embedded services):
# calls/media is source and must be scanned.
SKIP_ROOT_DIRS = {"var", "media", "static", "templates"}


def project_sources() -> Iterator[tuple[str, ast.Module]]:
    """(path relative to the root, parsed module) of every non-test Python source."""
    for dirpath, dirnames, filenames in os.walk(ROOT):
        top = Path(dirpath) == ROOT
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(".")
                             and not (top and d in SKIP_ROOT_DIRS))
        for filename in sorted(filenames):
            if not filename.endswith(".py") or filename == "conftest.py" or filename.startswith("test_"):
                continue
            path = Path(dirpath) / filename
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), filename=str(path))


@dataclass(frozen=True)
class Finding:
    line: int
    scope: str  # the enclosing function/class, dotted; "" at module level
    code: str


class _Scanner(ast.NodeVisitor):
    """Walks a module keeping each node's parent and the dotted scope it is in."""

    def __init__(self) -> None:
        self.parents: dict[ast.AST, ast.AST] = {}
        self.scope: list[str] = []
        self.findings: list[Finding] = []

    def scan(self, tree: ast.Module) -> list[Finding]:
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        self.visit(tree)
        return self.findings

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def report(self, node: ast.AST) -> None:
        self.findings.append(Finding(node.lineno, ".".join(self.scope), ast.unparse(node)))  # type: ignore[attr-defined]


# --- the environment is read in settings.py only -----------------------------------------

ENV_HELPERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_json"}
WRITE_METHODS = {"setdefault", "update", "pop", "clear"}

# Path (or directory prefix ending in "/") → why it may read the environment.
ENV_READ_ALLOWED: dict[str, str] = {
    "voiceplatform/settings.py": "the one place settings are read from the environment",
    "voiceplatform/env.py": "the typed helpers settings.py reads the environment through",
    "voiceplatform/embedded.py":
        "the embedded Postgres/Redis launcher: settings.py imports it for the default DATABASE_URL/REDIS_URL, "
        "so it runs before any setting exists; it hands DATABASE_URL/REDIS_URL to the commands it starts, "
        "and VP_VAR_DIR/VP_KEEP_SERVICES configure the launcher, not the platform",
    "voiceplatform/devserver.py":
        "`make run`'s supervisor: it passes its environment on to the web, worker and beat processes it starts",
    "voiceplatform/timematrix.py":
        "`make test`'s time matrix: it hands its environment to the pytest runs it starts, adding VP_TEST_NOW and TZ",
    "voiceplatform/testing.py":
        "test support: subprocess_env hands a test's worker/server subprocesses the parent's environment",
    "voiceplatform/browsing.py":
        "browser-test fixtures: CHROMIUM_PATH says where the tests find Chromium (only tests import it)",
    "bench/": "stand-alone benchmark scripts; their variables (MEDIA_BENCH_*) configure the processes the "
              "benchmark starts, and the platform never imports them",
    "*/testing/": "fakes of vendor services (carriers, AI providers, Telegram, …) that only tests run",
}
# (path, function) → why that one function may read the environment.
ENV_READ_ALLOWED_FUNCTIONS: dict[tuple[str, str], str] = {
    ("integrations/mcp_servers/__init__.py", "build_from_env"):
        "the project's own MCP servers (Telegram, Gmail, WhatsApp, Shopify) are separate processes that hold no "
        "tenant data and import no Django: their whole configuration is read here, once, at process start, "
        "failing with the variable's name (ServerConfigError). Routing it through settings.py would make a "
        "Telegram bridge need the platform's SECRET_KEY, FIELD_ENCRYPTION_KEYS and database in production. "
        "The web process's side (where each server is, the token it presents) is in settings.py "
        "(MCP_OWN_SERVER_URLS/TOKENS).",
}


def _env_allowed(path: str) -> bool:
    for allowed in ENV_READ_ALLOWED:
        if allowed.startswith("*/"):
            if f"/{allowed[2:]}" in f"/{path}":
                return True
        elif path == allowed or (allowed.endswith("/") and path.startswith(allowed)):
            return True
    return False


class _EnvReads(_Scanner):
    def __init__(self, tree: ast.Module) -> None:
        super().__init__()
        self.environ_names = {"os.environ", "os.environb"}
        self.getenv_names = {"os.getenv", "os.getenvb"}
        self.helper_names: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "os":
                for alias in node.names:
                    name = alias.asname or alias.name
                    if alias.name in ("environ", "environb"):
                        self.environ_names.add(name)
                    elif alias.name in ("getenv", "getenvb"):
                        self.getenv_names.add(name)
            elif isinstance(node, ast.ImportFrom) and node.module == "voiceplatform.env":
                self.helper_names |= {alias.asname or alias.name for alias in node.names if alias.name in ENV_HELPERS}

    def _is_write(self, node: ast.AST) -> bool:
        parent = self.parents.get(node)
        if isinstance(parent, ast.Subscript) and isinstance(parent.ctx, (ast.Store, ast.Del)):
            return True  # os.environ["X"] = … / del os.environ["X"]
        if isinstance(parent, ast.Attribute) and parent.attr in WRITE_METHODS:
            call = self.parents.get(parent)
            # a bare statement: the value is set, never read
            return isinstance(call, ast.Call) and isinstance(self.parents.get(call), ast.Expr)
        return False

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if ast.unparse(node) in self.environ_names and not self._is_write(node):
            self.report(self.parents.get(node, node))
        self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        if node.id in self.environ_names and not self._is_write(node):
            self.report(self.parents.get(node, node))

    def visit_Call(self, node: ast.Call) -> None:
        func = ast.unparse(node.func)
        if func in self.getenv_names or func in self.helper_names or (
                isinstance(node.func, ast.Attribute) and node.func.attr in ENV_HELPERS
                and ast.unparse(node.func.value) in ("env", "voiceplatform.env")):
            self.report(node)
        self.generic_visit(node)


def env_reads(tree: ast.Module) -> list[Finding]:
    """Every place a module reads the environment (writes to ``os.environ`` are not reads)."""
    return _EnvReads(tree).scan(tree)


def test_the_environment_is_read_in_settings_only() -> None:
    problems = []
    scanned = 0
    for path, tree in project_sources():
        scanned += 1
        if _env_allowed(path):
            continue
        for finding in env_reads(tree):
            if (path, finding.scope) in ENV_READ_ALLOWED_FUNCTIONS:
                continue
            problems.append(f"{path}:{finding.line}: {finding.code}")
    assert scanned > 50, "the walk found almost no sources: the guard would pass vacuously"
    assert not problems, ("read the environment in voiceplatform/settings.py (typed, through voiceplatform.env) "
                          "and use the setting instead:\n" + "\n".join(problems))


def test_allowed_environment_readers_exist() -> None:
    for allowed in ENV_READ_ALLOWED:
        if not allowed.startswith("*/"):
            assert (ROOT / allowed).exists(), f"ENV_READ_ALLOWED lists {allowed}, which no longer exists"
    for path, function in ENV_READ_ALLOWED_FUNCTIONS:
        tree = ast.parse((ROOT / path).read_text())
        assert any(isinstance(n, ast.FunctionDef) and n.name == function for n in ast.walk(tree)), (path, function)


@pytest.mark.parametrize(("source", "expected"), [
    ("import os\nx = os.environ.get('X')", ["os.environ.get"]),
    ("import os\nx = os.environ['X']", ["os.environ['X']"]),
    ("import os\nx = os.getenv('X', '1')", ["os.getenv('X', '1')"]),
    ("import os\nif 'X' in os.environ: pass", ["'X' in os.environ"]),
    ("import os\nenv = dict(os.environ)", ["dict(os.environ)"]),
    ("from os import environ as e\nx = e.get('X')", ["e.get"]),
    ("from os import getenv\nx = getenv('X')", ["getenv('X')"]),
    ("from voiceplatform.env import env_int\nx = env_int('X', 1)", ["env_int('X', 1)"]),
    ("from voiceplatform import env\nx = env.env_bool('X', False)", ["env.env_bool('X', False)"]),
    ("import os\ndef f():\n    return os.environ.setdefault('X', '1')", ["os.environ.setdefault"]),
    # writes configure a library or a child process; they read nothing
    ("import os\nos.environ['HF_HUB_OFFLINE'] = '1'", []),
    ("import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'voiceplatform.settings')", []),
    ("import os\ndel os.environ['X']", []),
    ("import os\nos.environ.pop('X', None)", []),
    ("env = {}\nx = env.get('X')", []),
])
def test_env_scanner(source: str, expected: list[str]) -> None:
    found = [f.code for f in env_reads(ast.parse(source))]
    assert [code for code in found if not any(code.startswith(e) for e in expected)] == [], found
    assert len(found) == len(expected), found


def test_env_scanner_names_the_scope() -> None:
    tree = ast.parse("import os\nclass A:\n    def f(self):\n        return os.getenv('X')\n")
    assert env_reads(tree) == [Finding(4, "A.f", "os.getenv('X')")]


# --- every setting read is defined -------------------------------------------------------

SETTINGS_MODULE = "voiceplatform/settings.py"


class _SettingsReads(_Scanner):
    """``settings.X`` and ``getattr(settings, "X", …)``. A helper that reads the setting
    named by one of its parameters (``def _setting(name, default): return getattr(settings,
    name, default)``) is followed to its callers in the module, which must name the setting."""

    def __init__(self, tree: ast.Module) -> None:
        super().__init__()
        self.names: set[str] = set()  # local names bound to django.conf.settings
        self.dotted: set[str] = {"django.conf.settings"}
        self.functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = []
        self.helpers: dict[str, int] = {}  # helper function → index of its setting-name parameter
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "django.conf":
                self.names |= {alias.asname or alias.name for alias in node.names if alias.name == "settings"}

    def scan(self, tree: ast.Module) -> list[Finding]:
        super().scan(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in self.helpers:
                index = self.helpers[node.func.id]
                name = node.args[index] if len(node.args) > index else None
                if isinstance(name, ast.Constant) and isinstance(name.value, str):
                    self.findings.append(Finding(node.lineno, "", name.value))
                else:
                    self.findings.append(Finding(node.lineno, "", f"<computed: {ast.unparse(node)}>"))
        return self.findings

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.functions.append(node)
        self._scoped(node)
        self.functions.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = _function

    def _helper_parameter(self, name: ast.expr) -> bool:
        """``name`` is a positional parameter of the enclosing function: record it as a helper."""
        if not (isinstance(name, ast.Name) and self.functions):
            return False
        function = self.functions[-1]
        params = [arg.arg for arg in function.args.posonlyargs + function.args.args]
        if name.id not in params:
            return False
        self.helpers[function.name] = params.index(name.id)
        return True

    def _is_settings(self, node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in self.names) or ast.unparse(node) in self.dotted

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if self._is_settings(node.value) and node.attr.isupper() and isinstance(node.ctx, ast.Load):
            self.findings.append(Finding(node.lineno, ".".join(self.scope), node.attr))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") and node.args
                and self._is_settings(node.args[0])):
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                self.findings.append(Finding(node.lineno, ".".join(self.scope), name.value))
            elif name is not None and self._helper_parameter(name):
                pass  # checked at each call of the helper
            else:  # a name built at run time cannot be checked, nor found by grep
                self.findings.append(Finding(node.lineno, ".".join(self.scope), f"<computed: {ast.unparse(node)}>"))
        self.generic_visit(node)


def settings_reads(tree: ast.Module) -> list[Finding]:
    """Every setting a module reads: ``Finding.code`` is the setting's name."""
    return _SettingsReads(tree).scan(tree)


def test_every_setting_read_is_defined() -> None:
    from django.conf import settings

    problems = []
    reads = 0
    for path, tree in project_sources():
        if path == SETTINGS_MODULE:
            continue
        for finding in settings_reads(tree):
            reads += 1
            if finding.code.startswith("<computed") or not hasattr(settings, finding.code):
                problems.append(f"{path}:{finding.line}: settings.{finding.code}")
    assert reads > 20, "the scan found almost no settings reads: the guard would pass vacuously"
    assert not problems, ("settings read but defined neither in voiceplatform/settings.py nor by Django "
                          "(define them there, typed, from the environment, with a comment):\n"
                          + "\n".join(problems))


@pytest.mark.parametrize(("source", "expected"), [
    ("from django.conf import settings\nx = settings.DEBUG", ["DEBUG"]),
    ("from django.conf import settings as s\nx = getattr(s, 'NOPE', 3)", ["NOPE"]),
    ("from django.conf import settings\nx = hasattr(settings, 'NOPE')", ["NOPE"]),
    ("import django.conf\nx = django.conf.settings.NOPE", ["NOPE"]),
    ("from django.conf import settings\nk = 'A'\nx = getattr(settings, k + '_B')", ["<computed: getattr(settings, k + '_B')>"]),
    ("from django.conf import settings\ndef f(s):\n    s.NOPE = 1\n    return settings.configured", []),
    ("settings = object()\nx = settings.NOPE", []),  # not django.conf.settings
    ("from django.conf import settings\ndef _setting(name, default):\n    return getattr(settings, name, default)\n"
     "x = _setting('NOPE', 1)\ny = _setting(f'{x}_Y', 1)", ["NOPE", "<computed: _setting(f'{x}_Y', 1)>"]),
])
def test_settings_scanner(source: str, expected: list[str]) -> None:
    assert [f.code for f in settings_reads(ast.parse(source))] == expected


def test_settings_scanner_sees_the_undefined_setting() -> None:
    from django.conf import settings

    tree = ast.parse("from django.conf import settings\n"
                     "def max_upload_bytes():\n"
                     "    return int(getattr(settings, 'KNOWLEDGE_MAX_UPLOAD_BYTS', 25 * 1024 * 1024))\n")
    [finding] = settings_reads(tree)
    assert finding == Finding(3, "max_upload_bytes", "KNOWLEDGE_MAX_UPLOAD_BYTS")
    assert not hasattr(settings, finding.code)


def test_own_mcp_server_names_match_the_servers() -> None:
    from django.conf import settings

    from integrations.mcp_servers import SERVERS

    assert set(settings.MCP_OWN_SERVER_NAMES) == set(SERVERS)


# --- core apps never depend on feature apps -----------------------------------------------

# The apps' layers, lowest first: an app may import from its own layer or below.
# batches (campaigns, schedules) and analytics are features on top of calls; calls uses agents;
# everything uses orgs; privacy (retention purge, subject export and erasure) reads and deletes
# every app's call data, so it sits on top. Hooks run the other way by registration (batches registers
# its do-not-call check with calls.services.placement). `voiceplatform` is the project package
# (settings, shared base classes, URL roots) and may import any app.
LAYERS = [{"orgs"}, {"knowledge", "integrations", "agents"}, {"calls"}, {"batches", "analytics", "simulations"},
          {"privacy"}]


def _layer(app: str) -> int | None:
    for index, apps_in_layer in enumerate(LAYERS):
        if app in apps_in_layer:
            return index
    return None


def test_core_apps_do_not_import_feature_apps() -> None:
    problems = []
    for path, tree in project_sources():
        if "/testing/" in f"/{path}" or path.startswith("bench/"):
            continue
        own = _layer(path.split("/", 1)[0])
        if own is None:
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                target = _layer(name.split(".", 1)[0])
                if target is not None and target > own and name.split(".", 1)[0] != path.split("/", 1)[0]:
                    problems.append(f"{path}:{node.lineno}: imports {name}")
    assert not problems, "a lower layer imports a feature built on it:\n" + "\n".join(problems)


# --- evaluation code stays out of production -------------------------------------------------

# knowledge/evaluation holds what only the quality bench and the tests use (the corpus reader, the scorer, the
# measured-only per-base query adapter): production code importing it would ship experiment code (the adapter
# trains with torch). The bench and test modules (project_sources skips tests/ and test_*.py) may import it.
EVALUATION_PACKAGE = "knowledge.evaluation"
EVALUATION_USERS = ("bench/", "knowledge/evaluation/")


def _imported_modules(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, dotted name) of every absolute import; `from a import b` yields both a and a.b (b may be a module)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def _imports_evaluation(tree: ast.Module) -> list[int]:
    return sorted({line for line, name in _imported_modules(tree)
                   if name == EVALUATION_PACKAGE or name.startswith(EVALUATION_PACKAGE + ".")})


def test_production_never_imports_evaluation_code() -> None:
    problems = [f"{path}:{line}" for path, tree in project_sources() if not path.startswith(EVALUATION_USERS)
                for line in _imports_evaluation(tree)]
    assert not problems, "production code imports knowledge.evaluation (bench/test only):\n" + "\n".join(problems)


@pytest.mark.parametrize(("source", "lines"), [
    ("from knowledge.evaluation import adapter", [1]),
    ("import knowledge.evaluation.run as run", [1]),
    ("x = 1\nfrom knowledge import evaluation", [2]),
    ("def f():\n    from knowledge.evaluation.adapter import adapt", [2]),
    ("from knowledge import evaluations, search\nimport knowledge.evaluation_notes", []),
])
def test_evaluation_import_scanner(source: str, lines: list[int]) -> None:
    assert _imports_evaluation(ast.parse(source)) == lines


# --- one service error type, mapped once ---------------------------------------------------

# What a service module may raise besides a ServiceError, and why.
NON_SERVICE_ERRORS_ALLOWED: dict[str, str] = {
    "django.core.exceptions.ValidationError":
        "model validation (full_clean, field validators) in orgs/knowledge/integrations/agents; the same "
        "exception handler maps it for the API, and Django forms show it on the dashboard",
    "django.core.exceptions.PermissionDenied": "a role check; the exception handler answers 403",
    "django.core.exceptions.ObjectDoesNotExist": "a lookup by id for the session side (a 404 where it reaches a view)",
    "calls.media.result.ToolError": "the answer to the model's tool call during a session, not a refused request",
    "knowledge.embeddings.base.EmbeddingError":
        "the embedding backend's failure (retryable or not), handled by the ingestion task and the search view",
    "knowledge.extraction.ExtractionError": "a document that cannot be read; stored on the document version",
    "knowledge.services._Busy": "internal control flow of the ingestion lock, caught in the same module",
    "builtins.RuntimeError": "a can-not-happen (an API key prefix collided 50 times)",
}
# (module path, name) → what a raise of a local name raises.
LOCAL_RAISES: dict[tuple[str, str], str] = {
    ("calls/services/placement.py", "error"): "MissingVariables or CallError, chosen on the line before",
}


def _service_modules() -> list[str]:
    found = sorted({path for path, _ in project_sources()
                    if path.endswith("/services.py") or "/services/" in path})
    assert len(found) >= 8, found  # the guard must see the apps' services
    return found


def _raised_names(tree: ast.Module) -> list[tuple[int, str]]:
    return [(node.lineno, ast.unparse(node.exc.func if isinstance(node.exc, ast.Call) else node.exc))
            for node in ast.walk(tree) if isinstance(node, ast.Raise) and node.exc is not None]


def test_services_raise_service_errors() -> None:
    """A refusal a service gives is a ``ServiceError`` (code, message, field, status), so the
    API and the dashboard each present it in one place (voiceplatform.errors)."""
    import builtins
    import importlib
    import typing

    from voiceplatform.errors import ServiceError

    problems = []
    for path in _service_modules():
        module = importlib.import_module(path.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
        for line, name in _raised_names(ast.parse((ROOT / path).read_text())):
            target: Any = module if hasattr(module, name.split(".")[0]) else builtins
            for part in name.split("."):
                target = getattr(target, part, None)
            if target is None:
                if (path, name) not in LOCAL_RAISES:
                    problems.append(f"{path}:{line}: raises {name}, which the guard cannot resolve")
                continue
            if not isinstance(target, type) and callable(target):  # a function that builds the exception
                target = typing.get_type_hints(target).get("return")
            assert isinstance(target, type), f"{path}:{line}: {name}"
            if issubclass(target, ServiceError):
                continue
            allowed = any(issubclass(target, _import_dotted(dotted)) for dotted in NON_SERVICE_ERRORS_ALLOWED)
            if not allowed:
                problems.append(f"{path}:{line}: raises {target.__module__}.{target.__qualname__}")
    assert not problems, ("derive the error from voiceplatform.errors.ServiceError (or list it with the reason "
                          "in NON_SERVICE_ERRORS_ALLOWED):\n" + "\n".join(problems))


def _import_dotted(dotted: str) -> type:
    import importlib

    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class _ErrorTranslations(_Scanner):
    """The per-view error translations one mapping replaced: a function named ``_raise``,
    ``….removeprefix(f"{…field}: ")`` and a ServiceError-style call (``field=`` given)
    whose message starts with that field's name and a colon."""

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        if node.name == "_raise":
            self.findings.append(Finding(node.lineno, ".".join(self.scope), f"def {node.name}"))
        self._scoped(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "removeprefix" and node.args \
                and _strips_a_field_name(func.value, node.args[0]):
            self.report(node)
        field = next((kw.value for kw in node.keywords if kw.arg == "field"), None)
        if field is not None and node.args and _starts_with_field(node.args[0], field):
            self.report(node)
        self.generic_visit(node)


def _strips_a_field_name(receiver: ast.expr, prefix: ast.expr) -> bool:
    """``x.message.removeprefix("name: ")`` or ``….removeprefix(f"{name}: ")``."""
    if isinstance(prefix, ast.JoinedStr) and len(prefix.values) == 2:
        head, tail = prefix.values
        return isinstance(head, ast.FormattedValue) and isinstance(tail, ast.Constant) and tail.value == ": "
    return (isinstance(prefix, ast.Constant) and isinstance(prefix.value, str) and prefix.value.endswith(": ")
            and isinstance(receiver, ast.Attribute) and receiver.attr == "message")


def _starts_with_field(message: ast.expr, field: ast.expr) -> bool:
    first = message.values[0] if isinstance(message, ast.JoinedStr) and message.values else message
    if isinstance(field, ast.Constant) and isinstance(first, ast.Constant) and isinstance(first.value, str):
        return isinstance(field.value, str) and first.value.startswith(f"{field.value}:")
    if isinstance(first, ast.FormattedValue) and isinstance(message, ast.JoinedStr) and len(message.values) > 1:
        after = message.values[1]
        return (ast.unparse(first.value) == ast.unparse(field) and isinstance(after, ast.Constant)
                and str(after.value).startswith(":"))
    return False


def error_translations(tree: ast.Module) -> list[Finding]:
    return _ErrorTranslations().scan(tree)


def test_errors_are_translated_in_one_place() -> None:
    problems = [f"{path}:{finding.line}: {finding.code}"
                for path, tree in project_sources() for finding in error_translations(tree)]
    assert not problems, ("a ServiceError carries its field as an attribute, and voiceplatform.errors presents "
                          "it (api_exception for the API, show_error/form_error for the dashboard); no message "
                          "starts with \"field: \" and no view translates errors itself:\n" + "\n".join(problems))


@pytest.mark.parametrize(("source", "found"), [
    ("def _raise(error):\n    pass", ["def _raise"]),
    ("raise CallError('to: cannot call yourself', field='to')", ["CallError('to: cannot call yourself', field='to')"]),
    ("raise BatchError(f'{name}: must be a number', field=name)", ["BatchError(f'{name}: must be a number', field=name)"]),
    ("raise BatchError(f'e164: {why}', field='e164')", ["BatchError(f'e164: {why}', field='e164')"]),
    ("m = exc.message.removeprefix(f'{exc.field}: ')", ["exc.message.removeprefix(f'{exc.field}: ')"]),
    ("m = exc.message.removeprefix('e164: ')", ["exc.message.removeprefix('e164: ')"]),
    ("raise CallError('cannot call yourself', field='to')", []),
    ("raise BatchError(f'{name} must be a number', field=name)", []),
    ("raise ScheduleError(f\"'{tz}' is not a known time zone\", field='timezone')", []),
    ("x = s.removeprefix('v')", []),
    ("x = outcome.output.removeprefix('error: ')", []),
])
def test_error_translation_scanner(source: str, found: list[str]) -> None:
    assert [f.code for f in error_translations(ast.parse(source))] == found


# --- every network client is built through the outbound guard, or says why not -----------------

# Issue 11, item 3: a request to a destination a customer typed goes through
# voiceplatform/outbound.py. A network client (HTTP, WebSocket, vendor SDK, socket) built
# anywhere else must be listed here with how its destination is guarded or why it is not
# customer-supplied, so a new module cannot quietly open one. Fakes (`*/testing/`) and
# benchmarks (`bench/`) talk to their own local servers only.
_NET_MODULES = r"(httpx2?|hx|requests|aiohttp|urllib\.request|websockets(\.\w+)*|socket|asyncio|openai|genai|plivo|api|rtc)"
_NET_NAMES = (r"(Client|AsyncClient|get|post|put|patch|delete|head|request|stream|Session|ClientSession|urlopen|connect"
              r"|create_connection|open_connection|OpenAI|AsyncOpenAI|AzureOpenAI|AsyncAzureOpenAI|RestClient|LiveKitAPI"
              r"|Room)")
_NET_QUALIFIED = re.compile(rf"^{_NET_MODULES}\.{_NET_NAMES}$")
_NET_BARE = {"OpenAI", "AsyncOpenAI", "AzureOpenAI", "AsyncAzureOpenAI", "HumeClient", "AsyncHumeClient", "DeepgramClient",
             "AsyncDeepgramClient", "Client", "AsyncClient", "TwilioHttpClient", "RebasedTwilioHttpClient", "sse_client",
             "streamablehttp_client", "streamable_http_client", "urlopen", "ws_connect", "LiveKitAPI", "ClientSession",
             "create_connection", "open_connection"}
_SDK_WITH_GUARDED_HTTP = "a base_url override gets http_client=outbound.sync_client (pinned, bounded); none: the vendor"
_SDK_RESOLVES_ITSELF = ("the override is checked by agents.bridges.base.guard_base_url just before connecting, but this "
                        "SDK takes no socket and resolves the name again (documented residual, README 'Security model')")
NETWORK_CLIENTS = {
    ("agents/credential_checks.py", "DeepgramClient"): _SDK_WITH_GUARDED_HTTP,
    ("agents/bridges/deepgram_agent.py", "AsyncDeepgramClient"): _SDK_RESOLVES_ITSELF,
    ("agents/bridges/gemini_live.py", "genai.Client"): _SDK_RESOLVES_ITSELF,
    ("agents/bridges/hume_evi.py", "AsyncHumeClient"): _SDK_RESOLVES_ITSELF,
    ("agents/bridges/openai_realtime.py", "AsyncAzureOpenAI"): "connects with sock= from guard_base_url (pinned)",
    ("agents/bridges/openai_realtime.py", "AsyncOpenAI"): "connects with sock= from guard_base_url (pinned)",
    ("agents/bridges/openai_realtime.py", "openai.AsyncAzureOpenAI"): "imported for the construction above",
    ("agents/bridges/openai_realtime.py", "openai.AsyncOpenAI"): "imported for the construction above",
    ("calls/analysis.py", "openai.OpenAI"): _SDK_WITH_GUARDED_HTTP,
    ("calls/carriers/plivo_carrier.py", "plivo.RestClient"): "a base_url override mounts outbound.GuardedRequestsAdapter",
    ("calls/carriers/twilio_carrier.py", "Client"): "its http_client is RebasedTwilioHttpClient for an override",
    ("calls/carriers/twilio_carrier.py", "RebasedTwilioHttpClient"): "sends through outbound.GuardedRequestsAdapter",
    ("calls/carriers/twilio_carrier.py", "TwilioHttpClient"): "no override: Twilio's own API host",
    ("calls/media/livekit_transport.py", "rtc.Room"): ("the URL passes outbound.check_url in livekit_server_for just "
                                                       "before joining; the Rust core resolves it again (residual)"),
    ("integrations/mcp_client.py", "httpx2.AsyncClient"): "only ServerSpec.trusted: the deployment's own MCP servers",
    ("integrations/mcp_client.py", "sse_client"): "its httpx_client_factory builds outbound.async_client",
    ("integrations/mcp_client.py", "streamable_http_client"): "its http_client is outbound.async_client",
    ("integrations/mcp_client.py", "ClientSession"): "the MCP session object over those guarded transports (no I/O)",
    ("integrations/mcp_servers/base.py", "httpx.AsyncClient"): ("own MCP servers call the vendor API bases the "
                                                                "deployment configures (env), never a tenant's URL"),
    ("knowledge/embeddings/remote.py", "OpenAI"): _SDK_WITH_GUARDED_HTTP,
    ("knowledge/embeddings/remote.py", "genai.Client"): _SDK_WITH_GUARDED_HTTP,
    ("knowledge/embeddings/remote.py", "openai.OpenAI"): "imported for the construction above",
    ("orgs/credential_checks.py", "openai.AzureOpenAI"): _SDK_WITH_GUARDED_HTTP,
    ("orgs/credential_checks.py", "openai.OpenAI"): _SDK_WITH_GUARDED_HTTP,
    ("orgs/credential_checks.py", "genai.Client"): _SDK_WITH_GUARDED_HTTP,
    ("orgs/credential_checks.py", "api.LiveKitAPI"): "its session is outbound.aiohttp_session (pinned)",
    ("voiceplatform/embedded.py", "socket.create_connection"): "probes the embedded services on 127.0.0.1",
    ("voiceplatform/testing.py", "urllib.request.urlopen"): "test helper: polls the test's own local server",
}
NETWORK_CLIENT_EXEMPT = ("voiceplatform/outbound.py", "bench/")  # the guard itself; benchmarks


def network_clients(tree: ast.Module) -> list[str]:
    """Client constructions and requests (``httpx.AsyncClient(…)``, ``OpenAI(…)``), and
    imports that would let one be called bare (``from websockets.asyncio.client import connect``)."""
    calls = {name for node in ast.walk(tree) if isinstance(node, ast.Call)
             for name in [ast.unparse(node.func)] if _NET_QUALIFIED.match(name) or name in _NET_BARE}
    imports = {f"{node.module}.{alias.name}" for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module for alias in node.names
               if _NET_QUALIFIED.match(f"{node.module}.{alias.name}")}
    return sorted(calls | imports)


def test_network_clients_go_through_the_outbound_guard_or_are_listed() -> None:
    found = {(path, name) for path, tree in project_sources()
             if not path.startswith(NETWORK_CLIENT_EXEMPT) and "/testing/" not in path
             for name in network_clients(tree)}
    unlisted = sorted(found - NETWORK_CLIENTS.keys())
    assert not unlisted, ("build clients for customer-supplied destinations with voiceplatform.outbound "
                          "(sync_client, async_client, GuardedRequestsAdapter, open_connection, aiohttp_session), "
                          "or list them in NETWORK_CLIENTS with why they are safe:\n" + "\n".join(map(str, unlisted)))
    assert not (stale := sorted(NETWORK_CLIENTS.keys() - found)), f"listed but no longer built: {stale}"


@pytest.mark.parametrize(("source", "found"), [
    ("import httpx\nc = httpx.AsyncClient(timeout=3)", ["httpx.AsyncClient"]),
    ("requests.get(url)\nurllib.request.urlopen(u)", ["requests.get", "urllib.request.urlopen"]),
    ("async with websockets.connect(u) as ws: pass", ["websockets.connect"]),
    ("c = OpenAI(api_key=k, base_url=u)\nr = rtc.Room()", ["OpenAI", "rtc.Room"]),
    ("from websockets.asyncio.client import connect\nfrom httpx import AsyncClient",
     ["httpx.AsyncClient", "websockets.asyncio.client.connect"]),
    ("client = outbound.sync_client(policy)\nx = self.client.get(u)\nfrom websockets.exceptions import InvalidStatus",
     []),
])
def test_network_client_scanner(source: str, found: list[str]) -> None:
    assert network_clients(ast.parse(source)) == found
