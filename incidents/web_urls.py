from django.urls import path

from . import views

urlpatterns = [
    path("", views.incident_list, name="incident-list"),
    path("incidents/partials/rows", views.incident_list_rows, name="incident-list-rows"),
    path("overview", views.incident_overview, name="incident-overview"),
    path("overview.csv", views.incident_overview_csv, name="incident-overview-csv"),
    path("incidents/new", views.incident_new, name="incident-new"),
    path("incidents/<int:pk>/", views.incident_room, name="incident-room"),
    path("incidents/<int:pk>/partials/room", views.incident_room_partial, name="incident-room-partial"),
    path("incidents/<int:pk>/status", views.incident_status, name="incident-status"),
    path("incidents/<int:pk>/severity", views.incident_severity, name="incident-severity"),
    path("incidents/<int:pk>/commander", views.incident_commander, name="incident-commander"),
    path("incidents/<int:pk>/title", views.incident_title, name="incident-title"),
    path("incidents/<int:pk>/role", views.incident_role, name="incident-role"),
    path("incidents/<int:pk>/summary", views.incident_summary, name="incident-summary"),
    path("incidents/<int:pk>/assignees/add", views.incident_assignee_add, name="incident-assignee-add"),
    path("incidents/<int:pk>/assignees/remove", views.incident_assignee_remove, name="incident-assignee-remove"),
    path("incidents/<int:pk>/notes", views.incident_note, name="incident-note"),
    path("incidents/<int:pk>/status-updates", views.incident_status_update, name="incident-status-update"),
    path("incidents/<int:pk>/cadence", views.incident_cadence, name="incident-cadence"),
    path("incidents/<int:pk>/events/<int:seq>/pin", views.event_pin, name="incident-event-pin"),
    path("incidents/<int:pk>/partials/timeline", views.incident_timeline_partial, name="incident-timeline-partial"),
    path("incidents/<int:pk>/postmortem", views.incident_postmortem, name="incident-postmortem"),
    path("incidents/<int:pk>/partials/replay", views.incident_replay, name="incident-replay"),
    path("incidents/<int:pk>/action-items", views.action_item_add, name="incident-action-item-add"),
    path("incidents/<int:pk>/action-items/<int:item>/done", views.action_item_done, name="incident-action-item-done"),
    path(
        "incidents/<int:pk>/action-items/<int:item>/owner", views.action_item_owner, name="incident-action-item-owner"
    ),
]
