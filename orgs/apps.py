from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "orgs"
    verbose_name = "Organisations"

    def ready(self) -> None:
        from orgs import schema  # noqa: F401 - registers the OpenAPI auth extension
