from django.urls import path
from rest_framework.routers import SimpleRouter

from agents.api import experiments, views

router = SimpleRouter(trailing_slash=True)
router.register("agents", views.AgentViewSet, basename="agent")
router.register("agent-versions", views.AgentVersionViewSet, basename="agent-version")
router.register(r"agents/(?P<agent_public_id>[0-9a-f-]{36})/experiments", experiments.ExperimentViewSet,
                basename="agent-experiment")

urlpatterns = [
    path("agent-providers/", views.ProviderCatalogView.as_view(), name="agent-providers"),
    *router.urls,
]
