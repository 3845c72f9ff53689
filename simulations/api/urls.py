from rest_framework.routers import SimpleRouter

from simulations.api import views

router = SimpleRouter(trailing_slash=True)
router.register("test-suites", views.SuiteViewSet, basename="test-suite")
router.register("test-scenarios", views.ScenarioViewSet, basename="test-scenario")
router.register("test-runs", views.SuiteRunViewSet, basename="test-run")
router.register("test-scenario-runs", views.ScenarioRunViewSet, basename="test-scenario-run")

urlpatterns = router.urls
