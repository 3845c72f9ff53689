from rest_framework.routers import SimpleRouter

from batches.api import views

router = SimpleRouter(trailing_slash=True)
router.register("batches", views.BatchViewSet, basename="batch")
router.register("batch-entries", views.BatchEntryViewSet, basename="batch-entry")
router.register("do-not-call", views.DoNotCallViewSet, basename="do-not-call")
router.register("scheduled-calls", views.ScheduledCallViewSet, basename="scheduled-call")

urlpatterns = router.urls
