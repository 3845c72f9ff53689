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
        pre_delete.connect(_revoke_keys_of_deleted_user, sender=user_model, dispatch_uid="orgs.keys_of_deleted_user")


def _revoke_keys_if_deactivated(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    # However an account is switched off (admin, shell, allauth), its keys stop with it.
    if not created and not instance.is_active:
        from orgs.services import revoke_keys_of_deactivated_user

        revoke_keys_of_deactivated_user(instance)


def _revoke_keys_of_deleted_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    # ApiKey.created_by is SET_NULL: revoke before the link to the creator is lost.
    from orgs.services import revoke_keys_of_deactivated_user

    revoke_keys_of_deactivated_user(instance, reason="creator_deleted")
