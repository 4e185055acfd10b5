"""WebSocket routes: one socket per client at /ws/, which may join many incidents."""

from django.urls import path

from .consumers import IncidentConsumer

websocket_urlpatterns = [
    path("ws/", IncidentConsumer.as_asgi()),
]
