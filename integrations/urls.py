from django.urls import path

from integrations import views

app_name = "integrations"

urlpatterns = [
    path("integrations/", views.ServerListView.as_view(), name="servers"),
    path("integrations/servers/<uuid:public_id>/", views.ServerDetailView.as_view(), name="server"),
    path("integrations/http-tools/", views.HttpToolListView.as_view(), name="http_tools"),
    path("integrations/http-tools/<uuid:public_id>/", views.HttpToolDetailView.as_view(), name="http_tool"),
    path("webhooks/endpoints/", views.EndpointListView.as_view(), name="endpoints"),
    path("webhooks/endpoints/<uuid:public_id>/", views.EndpointDetailView.as_view(), name="endpoint"),
]
