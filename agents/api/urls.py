from django.urls import path
from rest_framework.routers import SimpleRouter

from agents.api import views

router = SimpleRouter(trailing_slash=True)
router.register("agents", views.AgentViewSet, basename="agent")
router.register("agent-versions", views.AgentVersionViewSet, basename="agent-version")

urlpatterns = [
    path("agent-providers/", views.ProviderCatalogView.as_view(), name="agent-providers"),
    *router.urls,
]
