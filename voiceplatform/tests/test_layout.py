"""The dashboard's frame: first-run checklist, empty states, error pages, auth pages, labels.

Plain Django client tests; the browser test (test_browser.py) checks the same pages at phone
and desktop widths.
"""
from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.urls import path, reverse

pytestmark = pytest.mark.django_db


def steps(response: Any) -> dict[str, bool]:
    """The checklist's steps as rendered: key -> ticked."""
    import re

    html = response.content.decode()
    return {key: done == "true" for key, done in re.findall(r'data-step="(\w+)" data-done="(true|false)"', html)}


def test_first_run_checklist_follows_the_database(owner_a: Any, org_a: Any, login: Any) -> None:
    from calls.tests.factories import make_call, make_phone_number, make_ready_agent
    from orgs.tests.factories import make_credential

    client = login(owner_a)
    response = client.get(reverse("dashboard"))
    assert steps(response) == {"agent": False, "key": False, "web_call": False, "number": False, "call": False}
    assert b"0 of 5 done" in response.content
    assert f'href="{reverse("agents:create")}"'.encode() in response.content

    agent = make_ready_agent(org_a)
    make_credential(org_a)
    make_call(org_a, agent=agent, direction="web", status="completed")
    number = make_phone_number(org_a)
    # A dial that never connected is not a call taken: the step stays open and says why.
    failed = make_call(org_a, agent=agent, status="failed", from_number=number.e164)
    response = client.get(reverse("dashboard"))
    assert steps(response) == {"agent": True, "key": True, "web_call": True, "number": True, "call": False}
    assert b"4 of 5 done" in response.content and b'aria-valuenow="4"' in response.content
    assert b"did not connect (failed)" in response.content
    assert reverse("calls:detail", args=[failed.public_id]).encode() in response.content
    assert f'{reverse("calls:web")}?agent={agent.public_id}'.encode() not in response.content  # done steps: no button

    # The last step done, the checklist is gone for good.
    from django.utils import timezone

    make_call(org_a, agent=agent, status="completed", answered_at=timezone.now(), direction="inbound")
    response = client.get(reverse("dashboard"))
    assert steps(response) == {}
    assert b'id="first-run"' not in response.content


def test_checklist_steps_come_back_when_their_objects_go(owner_a: Any, org_a: Any, org_b: Any, login: Any) -> None:
    from agents.models import Agent
    from calls.tests.factories import make_ready_agent
    from orgs.tests.factories import make_credential

    make_ready_agent(org_b)
    make_credential(org_b)
    # Another org's agent and key tick nothing here.
    assert steps(login(owner_a).get(reverse("dashboard"))) == {
        "agent": False, "key": False, "web_call": False, "number": False, "call": False}
    make_ready_agent(org_a)
    assert steps(login(owner_a).get(reverse("dashboard")))["agent"] is True
    Agent.objects.filter(org=org_a).delete()
    assert steps(login(owner_a).get(reverse("dashboard")))["agent"] is False


def test_an_admin_dismisses_the_checklist_for_the_org(owner_a: Any, viewer_a: Any, org_a: Any, login: Any) -> None:
    from orgs.models import AuditLog

    viewer = login(viewer_a)
    assert b'id="first-run"' in viewer.get(reverse("dashboard")).content
    assert b"dismiss_first_run" not in viewer.get(reverse("dashboard")).content  # no button for viewers
    assert viewer.post(reverse("dashboard"), {"dismiss_first_run": "1"}).status_code == 403
    assert login(owner_a).post(reverse("dashboard"), {"bogus": "1"}).status_code == 400

    response = login(owner_a).post(reverse("dashboard"), {"dismiss_first_run": "1"})
    assert response.status_code == 302
    login(owner_a).post(reverse("dashboard"), {"dismiss_first_run": "1"})  # twice: still one entry
    assert AuditLog.objects.filter(org=org_a, action="organization.first_run_dismissed").count() == 1
    assert b'id="first-run"' not in viewer.get(reverse("dashboard")).content  # hidden for every member


EMPTY_LISTS = [
    # (url name, the button's target)
    ("agents:list", "/agents/new/"),
    ("calls:list", "/calls/web/"),
    ("calls:numbers", "#import-numbers"),
    ("batches:list", "/batches/new/"),
    ("batches:schedules", "/schedules/new/"),
    ("knowledge:list", "#new-knowledge-base"),
    ("integrations:servers", "#connect"),
    ("integrations:endpoints", "#add-endpoint"),
    ("orgs:api-keys", "#create-key"),
    ("orgs:credentials", "#provider-openai"),
    ("orgs:members", "#invite"),
    ("orgs:audit-log", "/agents/new/"),
]


