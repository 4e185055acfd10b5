"""Signing in and out and registering on the web pages, with Django's session."""

from typing import Any

from django.contrib.auth import login
from django.contrib.auth.views import LoginView, LogoutView
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from .forms import RegisterForm
from .services import RegistrationRefused, UsernameTaken, registration_check, user_register


def registration_open() -> bool:
    try:
        registration_check(email=None)
    except RegistrationRefused:
        return False
    return True


class SignInView(LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return {**super().get_context_data(**kwargs), "registration_open": registration_open()}


class SignOutView(LogoutView):
    """POST only (Django's LogoutView refuses GET), so a link cannot sign anyone out."""


@require_http_methods(["GET", "POST"])
def register(request: HttpRequest) -> HttpResponse:
    """A new account is a viewer (see `user_register`); an admin may give it more."""
    if request.user.is_authenticated:
        return redirect("incident-list")
    if not registration_open():
        # The page says so; a POST is refused as the API refuses it.
        return render(
            request, "accounts/register.html", {"closed": True}, status=403 if request.method == "POST" else 200
        )
    form = RegisterForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = user_register(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data["email"] or "",
            )
        except UsernameTaken as exc:  # registered between the form's check and now
            form.add_error("username", exc.message)
        except RegistrationRefused as refused:
            form.add_error(refused.field, refused.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("incident-list")
    return render(request, "accounts/register.html", {"form": form}, status=400 if form.errors else 200)
