from django.urls import path

from . import apis

urlpatterns = [
    path("auth/register", apis.RegisterApi.as_view(), name="api-register"),
    path("auth/login", apis.LoginApi.as_view(), name="api-login"),
    path("auth/refresh", apis.RefreshApi.as_view(), name="api-refresh"),
    path("auth/logout", apis.LogoutApi.as_view(), name="api-logout"),
    path("me", apis.MeApi.as_view(), name="api-me"),
    path("users", apis.UserListApi.as_view(), name="api-user-list"),
    path("users/<int:pk>", apis.UserDetailApi.as_view(), name="api-user-detail"),
]
