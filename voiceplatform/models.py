"""Shared model bases. The tenant-scoping mechanism itself is ``orgs.scoping``."""
from __future__ import annotations

import uuid

from django.core.exceptions import ValidationError
from django.db import models, transaction

from orgs.scoping import OrgScopedManager


class TimestampedModel(models.Model):
    """Abstract base: ``created_at`` (indexed) and ``updated_at`` maintained by Django."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OrgScopedModel(TimestampedModel):
    """Everything that belongs to an organisation inherits this.

    - ``org``: the tenant. Every read goes through ``Model.objects.for_org(org)``.
    - ``public_id``: the only identifier that leaves the database (URLs, API, admin
      links shown to users); integer keys stay internal.

    Subclasses get scoping in the API (``voiceplatform.api.OrgScopedViewSet``), the
    dashboard (``voiceplatform.views.OrgViewMixin``) and the admin
    (``voiceplatform.admin.OrgScopedAdmin``) by inheriting those bases.
    """

    org = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)

    objects = OrgScopedManager()

    class Meta:
        abstract = True


def delete_unless_in_use(obj: models.Model) -> None:
    """Delete ``obj``, or refuse with a ``ValidationError`` naming what still uses it.

    Some references are ``PROTECT`` foreign keys (a batch campaign or a schedule on an
    agent or a number): deleting the target would break them, so the caller is told
    which objects to change first instead of getting a server error.
    """
    try:
        with transaction.atomic():
            obj.delete()
    except models.ProtectedError as exc:
        users = sorted({f"{o._meta.verbose_name} \u201c{o}\u201d" for o in exc.protected_objects})
        more = f" and {len(users) - 5} more" if len(users) > 5 else ""
        raise ValidationError(f"This {obj._meta.verbose_name} is still used by {', '.join(users[:5])}{more}; "
                              "delete those or point them elsewhere first.") from None
