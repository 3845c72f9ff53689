"""Shared model bases. The tenant-scoping mechanism itself is ``orgs.scoping``."""
from __future__ import annotations

import uuid

from django.db import models

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
