from django.urls import path

from knowledge import views

app_name = "knowledge"

urlpatterns = [
    path("knowledge/", views.BaseListView.as_view(), name="list"),
    path("knowledge/<uuid:public_id>/", views.BaseDetailView.as_view(), name="detail"),
    path("knowledge/<uuid:public_id>/documents/", views.DocumentRowsView.as_view(), name="document-rows"),
    path("knowledge/<uuid:public_id>/add/", views.AddDocumentView.as_view(), name="add-document"),
    path("knowledge/<uuid:public_id>/settings/", views.BaseSettingsView.as_view(), name="settings"),
    path("knowledge/<uuid:public_id>/delete/", views.BaseDeleteView.as_view(), name="delete"),
    path("knowledge/<uuid:public_id>/search/", views.SearchPlaygroundView.as_view(), name="search"),
    path("knowledge/<uuid:public_id>/documents/<uuid:document_id>/", views.DocumentDetailView.as_view(),
         name="document"),
    path("knowledge/<uuid:public_id>/documents/<uuid:document_id>/delete/", views.DocumentDeleteView.as_view(),
         name="document-delete"),
]
