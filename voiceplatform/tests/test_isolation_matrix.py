"""The org-isolation matrix, built from what exists: every admin page and every API
route of every org-scoped model with a registered factory (voiceplatform.testing)."""
from __future__ import annotations

from typing import Any

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from orgs.models import Membership, Organization
from voiceplatform.admin import OrgScopedAdmin
from voiceplatform.api import OrgScopedViewSet
from voiceplatform.testing import load_factories

FACTORIES = load_factories()


def _admin_cases() -> list[Any]:
    cases = []
    for model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, OrgScopedAdmin):
            continue
        if model in FACTORIES or model in (Organization, Membership):
            cases.append(pytest.param(model, id=model._meta.label))
    return cases


def _make(model: Any, org: Any, owner: Any) -> Any:
    if model is Organization:
        return org
    if model is Membership:
        return Membership.objects.get(org=org, user=owner)
    return FACTORIES[model](org)


def _admin_url(model: Any, view: str, *args: Any) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.django_db
@pytest.mark.parametrize("model", _admin_cases())
def test_admin_pages_are_scoped(model: Any, org_a: Any, owner_a: Any, viewer_a: Any, outsider: Any,
                                login: Any, client: Any) -> None:
    obj = _make(model, org_a, owner_a)
    changelist = _admin_url(model, "changelist")
    change = _admin_url(model, "change", obj.pk)

    # anonymous → the admin login page
    response = client.get(changelist)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]

    # a member of another org: the row is not listed, and its page is a 404
    other = login(outsider)
    response = other.get(changelist)
    assert response.status_code == 200
    assert obj.pk not in {row.pk for row in response.context["cl"].queryset}
    assert other.get(change).status_code == 404

    # the owner sees it
    assert login(owner_a).get(change).status_code == 200

    # a viewer may look (where the admin's read role, like the API's, allows) but not change
    viewer = login(viewer_a)
    may_read = admin.site._registry[model].admin_read_role == "viewer"
    assert viewer.get(change).status_code == (200 if may_read else 403)
    assert viewer.post(change, {}).status_code == 403


def _api_routes() -> list[Any]:
    routes = []

    def walk(patterns: list[Any], prefix: str, namespace: str | None) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                ns = pattern.namespace or namespace
                walk(pattern.url_patterns, prefix + str(pattern.pattern), ns)
            elif isinstance(pattern, URLPattern) and namespace == "api" and pattern.name:
                cls = getattr(pattern.callback, "cls", None)
                routes.append((pattern.name, cls, list(pattern.pattern.regex.groupindex), pattern))

    walk(get_resolver().url_patterns, "", None)
    return routes


API_ROUTES = _api_routes()


def test_api_has_routes() -> None:
    assert any(name.endswith("-list") for name, *_ in API_ROUTES)


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted({name for name, _c, conv, _p in API_ROUTES if not conv}))
def test_api_collection_requires_authentication(name: str, api: Any) -> None:
    url = reverse(f"api:{name}")
    assert api().get(url).status_code == 401
    assert api().post(url, {}, format="json").status_code == 401


def _detail_cases() -> list[Any]:
    cases = []
    for name, cls, converters, _pattern in API_ROUTES:
        if not name.endswith("-detail") or cls is None or not issubclass(cls, OrgScopedViewSet):
            continue
        if getattr(cls, "model", None) in FACTORIES:
            cases.append(pytest.param(name, cls, id=name))
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "viewset"), _detail_cases())
def test_api_detail_is_scoped(name: str, viewset: Any, org_a: Any, owner_a: Any, viewer_a: Any,
                              outsider: Any, api: Any) -> None:
    obj = FACTORIES[viewset.model](org_a)
    url = reverse(f"api:{name}", kwargs={viewset.lookup_field: obj.public_id})
    assert api().get(url).status_code == 401
    assert api(outsider).get(url).status_code == 404
    assert api(outsider).delete(url).status_code == 404
    owner_status = api(owner_a).get(url).status_code
    assert owner_status == 200
    allowed = {m.lower() for m in viewset.http_method_names}
    viewer = api(viewer_a)
    read_role = getattr(viewset, "read_role", "viewer")
    if read_role == "viewer":
        assert viewer.get(url).status_code == 200
    for method in ("patch", "delete"):
        if method in allowed:
            assert getattr(viewer, method)(url, {}, format="json").status_code == 403, method
    # the object is untouched by all of the above
    assert type(obj).objects.filter(pk=obj.pk).exists()
