from django.urls import path

from . import views
from .throttling import throttle_auth_posts

urlpatterns = [
    path("login/", throttle_auth_posts(views.SignInView.as_view()), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("register/", throttle_auth_posts(views.register), name="register"),
]
