from django.urls import path

from orgs import views

app_name = "orgs"

urlpatterns = [
    path("orgs/new/", views.create_organization, name="create"),
    path("orgs/switch/<uuid:public_id>/", views.switch_organization, name="switch"),
    path("settings/organization/", views.OrganizationSettingsView.as_view(), name="settings"),
    path("settings/members/", views.MembersView.as_view(), name="members"),
    path("settings/members/<uuid:public_id>/", views.MemberActionView.as_view(), name="member-action"),
    path("settings/invitations/<uuid:public_id>/revoke/", views.InvitationRevokeView.as_view(),
         name="invitation-revoke"),
    path("invitations/<str:token>/", views.accept_invitation, name="invitation-accept"),
    path("settings/api-keys/", views.ApiKeysView.as_view(), name="api-keys"),
    path("settings/credentials/", views.CredentialsView.as_view(), name="credentials"),
    path("settings/audit-log/", views.AuditLogView.as_view(), name="audit-log"),
]
