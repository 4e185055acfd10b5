from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.http import HttpRequest
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin, OutstandingTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from .models import User
from .services import user_set_role


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ["username", "email", "role", "is_active", "last_login"]
    list_filter = ["role", "is_active"]
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("Platform", {"fields": ["role"]}),
    )
    # Shown, not edited: they follow the role (User.save), so they cannot drift apart from it.
    readonly_fields = ["is_staff", "is_superuser"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if "role" in form.changed_data or not change:
            user_set_role(user=obj, role=obj.role)


# simplejwt's admin shows each outstanding refresh token's body: a live
# credential any admin could copy and use as that user. Ours shows which
# tokens exist (jti, user, dates), never the token itself, and is read-only.
TOKEN_FIELDS: list[Any] = ["jti", "user", "created_at", "expires_at"]

admin.site.unregister(OutstandingToken)
admin.site.unregister(BlacklistedToken)


@admin.register(OutstandingToken)
class TokenWithoutBodyAdmin(OutstandingTokenAdmin):
    fields = TOKEN_FIELDS

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return TOKEN_FIELDS


@admin.register(BlacklistedToken)
class ReadOnlyBlacklistedTokenAdmin(BlacklistedTokenAdmin):
    """A blacklist entry is a fact (that token is dead); pointing it at another token would revive one."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["token", "blacklisted_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.method in ("GET", "HEAD") and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
