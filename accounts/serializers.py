from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from incident_platform.strict import StrictSerializer

from .models import User
from .validation import username_check


class UserRefSerializer(serializers.ModelSerializer[User]):
    """A user wherever one appears: {id, username} and a little more."""

    display_name = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "role", "display_name"]
        read_only_fields = fields


class RegisterInputSerializer(StrictSerializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)  # and the rules of accounts.validation
    password = serializers.CharField(max_length=128, write_only=True, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        try:
            return username_check(value, check_taken=False)  # a taken name is the service's 409
        except DjangoValidationError as exc:
            raise serializers.ValidationError(list(exc.messages)) from exc

    def validate(self, attrs: dict) -> dict:
        # DRF would file a Django ValidationError raised here under non_field_errors;
        # the password validators' messages belong to the password field.
        try:
            password_validation.validate_password(attrs["password"], User(username=attrs["username"]))
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": list(exc.messages)}) from exc
        return attrs


class RegisterOutputSerializer(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "username", "role"]


class MeSerializer(serializers.ModelSerializer[User]):
    email = serializers.CharField(read_only=True, help_text="An email address, or empty.")

    class Meta:
        model = User
        fields = ["id", "username", "email", "role", "display_name"]


class UserAdminSerializer(serializers.ModelSerializer[User]):
    email = serializers.CharField(read_only=True, help_text="An email address, or empty.")

    class Meta:
        model = User
        fields = ["id", "username", "email", "role", "display_name", "is_active", "date_joined", "last_login"]
        read_only_fields = fields


class RoleInputSerializer(StrictSerializer):
    role = serializers.ChoiceField(choices=User.Role.choices)


class LogoutInputSerializer(StrictSerializer):
    refresh = serializers.CharField(max_length=4096)
