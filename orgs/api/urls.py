from django.urls import path
from rest_framework.routers import SimpleRouter

from orgs.api import views

router = SimpleRouter(trailing_slash=True)
router.register("members", views.MemberViewSet, basename="member")
router.register("invitations", views.InvitationViewSet, basename="invitation")
router.register("api-keys", views.ApiKeyViewSet, basename="api-key")
router.register("credentials", views.ProviderCredentialViewSet, basename="credential")
router.register("audit-log", views.AuditLogViewSet, basename="audit-log")

urlpatterns = [
    path("organization/", views.CurrentOrganizationView.as_view(), name="organization"),
    *router.urls,
]
