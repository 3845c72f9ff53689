"""Health endpoints, auth pages, API docs served from vendored assets, the committed schema."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voiceplatform.env import ImproperlyConfiguredEnv, env_bool, env_int, env_list

ROOT = Path(__file__).resolve().parents[2]


def test_healthz(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_and_redis(client: Any) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_readyz_reports_redis_down(client: Any, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"].startswith("error")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"])
def test_auth_pages_render(client: Any, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.django_db
def test_signup_verify_email_login_then_create_org(client: Any, settings: Any) -> None:
    import re

    from django.core import mail

    settings.ACCOUNT_EMAIL_VERIFICATION = "mandatory"
    password = "Long-enough-pw-77"
    response = client.post("/accounts/signup/", {"email": "first@example.test", "password1": password,
                                                 "password2": password})
    assert response.status_code == 302
    # not signed in until the address is verified
    assert client.get("/dashboard/")["Location"].startswith("/accounts/login/")
    link = re.search(r"(/accounts/confirm-email/[^\s]+)", mail.outbox[-1].body).group(1)
    assert client.post(link).status_code == 302
    response = client.post("/accounts/login/", {"login": "first@example.test", "password": password})
    assert response.status_code == 302 and response["Location"] == "/orgs/new/"
    response = client.post("/orgs/new/", {"name": "First Org", "timezone": "UTC", "default_country": "US"})
    assert client.get("/dashboard/").status_code == 200


@pytest.mark.django_db
def test_api_docs_use_vendored_assets(client: Any) -> None:
    html = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "/static/drf_spectacular_sidecar/" in html
    redoc = client.get("/api/redoc/").content.decode()
    assert "/static/drf_spectacular_sidecar/" in redoc and "cdn.jsdelivr" not in redoc


def test_committed_schema_is_current(tmp_path: Path) -> None:
    out = tmp_path / "schema.yaml"
    from voiceplatform.testing import subprocess_env

    result = subprocess.run([sys.executable, "manage.py", "spectacular", "--file", str(out), "--validate",
                             "--fail-on-warn"], cwd=ROOT, capture_output=True, text=True, env=subprocess_env())
    assert result.returncode == 0, result.stderr[-3000:]
    committed = (ROOT / "openapi.yaml").read_text()
    assert out.read_text() == committed, "openapi.yaml is stale: run `make schema` and commit it"


def test_env_helpers_fail_loudly(monkeypatch: Any) -> None:
    monkeypatch.setenv("X_BOOL", "ture")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_BOOL"):
        env_bool("X_BOOL", False)
    monkeypatch.setenv("X_INT", "ten")
    with pytest.raises(ImproperlyConfiguredEnv, match="X_INT='ten' is not an integer"):
        env_int("X_INT", 1)
    monkeypatch.setenv("X_LIST", "a, b,,c")
    assert env_list("X_LIST") == ["a", "b", "c"]


def test_production_settings_refuse_missing_secrets(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "false", "DATABASE_URL": "postgres://u@127.0.0.1:1/x",
           "REDIS_URL": "redis://127.0.0.1:1/0", "VP_VAR_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import voiceplatform.settings"], cwd=ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_docker_compose_describes_the_whole_stack() -> None:
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web1", "web2", "proxy", "worker", "beat"} <= set(services)
    assert "pgvector" in services["postgres"]["image"]
    for name in ("web1", "web2", "worker", "beat", "migrate"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and env["REDIS_URL"].startswith("redis://")
        assert "media:/app/media" in services[name]["volumes"]
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["beat"]["command"][-1] == "django_celery_beat.schedulers:DatabaseScheduler"
    # the web processes drain calls on SIGTERM and name themselves to the proxy
    nodes = {services[name]["environment"]["NODE_ID"] for name in ("web1", "web2")}
    assert nodes == {"web1", "web2"}
    for name in ("web1", "web2"):
        assert services[name]["command"][:3] == ["python", "-m", "voiceplatform.serve"]
        assert services[name]["stop_grace_period"]
    assert "./deploy/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["proxy"]["volumes"]
    proxy_conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert all(f"server {node}:8000" in proxy_conf for node in nodes)
