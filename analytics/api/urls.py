from django.urls import path
from rest_framework.routers import SimpleRouter

from analytics.api import views

router = SimpleRouter(trailing_slash=True)
router.register("analytics/agents", views.AgentAnalyticsViewSet, basename="analytics-agent")
router.register("analytics/campaigns", views.CampaignAnalyticsViewSet, basename="analytics-campaign")

urlpatterns = [
    path("analytics/overview/", views.OverviewView.as_view(), name="analytics-overview"),
    *router.urls,
]
