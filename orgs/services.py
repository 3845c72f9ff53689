"""State changes for organisations, members, keys and credentials.

Every function here is the one way its change happens: dashboard views, API
viewsets and admin actions all call these, and each records an audit entry.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Exists, Model, OuterRef, ProtectedError, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from orgs.models import (
    PROVIDER_FIELDS,
    ApiKey,
    AuditLog,
    Invitation,
    Membership,
    Organization,
    ProviderCredential,
    Role,
    hash_token,
    new_token,
    role_at_least,
)
from voiceplatform import outbound
from voiceplatform.errors import ServiceError
from voiceplatform.proxies import client_address

log = logging.getLogger(__name__)
User = get_user_model()


@dataclass(frozen=True)
class Actor:
    """Who is making a change: a dashboard user, an API key, or the system."""

    user: Any = None
    api_key: ApiKey | None = None
    ip: str | None = None

    @property
    def label(self) -> str:
        """How the actor appears in audit logs: the API key's prefix, the user's email, or "system"."""
        if self.api_key is not None:
            return f"API key {self.api_key.prefix}"
        if self.user is not None and getattr(self.user, "is_authenticated", False):
            return self.user.email or self.user.get_username()
        return "system"

    @classmethod
    def from_request(cls, request: Any) -> "Actor":
        """The actor behind a request: its API key if it authenticated with one, else its signed-in user,
        with its IP."""
        auth = getattr(request, "auth", None)
        api_key = auth if isinstance(auth, ApiKey) else None
        user = None if api_key else getattr(request, "user", None)
        if user is not None and not getattr(user, "is_authenticated", False):
            user = None
        return cls(user=user, api_key=api_key, ip=client_ip(request))


SYSTEM = Actor()


def client_ip(request: Any) -> str | None:
    """The address recorded for a request: the TCP peer, or what a trusted proxy
    (``FORWARDED_ALLOW_IPS``) says in ``X-Forwarded-For``; never a client's own claim."""
    meta = getattr(request, "META", {})
    return client_address(meta.get("REMOTE_ADDR"), meta.get("HTTP_X_FORWARDED_FOR"),
                          getattr(settings, "TRUSTED_PROXIES", ()))


def record_audit(
    org: Organization,
    actor: Actor,
    action: str,
    target: Model | None = None,
    changes: dict[str, Any] | None = None,
    target_label: str | None = None,
) -> AuditLog:
    """Store one audit entry. ``action`` is ``<noun>.<verb>``, e.g. ``agent.published``.

    ``changes`` maps field → [old, new] (or any JSON detail); secrets never go in it.
    Outgoing webhooks are produced from these entries (integrations app).
    """
    entry = AuditLog.objects.create(
        org=org,
        actor_user=actor.user if actor.user is not None and actor.user.pk else None,
        actor_api_key=actor.api_key,
        actor_label=actor.label[:200],
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(getattr(target, "public_id", "") or getattr(target, "pk", "") or "") if target is not None else "",
        target_label=(target_label if target_label is not None else str(target) if target is not None else "")[:200],
        changes=changes or {},
        ip_address=actor.ip,
    )
    from orgs.signals import audit_recorded

    if org.pk not in _orgs_being_deleted.get():  # an entry of an org being deleted goes with it, unannounced
        transaction.on_commit(lambda: audit_recorded.send(sender=AuditLog, entry=entry))
    return entry


def diff_fields(instance: Model, new_values: dict[str, Any]) -> dict[str, list[Any]]:
    """Apply ``new_values`` to ``instance`` and return {field: [old, new]} for real changes."""
    changes: dict[str, list[Any]] = {}
    for field, new in new_values.items():
        old = getattr(instance, field)
        if old != new:
            changes[field] = [_jsonable(old), _jsonable(new)]
            setattr(instance, field, new)
    return changes


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None), list, dict)):
        return value
    if isinstance(value, Model):
        return str(getattr(value, "public_id", value.pk))
    return str(value)


# --- organisations ---------------------------------------------------------------

