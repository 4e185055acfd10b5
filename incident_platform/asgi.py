"""ASGI entry point: HTTP through Django, WebSockets at /ws/ through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incident_platform.settings")

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from incident_platform.bodylimit import BodyLimit  # noqa: E402
from realtime.auth import JWTAuthMiddlewareStack  # noqa: E402
from realtime.origin import SameOriginValidator  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Oversized bodies are refused from their Content-Length, before Django reads them.
        "http": BodyLimit(django_asgi_app),
        # Origin: the same scheme, host and port as this server (or WS_ALLOWED_ORIGINS).
        "websocket": SameOriginValidator(JWTAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
