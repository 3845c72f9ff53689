from django.urls import path
from rest_framework.routers import SimpleRouter

from privacy.api import views

router = SimpleRouter(trailing_slash=True)
router.register("privacy/retention-policies", views.RetentionPolicyViewSet, basename="retention-policy")

urlpatterns = [
    path("privacy/subject-exports/", views.SubjectExportView.as_view(), name="privacy-subject-export"),
    path("privacy/subject-erasures/", views.SubjectErasureView.as_view(), name="privacy-subject-erasure"),
    path("privacy/legal-holds/", views.LegalHoldView.as_view(), name="privacy-legal-hold"),
    path("privacy/storage/", views.StorageView.as_view(), name="privacy-storage"),
    *router.urls,
]
