"""Refresh tokens are spent once: rotation and sign-out blacklist them atomically.

simplejwt blacklists a rotated refresh token with `get_or_create`, so eight
concurrent refreshes of one token all found it "not yet blacklisted", all
"created" (or got) the blacklist row, and all answered 200: a stolen token
forked into eight live token families. Here spending a token is the insert
of its blacklist row, which the one-to-one unique constraint lets exactly
one transaction make; every other attempt fails with IntegrityError and
gets 401, whether it ran beside the winner or after it.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch


class TokenSpent(InvalidToken):
    default_detail = _("Token is blacklisted")


def refresh_token_spend(*, token: RefreshToken) -> None:
    """Blacklist `token`, or raise TokenSpent if another request already did (or is doing it right now)."""
    jti = token.payload[api_settings.JTI_CLAIM]
    user_id = token.payload.get(api_settings.USER_ID_CLAIM)
    with transaction.atomic():
        outstanding, _ = OutstandingToken.objects.get_or_create(
            jti=jti,
            defaults={
                "user": get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first(),
                "created_at": token.current_time,
                "token": str(token),
                "expires_at": datetime_from_epoch(token.payload["exp"]),
            },
        )
        try:
            with transaction.atomic():
                BlacklistedToken.objects.create(token=outstanding)
        except IntegrityError as exc:
            raise TokenSpent() from exc


class RotatingRefreshSerializer(TokenRefreshSerializer):
    """simplejwt's refresh with rotation, the old token spent atomically before the new pair is issued."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        refresh = self.token_class(attrs["refresh"])  # signature, expiry, and not blacklisted yet
        user_id = refresh.payload.get(api_settings.USER_ID_CLAIM)
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None or not api_settings.USER_AUTHENTICATION_RULE(user):
            raise AuthenticationFailed(str(self.error_messages["no_active_account"]), "no_active_account")
        assert isinstance(refresh, RefreshToken)
        refresh_token_spend(token=refresh)
        data = {"access": str(refresh.access_token)}
        refresh.set_jti()
        refresh.set_exp()
        refresh.set_iat()
        refresh.outstand()
        data["refresh"] = str(refresh)
        return data