@pytest.mark.parametrize(("name", "target"), EMPTY_LISTS)
def test_every_empty_list_says_what_to_do_next(owner_a: Any, login: Any, name: str, target: str) -> None:
    response = login(owner_a).get(reverse(name))
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-empty" in html, f"{name} has no empty state"
    empty = html[html.index("data-empty"):]
    empty = empty[:empty.index("</div>")]
    assert f'class="button" href="{target}"' in empty
    if target.startswith("#"):
        assert f'id="{target[1:]}"' in html, f"{name}: the button points at {target}, which is not on the page"


def test_empty_states_offer_no_button_to_those_who_cannot_act(viewer_a: Any, login: Any) -> None:
    for name in ("agents:list", "knowledge:list", "calls:numbers"):
        html = login(viewer_a).get(reverse(name)).content.decode()
        empty = html[html.index("data-empty"):]
        assert 'class="button"' not in empty[:empty.index("</div>")], name


def test_filtered_calls_list_offers_to_clear_the_filters(owner_a: Any, login: Any) -> None:
    html = login(owner_a).get(reverse("calls:list"), {"status": "failed"}).content.decode()
    assert "No calls match these filters." in html and f'href="{reverse("calls:list")}">Clear filters' in html
    # The form submitted with every filter blank is no filter at all.
    html = login(owner_a).get(reverse("calls:list"), {"q": "", "status": "", "agent": ""}).content.decode()
    assert "No calls yet." in html and "these filters" not in html


def test_documents_empty_state_points_at_the_add_form(owner_a: Any, org_a: Any, login: Any) -> None:
    from knowledge.tests.factories import make_knowledge_base

    kb = make_knowledge_base(org_a)
    html = login(owner_a).get(reverse("knowledge:detail", args=[kb.public_id])).content.decode()
    assert 'href="#add-document">Add a document' in html and 'id="add-document"' in html


# --- error pages ---------------------------------------------------------------------------


def _boom(request: Any) -> Any:
    raise RuntimeError("kaboom in a view")


urlpatterns = [path("boom/", _boom)]


@pytest.fixture
def erroring_urls(settings: Any) -> None:
    """The project's URLs plus one view that raises."""
    import voiceplatform.urls

    urlpatterns[1:] = voiceplatform.urls.urlpatterns
    settings.ROOT_URLCONF = __name__


def test_unknown_page_is_the_products_404_with_debug_off(settings: Any, owner_a: Any, login: Any) -> None:
    settings.DEBUG = False
    for client in (Client(), login(owner_a)):
        response = client.get("/no/such/page/")
        assert response.status_code == 404
        html = response.content.decode()
        assert "Page not found" in html and "/static/favicon.svg" in html and "/static/css/app.css" in html
        assert "Django" not in html and "URLconf" not in html and "technical" not in html
    # Signed in, the page keeps the navigation, so the user is not stranded.
    assert 'class="sidebar"' in login(owner_a).get("/no/such/page/").content.decode()


def test_another_orgs_object_is_the_same_404(settings: Any, owner_a: Any, org_b: Any, login: Any) -> None:
    from calls.tests.factories import make_ready_agent

    settings.DEBUG = False
    other = make_ready_agent(org_b)
    response = login(owner_a).get(reverse("agents:edit", args=[other.public_id]))
    assert response.status_code == 404 and "Page not found" in response.content.decode()


def test_a_raised_exception_is_the_products_500(settings: Any, erroring_urls: None, owner_a: Any,
                                                 login: Any) -> None:
    settings.DEBUG = False
    client = login(owner_a)
    client.raise_request_exception = False
    response = client.get("/boom/")
    assert response.status_code == 500
    html = response.content.decode()
    assert "Something went wrong on our side" in html and "/static/favicon.svg" in html
    assert "kaboom" not in html and "Traceback" not in html and "RuntimeError" not in html


def test_the_favicon_is_served(client: Client) -> None:
    from django.contrib.staticfiles import finders

    found = finders.find("favicon.svg")
    assert found and open(found).read().startswith("<svg")
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"


# --- allauth pages in the product's layout -------------------------------------------------


