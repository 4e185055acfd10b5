"""Issue 8.9: self-registration is a setting, closed in production unless opened, optionally per email domain."""

import secrets
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from tests.test_settings import manage

pytestmark = pytest.mark.django_db

GOOD = {"username": "newbie", "password": "a-long-unusual-phrase-42"}


def test_registration_is_closed_by_default_when_debug_is_off() -> None:
    def shown(**env: str) -> str:
        result = manage("shell", "-c", "from django.conf import settings; print(settings.REGISTRATION_OPEN)", **env)
        return result.stdout.strip().splitlines()[-1]

    production = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "AUDIT_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "incidents.example.com",
    }
    assert shown(**production) == "False"
    assert shown(**production, REGISTRATION_OPEN="true") == "True"
    assert shown(DEBUG="true") == "True"


def test_closed_registration_is_a_403_with_a_code_and_makes_no_one(settings: Any) -> None:
    settings.REGISTRATION_OPEN = False
    response = APIClient().post("/api/auth/register", {**GOOD, "email": "n@example.com"})
    assert response.status_code == 403
    assert response.json()["code"] == "registration_closed"
    assert not User.objects.exists()


def test_closed_registration_is_a_403_whatever_the_body(settings: Any) -> None:
    settings.REGISTRATION_OPEN = False
    response = APIClient().post("/api/auth/register", {"role": "admin"})
    assert (response.status_code, response.json()["code"]) == (403, "registration_closed")


def test_the_sign_up_page_says_registration_is_closed_and_refuses_a_post(settings: Any) -> None:
    settings.REGISTRATION_OPEN = False
    client = Client()
    page = client.get("/register/")
    assert b"Registration is closed" in page.content
    assert b'name="password1"' not in page.content
    posted = client.post(
        "/register/", {"username": "newbie", "password1": GOOD["password"], "password2": GOOD["password"]}
    )
    assert posted.status_code == 403
    assert not User.objects.exists()
    assert b"Ask an admin" in client.get("/login/").content


def test_open_registration_limited_to_email_domains(settings: Any) -> None:
    settings.REGISTRATION_OPEN = True
    settings.REGISTRATION_EMAIL_DOMAINS = ["example.com"]
    client = APIClient()
    outsider = client.post("/api/auth/register", {**GOOD, "email": "n@evil.example"})
    assert outsider.status_code == 400
    assert outsider.json()["code"] == "invalid"
    assert "example.com" in outsider.json()["email"][0]
    assert client.post("/api/auth/register", GOOD).status_code == 400  # no email at all
    assert client.post("/api/auth/register", {**GOOD, "email": "n@sub.example.com.evil"}).status_code == 400
    assert not User.objects.exists()
    assert client.post("/api/auth/register", {**GOOD, "email": "n@Example.com"}).status_code == 201


def test_the_sign_up_page_applies_the_email_domains(settings: Any) -> None:
    settings.REGISTRATION_EMAIL_DOMAINS = ["example.com"]
    form = {
        "username": "newbie",
        "password1": GOOD["password"],
        "password2": GOOD["password"],
        "email": "n@evil.example",
    }
    response = Client().post("/register/", form)
    assert response.status_code == 400
    assert b"example.com" in response.content
    assert not User.objects.exists()
