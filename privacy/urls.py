from django.urls import path

from privacy import views

app_name = "privacy"

urlpatterns = [
    path("settings/privacy/", views.PrivacySettingsView.as_view(), name="settings"),
]
