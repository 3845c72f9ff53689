from django.urls import path

from batches import views

app_name = "batches"

urlpatterns = [
    path("batches/", views.BatchListView.as_view(), name="list"),
    path("batches/new/", views.BatchCreateView.as_view(), name="create"),
    path("batches/do-not-call/", views.DoNotCallView.as_view(), name="do-not-call"),
    path("batches/<uuid:public_id>/", views.BatchDetailView.as_view(), name="detail"),
    path("batches/<uuid:public_id>/progress/", views.BatchProgressView.as_view(), name="progress"),
    path("batches/<uuid:public_id>/results.csv", views.BatchResultsView.as_view(), name="results"),
    path("batches/<uuid:public_id>/<str:verb>/", views.BatchActionView.as_view(), name="action"),
    path("schedules/", views.ScheduleListView.as_view(), name="schedules"),
    path("schedules/new/", views.ScheduleFormView.as_view(), name="schedule-create"),
    path("schedules/preview/", views.SchedulePreviewView.as_view(), name="schedule-preview"),
    path("schedules/<uuid:public_id>/", views.ScheduleFormView.as_view(), name="schedule"),
]
