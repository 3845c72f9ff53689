from rest_framework.routers import SimpleRouter

from knowledge.api import views

router = SimpleRouter(trailing_slash=True)
router.register("knowledge-bases", views.KnowledgeBaseViewSet, basename="knowledge-base")
router.register(r"knowledge-bases/(?P<kb_public_id>[0-9a-f-]{36})/documents", views.DocumentViewSet,
                basename="knowledge-document")

urlpatterns = router.urls
