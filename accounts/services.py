"""Writes to accounts. Roles are the source of truth; Django's staff flags follow them."""

from django.db import IntegrityError, transaction

from .models import User


class UsernameTaken(Exception):
    """The username (ignoring case) belongs to someone: a conflict with the current state, not bad input."""

    message = "That username is taken."


def user_register(*, username: str, password: str, email: str = "") -> User:
    """A self-registered account can only look: it is a viewer until an admin says otherwise."""
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
