from __future__ import annotations

from typing import Any

from orgs.models import Membership, role_at_least


def current_org(request: Any) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    membership = membership if membership else None
    role = membership.role if membership else None
    return {
        "current_org": membership.org if membership else None,
        "current_role": role,
        "can_edit": role_at_least(role, "editor"),
        "can_admin": role_at_least(role, "admin"),
        "is_owner": role_at_least(role, "owner"),
        "all_memberships": Membership.objects.select_related("org").filter(user=user).order_by("org__name"),
    }
