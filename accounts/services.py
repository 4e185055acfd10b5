"""Writes to accounts. Roles are the source of truth; Django's staff flags follow them."""

from django.conf import settings
from django.db import IntegrityError, transaction

from .models import User


class UsernameTaken(Exception):
    """The username (ignoring case) belongs to someone: a conflict with the current state, not bad input."""

    message = "That username is taken."


class RegistrationRefused(Exception):
    """Self-registration is closed, or not for this email address. `code` is the error code clients see."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def registration_check(*, email: str | None) -> None:
    """REGISTRATION_OPEN and REGISTRATION_EMAIL_DOMAINS (with email None: only whether it is open at all)."""
    if not settings.REGISTRATION_OPEN:
        raise RegistrationRefused(
            "registration_closed", "Registration is closed: ask an admin of this platform for an account."
        )
    domains = settings.REGISTRATION_EMAIL_DOMAINS
    if email is not None and domains and email.rpartition("@")[2].lower() not in domains:
        raise RegistrationRefused(
            "email_domain", f"Registration needs an email address at {', '.join(domains)}.", field="email"
        )


def user_register(*, username: str, password: str, email: str = "") -> User:
    """A self-registered account can only look: it is a viewer until an admin says otherwise."""
    registration_check(email=email)
    if User.objects.filter(username__iexact=username).exists():
        raise UsernameTaken()
    try:
        with transaction.atomic():
            return User.objects.create_user(username=username, password=password, email=email, role=User.Role.VIEWER)
    except IntegrityError as exc:  # the same name registered a moment ago
        raise UsernameTaken() from exc


@transaction.atomic
def user_set_role(*, user: User, role: str) -> User:
    """Set a role and keep Django's admin access in step with it: admins get the Django admin."""
    user.role = role
    is_admin = role == User.Role.ADMIN
    user.is_staff = is_admin
    user.is_superuser = is_admin
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    return user
