from django.urls import path

from calls import views

app_name = "calls"

urlpatterns = [
    path("calls/", views.CallListView.as_view(), name="list"),
    path("calls/live/", views.LiveCallsView.as_view(), name="live"),
    path("calls/web/", views.WebCallView.as_view(), name="web"),
    path("calls/<uuid:public_id>/", views.CallDetailView.as_view(), name="detail"),
    path("calls/<uuid:public_id>/recording.wav", views.RecordingView.as_view(), name="recording"),
    path("numbers/", views.NumberListView.as_view(), name="numbers"),
]
