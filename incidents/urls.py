from django.urls import path

from . import apis

urlpatterns = [
    path("notifications", apis.NotificationListApi.as_view(), name="api-notifications"),
    path("notifications/read", apis.NotificationReadApi.as_view(), name="api-notifications-read"),
    path("overview", apis.OverviewApi.as_view(), name="api-overview"),
    path("incidents", apis.IncidentListApi.as_view(), name="api-incident-list"),
    path("incidents/<int:pk>", apis.IncidentDetailApi.as_view(), name="api-incident-detail"),
    path("incidents/<int:pk>/status", apis.IncidentStatusApi.as_view(), name="api-incident-status"),
    path("incidents/<int:pk>/notes", apis.IncidentNotesApi.as_view(), name="api-incident-notes"),
    path(
        "incidents/<int:pk>/status-updates",
        apis.IncidentStatusUpdatesApi.as_view(),
        name="api-incident-status-updates",
    ),
    path("incidents/<int:pk>/action-items", apis.ActionItemListApi.as_view(), name="api-action-item-list"),
    path(
        "incidents/<int:pk>/action-items/<int:item>", apis.ActionItemDetailApi.as_view(), name="api-action-item-detail"
    ),
    path("incidents/<int:pk>/events", apis.EventListApi.as_view(), name="api-incident-events"),
    path("incidents/<int:pk>/events/<int:seq>/pin", apis.EventPinApi.as_view(), name="api-incident-event-pin"),
    path("incidents/<int:pk>/metrics", apis.IncidentMetricsApi.as_view(), name="api-incident-metrics"),
    path("incidents/<int:pk>/replay", apis.IncidentReplayApi.as_view(), name="api-incident-replay"),
    path("incidents/<int:pk>/postmortem", apis.IncidentPostmortemApi.as_view(), name="api-incident-postmortem"),
]
