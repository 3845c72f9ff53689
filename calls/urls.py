from django.urls import path

from calls import livekit_views, views

app_name = "calls"

urlpatterns = [
    path("calls/", views.CallListView.as_view(), name="list"),
    path("calls/live/", views.LiveCallsView.as_view(), name="live"),
    path("calls/web/", views.WebCallView.as_view(), name="web"),
    path("calls/<uuid:public_id>/", views.CallDetailView.as_view(), name="detail"),
    path("calls/<uuid:public_id>/recording.wav", views.RecordingView.as_view(), name="recording"),
    path("numbers/", views.NumberListView.as_view(), name="numbers"),
    path("livekit/rules/", livekit_views.DispatchRuleListView.as_view(), name="livekit-rules"),
    path("livekit/rules/new/", livekit_views.DispatchRuleCreateView.as_view(), name="livekit-rule-create"),
    path("livekit/rules/<uuid:public_id>/", livekit_views.DispatchRuleEditView.as_view(), name="livekit-rule"),
]
