"""Dashboard pages of analytics (the JSON API is in ``analytics.api.urls``)."""

from django.urls import path

from analytics import views

app_name = "analytics"

urlpatterns = [
    path("analytics/", views.OverviewPage.as_view(), name="overview"),
    path("analytics/agents/<uuid:public_id>/", views.AgentAnalyticsPage.as_view(), name="agent"),
    path("analytics/campaigns/<uuid:public_id>/", views.CampaignAnalyticsPage.as_view(), name="campaign"),
]
