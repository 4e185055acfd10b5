from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models


class PlatformUserManager(UserManager["User"]):
    def create_superuser(
        self, username: str, email: str | None = None, password: str | None = None, **extra_fields: Any
    ) -> "User":
        # `manage.py createsuperuser` makes an admin of the platform, not only of Django.
        extra_fields.setdefault("role", User.Role.ADMIN)
        return super().create_superuser(username, email, password, **extra_fields)


class User(AbstractUser):
    class Role(models.TextChoices):
        ADMIN = "admin", "Admin"
        RESPONDER = "responder", "Responder"
        VIEWER = "viewer", "Viewer"

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)

    objects: ClassVar[PlatformUserManager] = PlatformUserManager()

    class Meta:
        ordering = ["username"]

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Django's admin flags follow the role on every save, whoever saves: they cannot drift apart.

        An admin (role) has the Django admin (is_staff, is_superuser); nobody
        else has either, so ticking "superuser" on a viewer in the admin, or
        in a shell, gives nothing the role does not.
        """
        is_admin = self.role == self.Role.ADMIN
        self.is_staff = self.is_superuser = is_admin
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and {"role", "is_staff", "is_superuser"} & set(update_fields):
            kwargs["update_fields"] = {*update_fields, "role", "is_staff", "is_superuser"}
        # A new password or a deactivation withdraws the identity open sockets were opened with.
        password_changed = self.pk is not None and getattr(self, "_password", None) is not None
        deactivated = (
            self.pk is not None and not self.is_active and User.objects.filter(pk=self.pk, is_active=True).exists()
        )
        super().save(*args, **kwargs)
        if password_changed or deactivated:
            from .sockets import user_sockets_end

            user_sockets_end(user_id=self.pk, reason="deactivated" if deactivated else "password_changed")

    def clean(self) -> None:
        """The Django admin's door for usernames: the rules of accounts.validation, when the name changes."""
        super().clean()  # NFKC-normalises the username, as Django does
        unchanged = self.pk is not None and User.objects.filter(pk=self.pk, username=self.username).exists()
        if not unchanged:
            from .validation import username_check  # it reads this model

            try:
                self.username = username_check(self.username, exclude_pk=self.pk)
            except ValidationError as exc:
                raise ValidationError({"username": exc.messages}) from exc

    @property
    def can_change_incidents(self) -> bool:
        """Responders and admins create and change incidents; viewers only look."""
        return self.is_active and self.role in (self.Role.RESPONDER, self.Role.ADMIN)

    @property
    def is_platform_admin(self) -> bool:
        return self.is_active and self.role == self.Role.ADMIN

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username

    def as_ref(self) -> dict[str, Any]:
        """The contract's shape of a user wherever one appears in a payload."""
        return {
            "id": self.pk,
            "username": self.username,
            "role": self.role,
            "display_name": self.display_name,
        }
