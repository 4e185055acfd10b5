"""WSGI entry point, for HTTP-only deployments; the platform itself is served over ASGI (asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "incident_platform.settings")

application = get_wsgi_application()
