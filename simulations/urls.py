from django.urls import path

from simulations import views

app_name = "simulations"

urlpatterns = [
    path("tests/", views.SuiteListView.as_view(), name="list"),
    path("tests/suites/<uuid:public_id>/", views.SuiteDetailView.as_view(), name="suite"),
    path("tests/suites/<uuid:public_id>/export.yaml", views.SuiteExportView.as_view(), name="export"),
    path("tests/suites/<uuid:public_id>/scenarios/new/", views.ScenarioFormView.as_view(), name="scenario-create"),
    path("tests/scenarios/<uuid:scenario_id>/", views.ScenarioFormView.as_view(), name="scenario"),
    path("tests/runs/<uuid:public_id>/", views.RunDetailView.as_view(), name="run"),
    path("tests/runs/<uuid:public_id>/progress/", views.RunProgressView.as_view(), name="progress"),
    path("tests/runs/<uuid:public_id>/compare/", views.CompareView.as_view(), name="compare"),
    path("tests/results/<uuid:public_id>/", views.ScenarioRunView.as_view(), name="result"),
    path("tests/results/<uuid:public_id>/recording.wav", views.RecordingView.as_view(), name="recording"),
]
