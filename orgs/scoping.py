"""The one tenant-scoping mechanism (DESIGN.md convention 2).

Querysets of org-owned models start from ``Model.objects.for_org(org)``. Views,
viewsets, admin classes and selectors never filter by org by hand: the bases in
``voiceplatform.api``, ``voiceplatform.views`` and ``voiceplatform.admin`` call
``for_org`` for them.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import models

if TYPE_CHECKING:
    from orgs.models import Organization


class OrgScopedQuerySet(models.QuerySet):
    def for_org(self, org: "Organization | None") -> "OrgScopedQuerySet":
        if org is None:
            return self.none()
        return self.filter(org=org)


class OrgScopedManager(models.Manager.from_queryset(OrgScopedQuerySet)):  # type: ignore[misc]
    pass
