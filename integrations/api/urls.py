from rest_framework.routers import SimpleRouter

from integrations.api import views

router = SimpleRouter(trailing_slash=True)
router.register("mcp-servers", views.McpServerViewSet, basename="mcp-server")
router.register("http-tools", views.HttpToolViewSet, basename="http-tool")
router.register("webhook-endpoints", views.WebhookEndpointViewSet, basename="webhook-endpoint")
router.register("webhook-deliveries", views.WebhookDeliveryViewSet, basename="webhook-delivery")

urlpatterns = router.urls
