from rest_framework.routers import SimpleRouter

from calls.api import views

router = SimpleRouter(trailing_slash=True)
router.register("calls", views.CallViewSet, basename="call")
router.register("numbers", views.PhoneNumberViewSet, basename="phone-number")
router.register("livekit-rules", views.LiveKitDispatchRuleViewSet, basename="livekit-rule")

urlpatterns = router.urls