def test_signed_out_account_pages_render_in_the_auth_card(client: Client, owner_a: Any) -> None:
    pages = [reverse("account_login"), reverse("account_signup"), reverse("account_reset_password"),
             reverse("account_reset_password_done"), reverse("account_email_verification_sent"),
             reverse("account_confirm_email", args=["not-a-real-key"]),
             reverse("account_reset_password_from_key", kwargs={"uidb36": "zz", "key": "bad-key"}),
             reverse("account_inactive")]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert 'class="auth-card"' in html, f"{url} is not in the product's layout"
        assert "/static/css/app.css" in html and "/static/favicon.svg" in html, url
        assert unlabelled_controls(html) == [], url


def test_mfa_sign_in_step_renders_in_the_auth_card(client: Client, owner_a: Any) -> None:
    from allauth.account.models import EmailAddress
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    EmailAddress.objects.create(user=owner_a, email=owner_a.email, verified=True, primary=True)
    TOTP.activate(owner_a, generate_totp_secret())
    response = client.post(reverse("account_login"), {"login": owner_a.email, "password": "pw-Secret-123"})
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    html = client.get(reverse("mfa_authenticate")).content.decode()
    assert 'class="auth-card"' in html and "/static/favicon.svg" in html
    assert unlabelled_controls(html) == []


def test_signed_in_account_pages_render_in_the_dashboard(owner_a: Any, login: Any) -> None:
    client = login(owner_a)
    for url in (reverse("account_email"), reverse("account_change_password"), reverse("mfa_index"),
                reverse("mfa_activate_totp"), reverse("account_reauthenticate"), reverse("account_logout")):
        response = client.get(url)
        assert response.status_code in (200, 302), url
        if response.status_code == 302:  # allauth asks to reauthenticate first: that page too
            response = client.get(response["Location"])
        html = response.content.decode()
        assert 'class="sidebar"' in html, url
        # account pages in a panel; the confirm-it's-you steps (reauthenticate, sign out) in the card
        assert 'class="panel account-panel"' in html or 'class="auth-card"' in html, url
        assert unlabelled_controls(html) == [], url


# --- every control labelled ---------------------------------------------------------------


class _Controls(HTMLParser):
    """Collects form controls and what labels them (label[for], a wrapping label, aria-*, title)."""

    SKIP_TYPES = {"hidden", "submit", "button", "reset", "image"}

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.label_for: set[str] = set()
        self.label_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "label":
            self.label_depth += 1
            if values.get("for"):
                self.label_for.add(values["for"])
        elif tag in ("input", "select", "textarea"):
            if tag == "input" and values.get("type", "text").lower() in self.SKIP_TYPES:
                return
            self.controls.append({**values, "_tag": tag, "_wrapped": "1" if self.label_depth else ""})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label" and self.label_depth:
            self.label_depth -= 1


def unlabelled_controls(html: str) -> list[str]:
    """Each input/select/textarea with no accessible name, described by tag, name and id."""
    parser = _Controls()
    parser.feed(html)
    missing = []
    for c in parser.controls:
        named = (c["_wrapped"] or c.get("aria-label", "").strip() or c.get("aria-labelledby")
                 or (c.get("id") and c["id"] in parser.label_for))
        if not named:
            missing.append(f"<{c['_tag']} name={c.get('name')!r} id={c.get('id')!r}>")
    return missing


def test_the_label_check_finds_an_unlabelled_control() -> None:
    assert unlabelled_controls('<label for="a">A</label><input id="a"><label>B <select></select></label>'
                               '<input type="hidden" name="h"><textarea aria-label="C"></textarea>') == []
    assert unlabelled_controls('<label for="x">X</label><input id="a" name="n">') == ["<input name='n' id='a'>"]


def test_every_dashboard_page_labels_its_controls_and_links_the_favicon(owner_a: Any, org_a: Any,
                                                                         login: Any) -> None:
    from voiceplatform.tests.site_pages import populate

    client = login(owner_a)
    problems = {}
    for url in populate(org_a):
        response = client.get(url)
        assert response.status_code == 200, f"{url} answered {response.status_code}"
        html = response.content.decode()
        assert '<link rel="icon" href="/static/favicon.svg"' in html, url
        assert 'class="menu-button"' in html and 'aria-expanded="false"' in html, url
        missing = unlabelled_controls(html)
        if missing:
            problems[url] = missing
    assert problems == {}
