from typing import Any

from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organisations"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save, pre_delete

        from orgs import schema  # noqa: F401 - registers the OpenAPI auth extension

        user_model = get_user_model()
        post_save.connect(_revoke_keys_if_deactivated, sender=user_model, dispatch_uid="orgs.keys_of_inactive_user")
        # First, so a refused delete revokes nothing.
        pre_delete.connect(_refuse_deleting_last_owner, sender=user_model, dispatch_uid="orgs.last_owner_on_delete")
        pre_delete.connect(_refuse_deleting_last_owner_membership, sender="orgs.Membership",
                           dispatch_uid="orgs.last_owner_membership_on_delete")
        pre_delete.connect(_revoke_keys_of_deleted_user, sender=user_model, dispatch_uid="orgs.keys_of_deleted_user")


def _revoke_keys_if_deactivated(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    # However an account is switched off (admin, shell, allauth), its keys stop with it.
    if not created and not instance.is_active:
        from orgs.services import revoke_keys_of_deactivated_user

        revoke_keys_of_deactivated_user(instance)


def _refuse_deleting_last_owner(sender: Any, instance: Any, origin: Any = None, **kwargs: Any) -> None:
    # A shell's or a command's user.delete() skips orgs.services.delete_user: the rule holds anyway.
    from orgs.services import refuse_deleting_last_owner

    refuse_deleting_last_owner(instance, origin)


def _refuse_deleting_last_owner_membership(sender: Any, instance: Any, origin: Any = None, **kwargs: Any) -> None:
    # Likewise Membership.objects.filter(...).delete(); an org's or a user's own delete is let through.
    from orgs.services import refuse_deleting_last_owner_membership

    refuse_deleting_last_owner_membership(instance, origin)


def _revoke_keys_of_deleted_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    # ApiKey.created_by is SET_NULL: revoke before the link to the creator is lost.
    from orgs.services import revoke_keys_of_deactivated_user

    revoke_keys_of_deactivated_user(instance, reason="creator_deleted")
