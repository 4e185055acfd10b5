from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from accounts.throttling import throttle_auth_posts
from incidents.apis import api_not_found

from . import health, metrics

urlpatterns = [
    # Every password form spends the same sign-in budget as POST /api/auth/login.
    # These come first, so they answer the paths the admin and DRF also route.
    path("admin/login/", throttle_auth_posts(admin.site.login)),
    path(
        "api-auth/login/",
        throttle_auth_posts(LoginView.as_view(template_name="rest_framework/login.html")),
    ),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("accounts.urls")),
    path("api/", include("incidents.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file: the CSP allows no inline script.
    path(
        "api/schema/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api_docs/swagger_ui.html"),
        name="api-docs",
    ),
    path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    re_path(r"^api/(?P<path>[\s\S]*)\Z", api_not_found),  # any path, newlines and all
    path("api-auth/", include("rest_framework.urls")),
    # The web pages (server-rendered, HTMX): sign-in at /login/, the incident list at /.
    path("", include("accounts.web_urls")),
    path("", include("incidents.web_urls")),
]
