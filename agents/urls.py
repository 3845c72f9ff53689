from django.urls import path

from agents import experiment_views, views

app_name = "agents"

urlpatterns = [
    path("agents/", views.AgentListView.as_view(), name="list"),
    path("agents/new/", views.AgentCreateView.as_view(), name="create"),
    path("agents/<uuid:public_id>/", views.AgentEditView.as_view(), name="edit"),
    path("agents/<uuid:public_id>/publish/", views.AgentPublishView.as_view(), name="publish"),
    path("agents/<uuid:public_id>/duplicate/", views.AgentDuplicateView.as_view(), name="duplicate"),
    path("agents/<uuid:public_id>/delete/", views.AgentDeleteView.as_view(), name="delete"),
    path("agents/<uuid:public_id>/versions/", views.AgentVersionsView.as_view(), name="versions"),
    path("agents/<uuid:public_id>/versions/<int:number>/restore/", views.AgentRestoreView.as_view(),
         name="restore"),
    path("agents/<uuid:public_id>/experiments/new/", experiment_views.ExperimentCreateView.as_view(),
         name="experiment-create"),
    path("agents/<uuid:public_id>/experiments/<uuid:experiment_id>/start/",
         experiment_views.ExperimentStartView.as_view(), name="experiment-start"),
    path("agents/<uuid:public_id>/experiments/<uuid:experiment_id>/end/",
         experiment_views.ExperimentEndView.as_view(), name="experiment-end"),
    path("agents/<uuid:public_id>/experiments/<uuid:experiment_id>/weights/",
         experiment_views.ExperimentWeightsView.as_view(), name="experiment-weights"),
]