def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def create_organization(name: str, owner: Any, *, timezone_name: str = "UTC", default_country: str = "US",
                        ip: str | None = None) -> Organization:
    """Create an organisation with ``owner`` as its first owner; raises ValidationError for a blank name or bad
    settings."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "An organisation needs a name."})
    org = Organization(name=name, slug=_unique_slug(name), timezone=timezone_name, default_country=default_country)
    org.full_clean()
    org.save()
    Membership.objects.create(org=org, user=owner, role=Role.OWNER)
    record_audit(org, Actor(user=owner, ip=ip), "org.created", org)
    return org


@transaction.atomic
def update_organization(org: Organization, actor: Actor, **values: Any) -> Organization:
    """Change the organisation's name, timezone, default country or call limit; any other field is a ValidationError."""
    allowed = {"name", "timezone", "default_country", "max_concurrent_calls"}
    unknown = set(values) - allowed
    if unknown:
        raise ValidationError(f"These organisation fields cannot be changed here: {', '.join(sorted(unknown))}")
    changes = diff_fields(org, values)
    if changes:
        org.full_clean()
        org.save()
        record_audit(org, actor, "org.updated", org, changes)
    return org


class OrganizationError(ServiceError):
    """The organisation service refused (a legal hold keeps its data)."""


#: The code of the refusal an org under legal hold gets (the API answers 409 with it).
LEGAL_HOLD = "legal_hold"
_delete_guards: list[Callable[[Organization], str | None]] = []
#: What each upper app removes through its own services before the cascade: ``step(org, actor)``
#: returns {model label: rows removed} for the log line. See ``register_org_teardown``.
_teardowns: list[Callable[[Organization, Actor], dict[str, int]]] = []
#: The orgs whose delete is running in this context: their audit entries go with the cascade, so
#: ``record_audit`` announces none of them (see ``delete_organization``).
_orgs_being_deleted: ContextVar[frozenset[int]] = ContextVar("orgs_being_deleted", default=frozenset())


def register_delete_guard(guard: Callable[[Organization], str | None]) -> None:
    """Make ``guard(org)`` the one that says why the organisation may not be deleted (None: it may).

    Orgs is the lowest layer: an upper app (privacy, whose legal holds would otherwise go with
    the cascade) registers here from its ``AppConfig.ready``; a later registration replaces it."""
    _delete_guards[:] = [guard]


def register_org_teardown(step: Callable[[Organization, Actor], dict[str, int]]) -> None:
    """Run ``step(org, actor)`` inside every organisation delete, after the guard and before the cascade.

    An app whose rows have side effects a cascade would skip (a campaign's scheduled beat task, a
    row that ``PROTECT``s an agent or a number) registers here from its ``AppConfig.ready`` and
    deletes them through its own delete services; orgs imports none of its code."""
    if step not in _teardowns:
        _teardowns.append(step)


@transaction.atomic
def delete_organization(org: Organization, actor: Actor) -> None:
    """Delete the organisation and everything scoped to it; logged with the actor, not audited (the log goes
    too). Refused (409, ``legal_hold``) while the registered guard says a hold covers any of its data: the
    cascade would take held calls and campaigns with it, whichever path (API, dashboard, admin) asked.

    First each registered teardown (``register_org_teardown``) deletes its app's rows through that app's
    services, so their side effects happen (a schedule's beat task goes, a running campaign is
    canceled under its lock), then the cascade takes the rest. The audit entries those services
    record go with the org's audit log, and none is announced (no outgoing webhook: the org's
    endpoints go too)."""
    # The org row is the lock a hold's placement takes too (privacy.services.set_legal_hold):
    # a hold placed while this runs is either seen below or waits and finds nothing to hold.
    Organization.objects.select_for_update().filter(pk=org.pk).first()
    reason = _delete_guards[0](org) if _delete_guards else None
    if reason:
        log.info("organisation delete refused", extra={"org": str(org.public_id), "code": LEGAL_HOLD})
        raise OrganizationError(reason, code=LEGAL_HOLD, status=409)
    token = _orgs_being_deleted.set(_orgs_being_deleted.get() | {org.pk})
    try:
        removed: dict[str, int] = {}
        for step in _teardowns:
            removed.update(step(org, actor))
        _delete_cascade(org)
    finally:
        _orgs_being_deleted.reset(token)
    log.info("organisation deleted", extra={"org": str(org.public_id), "actor": actor.label, "removed": removed})


