from django.urls import path

from analytics.api import views

urlpatterns = [
    path("analytics/overview/", views.OverviewView.as_view(), name="analytics-overview"),
    path("analytics/agents/<str:public_id>/", views.AgentVersionsView.as_view(), name="analytics-agent"),
    path("analytics/campaigns/<str:public_id>/", views.CampaignView.as_view(), name="analytics-campaign"),
]
