"""The org-isolation matrix, built from what exists: every admin page and every API
route of every org-scoped model with a registered factory (voiceplatform.testing)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from orgs.models import Membership, Organization, Role, role_at_least
from voiceplatform.admin import OrgScopedAdmin
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


# How a route's path parameters are read off the object the route addresses. A route
# with a parameter not listed here fails test_every_route_parameter_is_known.
URL_KWARGS: dict[str, Callable[[Any], Any]] = {
    "public_id": lambda obj: obj.public_id,
    "provider": lambda obj: obj.provider,
    "kb_public_id": lambda obj: obj.knowledge_base.public_id,
    "agent_public_id": lambda obj: obj.agent.public_id,
}
SAFE_METHODS = {"get", "head", "options"}


def route_model(cls: Any) -> Any:
    """The model whose rows a route addresses: the viewset's ``model``, else its queryset's."""
    model = getattr(cls, "model", None)
    if model is None and getattr(cls, "queryset", None) is not None:
        model = cls.queryset.model
    return model


def _covered(model: Any) -> bool:
    return model in FACTORIES or model in (Organization, Membership)


def _object_routes() -> list[Any]:
    """Every API route that addresses one object (detail routes and their actions)."""
    cases = []
    for name, cls, converters, pattern in API_ROUTES:
        if not converters or cls is None:
            continue
        model = route_model(cls)
        if model is not None and _covered(model):
            cases.append(pytest.param(name, cls, model, pattern, id=name))
    return cases


def _methods(cls: Any, pattern: Any) -> dict[str, str]:
    """HTTP method → viewset action this route serves (``http_method_names`` applied)."""
    actions = getattr(pattern.callback, "actions", None) or {}
    allowed = {m.lower() for m in cls.http_method_names}
    return {method: action for method, action in actions.items() if method in allowed and method != "options"}


def _needed_role(cls: Any, action: str, method: str) -> str:
    roles: dict[str, str] = getattr(cls, "action_roles", {})
    if action in roles:
        return roles[action]
    return getattr(cls, "read_role", Role.VIEWER) if method in SAFE_METHODS else getattr(cls, "write_role", Role.EDITOR)


def test_every_route_parameter_is_known() -> None:
    unknown = {(name, conv) for name, _cls, converters, _p in API_ROUTES for conv in converters if conv not in URL_KWARGS}
    assert not unknown, f"add these path parameters to URL_KWARGS: {sorted(unknown)}"


def test_every_object_route_is_in_the_matrix() -> None:
    """A route addressing a model the matrix cannot build would be skipped silently."""
    skipped = sorted(name for name, cls, converters, _p in API_ROUTES
                     if converters and (cls is None or route_model(cls) is None or not _covered(route_model(cls))))
    assert not skipped, f"API routes the isolation matrix cannot cover (register a factory): {skipped}"


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "viewset", "model", "pattern"), _object_routes())
def test_api_object_routes_are_scoped(name: str, viewset: Any, model: Any, pattern: Any, org_a: Any, owner_a: Any,
                                      viewer_a: Any, outsider: Any, api: Any) -> None:
    """Every method of every route on one object: anonymous → 401, another org's member
    → 404 (writes included, whatever the body), a viewer writing → 403 where the view
    needs more than a viewer, and the object survives all of it."""
    obj = _make(model, org_a, owner_a)
    url = reverse(f"api:{name}", kwargs={conv: URL_KWARGS[conv](obj)
                                         for conv in pattern.pattern.regex.groupindex})
    methods = _methods(viewset, pattern)
    assert methods, f"{name} serves no method"
    anonymous, other, viewer = api(), api(outsider), api(viewer_a)
    for method, action in methods.items():
        call = (lambda client, m=method: getattr(client, m)(url) if m in SAFE_METHODS
                else getattr(client, m)(url, {}, format="json"))
        assert call(anonymous).status_code == 401, (method, "anonymous")
        assert call(other).status_code == 404, (method, "member of another org")
        if not role_at_least(Role.VIEWER, _needed_role(viewset, action, method)):
            assert call(viewer).status_code == 403, (method, "viewer")
    if name.endswith("-detail"):
        assert api(owner_a).get(url).status_code == 200
        if getattr(viewset, "read_role", Role.VIEWER) == Role.VIEWER:
            assert viewer.get(url).status_code == 200
    # the object is untouched by all of the above
    assert type(obj).objects.filter(pk=obj.pk).exists()


def _collection_cases() -> list[Any]:
    cases = []
    for name, cls, converters, pattern in API_ROUTES:
        if converters or cls is None or not hasattr(pattern.callback, "actions"):
            continue
        for method, action in _methods(cls, pattern).items():
            if method not in SAFE_METHODS and not role_at_least(Role.VIEWER, _needed_role(cls, action, method)):
                cases.append(pytest.param(name, method, id=f"{name}-{method}"))
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "method"), _collection_cases())
def test_api_collection_writes_need_the_role(name: str, method: str, org_a: Any, viewer_a: Any, api: Any) -> None:
    response = getattr(api(viewer_a), method)(reverse(f"api:{name}"), {}, format="json")
    assert response.status_code == 403, response.content


def _inline_cases() -> list[Any]:
    """Org-scoped models shown only as inlines of another admin (e.g. document versions)."""
    cases = []
    for parent_model, model_admin in admin.site._registry.items():
        if not isinstance(model_admin, OrgScopedAdmin):
            continue
        for inline in model_admin.inlines:
            if inline.model in FACTORIES and inline.model not in admin.site._registry:
                cases.append(pytest.param(parent_model, inline.model, id=inline.model._meta.label))
    return cases


@pytest.mark.django_db
@pytest.mark.parametrize(("parent_model", "model"), _inline_cases())
def test_admin_inlines_are_scoped(parent_model: Any, model: Any, org_a: Any, owner_a: Any, viewer_a: Any,
                                  outsider: Any, login: Any, client: Any) -> None:
    obj = FACTORIES[model](org_a)
    parent = next(getattr(obj, f.name) for f in model._meta.fields
                  if f.is_relation and f.related_model is parent_model)
    change = _admin_url(parent_model, "change", parent.pk)
    assert client.get(change).status_code == 302
    assert login(outsider).get(change).status_code == 404
    shown = login(owner_a).get(change)
    assert shown.status_code == 200
    inline_rows = {form.instance.pk for formset in shown.context["inline_admin_formsets"]
                   for form in formset.formset.forms}
    assert obj.pk in inline_rows
    assert login(viewer_a).post(change, {}).status_code == 403
    assert model.objects.filter(pk=obj.pk).exists()


def test_every_org_scoped_model_is_in_the_matrix() -> None:
    """Each org-scoped model is reached by at least one admin page, inline or API route of the matrix."""
    from django.apps import apps

    from voiceplatform.models import OrgScopedModel

    reached = {case.values[0] for case in _admin_cases()}
    reached |= {case.values[1] for case in _inline_cases()}
    reached |= {case.values[2] for case in _object_routes()}
    missing = sorted(m._meta.label for m in apps.get_models() if issubclass(m, OrgScopedModel) and m not in reached)
    assert not missing, f"org-scoped models no isolation check reaches: {missing}"


def test_every_org_scoped_admin_is_in_the_matrix() -> None:
    """An admin scoped by org whose model has no factory would be skipped silently."""
    covered = {case.values[0] for case in _admin_cases()}
    missing = sorted(model._meta.label for model, model_admin in admin.site._registry.items()
                     if isinstance(model_admin, OrgScopedAdmin) and model not in covered)
    assert not missing, f"org-scoped admins the isolation matrix cannot cover (register a factory): {missing}"