def _delete_cascade(org: Organization) -> None:
    """``org.delete()``. A row that still ``PROTECT``s one of its rows refuses it: another org's
    row is not this delete's to remove; an own row means an app deletes it with no teardown
    registered, and deleting it here would skip that app's service (a refusal names the model)."""
    try:
        with transaction.atomic():
            org.delete()
    except ProtectedError as exc:
        if any(getattr(o, "org_id", None) != org.pk for o in exc.protected_objects):
            raise OrganizationError(f"the organisation “{org.name}” is referred to by another organisation's "
                                    "data", code="in_use", status=409) from None
        models = ", ".join(sorted({str(o._meta.verbose_name_plural) for o in exc.protected_objects}))
        raise OrganizationError(f"the organisation “{org.name}” still has {models} that no app deletes before "
                                "the organisation (register_org_teardown)", code="in_use", status=409) from None


# --- members and invitations -------------------------------------------------------

def invite_member(org: Organization, actor: Actor, email: str, role: str) -> tuple[Invitation, str]:
    """Create an invitation and e-mail its link. Returns the invitation and the raw token."""
    email = User.objects.normalize_email(email.strip()).lower()
    if Role(role) == Role.OWNER and not _is_owner(org, actor):
        raise PermissionDenied("Only an owner can invite another owner.")
    if Membership.objects.filter(org=org, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {org.name}."})
    token = new_token()
    with transaction.atomic():
        Invitation.objects.for_org(org).filter(email__iexact=email, accepted_at__isnull=True,
                                              revoked_at__isnull=True).update(revoked_at=timezone.now())
        invitation = Invitation.objects.create(org=org, email=email, role=role, token_hash=hash_token(token),
                                               invited_by=actor.user)
        record_audit(org, actor, "invitation.created", invitation, {"email": email, "role": role},
                     target_label=email)
    link = settings.PUBLIC_BASE_URL + reverse("orgs:invitation-accept", args=[token])
    send_mail(
        subject=f"You are invited to {org.name}",
        message=f"{actor.label} invited you to join {org.name} as {role}.\n\nAccept: {link}\n\n"
                f"The link works once and expires on {invitation.expires_at:%Y-%m-%d}.",
        from_email=None,
        recipient_list=[email],
    )
    return invitation, token


def find_invitation(token: str) -> Invitation | None:
    """The invitation for a plaintext token, open or not, or None when no invitation has that token."""
    return Invitation.objects.select_related("org").filter(token_hash=hash_token(token)).first()


@transaction.atomic
def accept_invitation(token: str, user: Any, ip: str | None = None) -> Membership:
    """Join the invitation's org as ``user`` (whose email must match); raises ValidationError when it is no
    longer open."""
    invitation = Invitation.objects.select_for_update().filter(token_hash=hash_token(token)).first()
    if invitation is None or not invitation.is_open:
        raise ValidationError("This invitation link is invalid, used, revoked or expired.")
    if (user.email or "").lower() != invitation.email.lower():
        raise PermissionDenied(f"This invitation was sent to {invitation.email}; sign in with that address.")
    membership, created = Membership.objects.get_or_create(
        org=invitation.org, user=user, defaults={"role": invitation.role})
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    record_audit(invitation.org, Actor(user=user, ip=ip), "member.joined", membership,
                 {"role": membership.role}, target_label=user.email)
    return membership


def revoke_invitation(invitation: Invitation, actor: Actor) -> None:
    """Revoke an invitation so its link stops working; audited."""
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    record_audit(invitation.org, actor, "invitation.revoked", invitation, target_label=invitation.email)


def _is_owner(org: Organization, actor: Actor) -> bool:
    return actor.user is not None and Membership.objects.filter(org=org, user=actor.user, role=Role.OWNER).exists()


def _lock_memberships(membership: Membership) -> Membership:
    """Serialise membership changes of one org, and return ``membership`` as stored now.

    Without the lock, two owners demoting (or removing) each other at the same time
    each see the other still owner, and both commit: no owner left. The org row is
    the lock: the second change waits for the first to commit, then re-reads the
    owners (and whether its actor is still one) before deciding. Call inside a
    transaction.
    """
    Organization.objects.select_for_update().filter(pk=membership.org_id).first()
    try:
        current = Membership.objects.select_related("org", "user").get(pk=membership.pk)
    except Membership.DoesNotExist:
        raise ValidationError("This membership no longer exists.") from None
    membership.role = current.role
    return membership


def _ensure_another_owner(membership: Membership) -> None:
    if membership.role == Role.OWNER and not Membership.objects.filter(
            org=membership.org, role=Role.OWNER).exclude(pk=membership.pk).exists():
        raise ValidationError("An organisation must keep at least one owner; make someone else owner first.")


@transaction.atomic
def change_member_role(membership: Membership, actor: Actor, role: str) -> Membership:
    """Give a member another role. Owners alone grant or take away ownership; the
    last owner stays; keys the member made with more than the new role are revoked."""
    role = Role(role)
    _lock_memberships(membership)
    if (role == Role.OWNER or membership.role == Role.OWNER) and not _is_owner(membership.org, actor):
        raise PermissionDenied("Only an owner can grant or take away the owner role.")
    if role != Role.OWNER:
        _ensure_another_owner(membership)
    old = membership.role
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    record_audit(membership.org, actor, "member.role_changed", membership, {"role": [old, role]},
                 target_label=membership.user.email)
    _revoke_member_keys(membership.org, membership.user, actor, reason="creator_role_lowered",
                        above_role=role)
    return membership


@transaction.atomic
def remove_member(membership: Membership, actor: Actor) -> None:
    """Remove a member (never the last owner); the API keys they created in the org are revoked."""
    _lock_memberships(membership)
    if membership.role == Role.OWNER and not _is_owner(membership.org, actor):
        raise PermissionDenied("Only an owner can remove an owner.")
    _ensure_another_owner(membership)
    record_audit(membership.org, actor, "member.removed", membership, target_label=membership.user.email)
    _revoke_member_keys(membership.org, membership.user, actor, reason="creator_removed")
    membership.delete()


@transaction.atomic
def leave_organization(membership: Membership, ip: str | None = None) -> None:
    """Leave an org (never as its last owner); the API keys made there are revoked."""
    _lock_memberships(membership)
    _ensure_another_owner(membership)
    actor = Actor(user=membership.user, ip=ip)
    record_audit(membership.org, actor, "member.left", membership, target_label=membership.user.email)
    _revoke_member_keys(membership.org, membership.user, actor, reason="creator_left")
    membership.delete()


@transaction.atomic
def delete_user(user: Any, actor: Actor) -> None:
    """Delete an account (a superuser in the admin), never the last owner of an organisation.

    Its memberships go with it (cascade), so the last-owner rule is checked here, under the
    lock every membership change takes (``refuse_last_owner_leaving``); ``user.delete()`` checks
    it again (the pre_delete receiver, for a shell or code that deletes a user directly). Each
    org it leaves records ``member.removed``; its keys are revoked by the pre_delete signal."""
    refuse_last_owner_leaving(user, {user.pk})
    memberships = list(Membership.objects.select_related("org").filter(user=user).order_by("org_id"))
    for membership in memberships:
        record_audit(membership.org, actor, "member.removed", membership, {"reason": "account_deleted"},
                     target_label=user.email)
    user.delete()


def refuse_last_owner_leaving(user: Any, leaving: Collection[Any]) -> None:
    """Raise ``OrganizationError`` (409, ``last_owner``, naming the orgs) when ``user`` is the last
    owner of any organisation, counting the users whose ids are in ``leaving`` (deleted with it) as
    gone. Call inside a transaction.

    It first locks the row of every org ``user`` belongs to (the lock every membership change
    takes, ``_lock_memberships``), in id order so two such deletes cannot deadlock, then re-reads
    the owners: two owners of one org deleted at once cannot both pass, and neither can a delete
    racing a demotion. The lock is held until the caller's transaction ends."""
    org_ids = sorted(set(Membership.objects.filter(user=user).values_list("org_id", flat=True)))
    list(Organization.objects.select_for_update().filter(pk__in=org_ids).order_by("pk"))
    others = Membership.objects.filter(org=OuterRef("org"), role=Role.OWNER).exclude(user_id__in=list(leaving))
    orphaned = [m.org.name for m in Membership.objects.select_related("org").filter(user=user, role=Role.OWNER)
                .exclude(Exists(others)).order_by("org_id")]
    if orphaned:
        raise _last_owner(user, orphaned)


def _last_owner(user: Any, org_names: list[str]) -> OrganizationError:
    names = ", ".join(f"“{name}”" for name in org_names)
    return OrganizationError(f"{user.email or user.get_username()} is the last owner of {names}; make someone "
                             "else owner first, or delete the organisation", code="last_owner", status=409)


def _deleted_with(instance: Model, origin: Any) -> set[Any]:
    """The ids of ``instance``'s model that the delete started by ``origin`` takes: all of an origin
    queryset of that model (read once per delete, not once per row), else ``instance`` alone.

    Django sends pre_delete for every collected row before it deletes any, inside the delete's
    transaction, so in a queryset delete each row still sees the others: a check has to count them
    as gone."""
    if isinstance(origin, QuerySet) and issubclass(origin.model, type(instance)):
        cached = getattr(origin, "_orgs_deleted_pks", None)
        if cached is None:
            cached = set(origin.values_list("pk", flat=True))
            origin._orgs_deleted_pks = cached  # type: ignore[attr-defined]
        return cached | {instance.pk}
    return {instance.pk}


def refuse_deleting_last_owner(user: Any, origin: Any = None) -> None:
    """The pre_delete check of a User, however its delete was asked (``user.delete()``, a queryset's
    ``delete()``, the admin): ``refuse_last_owner_leaving``, counting every user the same delete takes,
    so ``User.objects.filter(...).delete()`` of every owner is refused whole (one transaction). An
    org's own delete never gets here: it cascades to memberships, not users.

    A queryset delete locks each user's orgs in turn (in id order per user, not across users): two
    concurrent bulk deletes over the same orgs may deadlock, which Postgres breaks by aborting one;
    no owner is lost either way."""
    refuse_last_owner_leaving(user, _deleted_with(user, origin))


def refuse_deleting_last_owner_membership(membership: Membership, origin: Any = None) -> None:
    """The pre_delete check of a Membership deleted on its own (``membership.delete()``, a queryset's
    ``delete()``): refused (409 ``last_owner``) when it would leave its org without an owner, counting
    every membership the same delete takes, under the org row lock (``_lock_memberships``).

    Not checked: an organisation's delete (its memberships go with it) and a user's delete (the
    User check above counted them)."""
    if isinstance(origin, (Organization, User)) or (
            isinstance(origin, QuerySet) and issubclass(origin.model, (Organization, User))):
        return
    Organization.objects.select_for_update().filter(pk=membership.org_id).first()
    leaving = _deleted_with(membership, origin)
    if not Membership.objects.filter(pk=membership.pk, role=Role.OWNER).exists():
        return
    if not Membership.objects.filter(org_id=membership.org_id, role=Role.OWNER).exclude(pk__in=leaving).exists():
        raise _last_owner(membership.user, [membership.org.name])


# --- API keys ------------------------------------------------------------------------

def create_api_key(org: Organization, actor: Actor, name: str, role: str = Role.EDITOR) -> tuple[ApiKey, str]:
    """Returns the key and its plaintext, which is never stored and never shown again."""
    if Role(role) == Role.OWNER:
        raise ValidationError({"role": "API keys can be viewer, editor or admin."})
    if not name.strip():
        raise ValidationError({"name": "Give the key a name so you can recognise it later."})
    for _ in range(5):
        secret = new_token(32)
        plaintext = f"{ApiKey.PREFIX}{secret}"
        try:
            with transaction.atomic():
                key = ApiKey.objects.create(org=org, name=name.strip(), role=role, prefix=plaintext[:12],
                                            key_hash=hash_token(plaintext), created_by=actor.user)
                record_audit(org, actor, "api_key.created", key, {"role": role})
            return key, plaintext
        except IntegrityError:  # prefix collision: 1 in 2^54, try again
            continue
    raise RuntimeError("could not generate a unique API key prefix")


def revoke_api_key(key: ApiKey, actor: Actor, *, reason: str | None = None) -> ApiKey:
    """Revoke a key for good (it answers 401 from now on). ``reason`` goes in the audit entry."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at", "updated_at"])
        record_audit(key.org, actor, "api_key.revoked", key, {"reason": reason} if reason else None)
    return key


def _revoke_member_keys(org: Organization | None, user: Any, actor: Actor, *, reason: str,
                        above_role: str | None = None) -> int:
    """Revoke the live keys ``user`` created (in ``org``, or everywhere when ``org`` is None).

    A key acts with its own role, not its creator's, so it would outlive the
    creator's access: when a member is removed, leaves or is deactivated their keys
    go with them; when their role is lowered, the keys above the new role go.
    Returns how many were revoked.
    """
    keys = ApiKey.objects.select_for_update().select_related("org").filter(created_by=user, revoked_at__isnull=True)
    if org is not None:
        keys = keys.filter(org=org)
    revoked = 0
    for key in keys:
        if above_role is not None and role_at_least(above_role, key.role):
            continue
        revoke_api_key(key, actor, reason=reason)
        revoked += 1
    return revoked


@transaction.atomic
def revoke_keys_of_deactivated_user(user: Any, actor: Actor = SYSTEM, *, reason: str = "creator_deactivated") -> int:
    """Revoke every live key ``user`` created, in every org (deactivated or deleted accounts)."""
    return _revoke_member_keys(None, user, actor, reason=reason)


# --- provider credentials -----------------------------------------------------------

def _hint(value: str) -> str:
    return f"…{value[-4:]}" if len(value) > 8 else "set"


# Credential settings that are addresses the platform connects to (vendor SDKs, carrier REST).
URL_CONFIG_FIELDS: dict[str, tuple[str, ...]] = {"base_url": ("https", "http", "wss", "ws"),
                                                 "websocket_base_url": ("wss", "ws", "https", "http")}
#: The same for secret fields that are addresses (LiveKit's server URL, stored encrypted).
URL_SECRET_FIELDS: dict[str, tuple[str, ...]] = {"url": ("wss", "https", "ws", "http")}


def validate_credential_config(provider: str, config: dict[str, str]) -> None:
    """A ``base_url``/``websocket_base_url`` override must be a public address (see
    :mod:`voiceplatform.outbound`): ``ValidationError({"base_url": "The openai base_url is not
    allowed: the host 'localhost' resolves to 127.0.0.1, a loopback address; …"})``. The
    bridges and carriers check it again, pinned, when they connect."""
    for name, value in config.items():
        if name in URL_CONFIG_FIELDS and value:
            outbound.validate_url(str(value), field=name, what=f"The {provider} {name}",
                                  schemes=URL_CONFIG_FIELDS[name])
    for check in _CONFIG_CHECKS:
        check(provider, config)


#: Checks of a provider credential's settings beyond addresses, each raising ``ValidationError``
#: keyed by field (e.g. Azure OpenAI's API version and deployment). The apps that know the
#: vendor register them (``agents.credential_checks``, from ``AgentsConfig.ready``): orgs sits
#: below them and imports none of their code.
_CONFIG_CHECKS: list[Callable[[str, dict[str, str]], None]] = []


def register_credential_config_check(check: Callable[[str, dict[str, str]], None]) -> None:
    """Run ``check(provider, config)`` on every credential's settings before they are saved."""
    if check not in _CONFIG_CHECKS:
        _CONFIG_CHECKS.append(check)


@transaction.atomic
def set_provider_credential(org: Organization, actor: Actor, provider: str, secrets: dict[str, str],
                            config: dict[str, str] | None = None) -> ProviderCredential:
    """Create or update a provider credential. Blank secret fields keep their stored value."""
    if provider not in PROVIDER_FIELDS:
        raise ValidationError({"provider": f"Unknown provider {provider!r}."})
    spec = PROVIDER_FIELDS[provider]
    unknown = (set(secrets) - set(spec["secret"])) | (set(config or {}) - set(spec["config"]))
    if unknown:
        raise ValidationError({"secrets": f"{provider} does not take: {', '.join(sorted(unknown))}"})
    validate_credential_config(provider, config or {})
    credential = ProviderCredential.objects.for_org(org).select_for_update().filter(provider=provider).first()
    merged = dict(credential.secrets) if credential else {}
    merged.update({k: v.strip() for k, v in secrets.items() if v and v.strip()})
    missing = [f for f in spec["secret"] if not merged.get(f)]
    if missing:
        raise ValidationError({f: "This field is required." for f in missing})
    for name, value in secrets.items():
        if name in URL_SECRET_FIELDS and value and value.strip():
            outbound.validate_url(value.strip(), field=name, what=f"The {provider} {name}",
                                  schemes=URL_SECRET_FIELDS[name])
    changed_fields = sorted(k for k, v in secrets.items() if v and v.strip())
    if credential is None:
        credential = ProviderCredential(org=org, provider=provider)
    credential.secrets = merged
    credential.config = {k: v for k, v in (config or credential.config or {}).items() if v}
    credential.hints = {k: _hint(v) for k, v in merged.items()}
    credential.updated_by = actor.user
    credential.save()
    # Which fields changed, never their values.
    record_audit(org, actor, "credential.set", credential, {"provider": provider, "fields": changed_fields})
    return credential


def delete_provider_credential(credential: ProviderCredential, actor: Actor) -> None:
    """Delete a provider credential; audited with its provider (never its secret)."""
    record_audit(credential.org, actor, "credential.deleted", credential, {"provider": credential.provider})
    credential.delete()
