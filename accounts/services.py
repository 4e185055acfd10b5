"""Writes to accounts. Roles are the source of truth; Django's staff flags follow them."""

from django.db import transaction

from .models import User


def user_register(*, username: str, password: str, email: str = "") -> User:
    """A self-registered account can only look: it is a viewer until an admin says otherwise."""
    return User.objects.create_user(username=username, password=password, email=email, role=User.Role.VIEWER)


@transaction.atomic
def user_set_role(*, user: User, role: str) -> User:
    """Set a role and keep Django's admin access in step with it: admins get the Django admin."""
    user.role = role
    is_admin = role == User.Role.ADMIN
    user.is_staff = is_admin
    user.is_superuser = is_admin
    user.save(update_fields=["role", "is_staff", "is_superuser"])
    return user
