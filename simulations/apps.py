from __future__ import annotations

from django.apps import AppConfig


class SimulationsConfig(AppConfig):
    name = "simulations"
    verbose_name = "Agent tests"

    def ready(self) -> None:
        # agents is a lower layer: its publish step asks the registered checks, so
        # agents imports nothing of simulations.
        from agents.services import register_publish_check
        from simulations.gate import check_publish

        register_publish_check(check_publish)
