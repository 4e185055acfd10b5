"""Accounts over REST: registration, JWT sign-in and sign-out, the current user, role management."""

from typing import cast

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from incident_platform.schema import error_ref

from .models import User
from .permissions import IsPlatformAdmin
from .serializers import (
    LogoutInputSerializer,
    MeSerializer,
    RegisterInputSerializer,
    RegisterOutputSerializer,
    RoleInputSerializer,
    UserAdminSerializer,
)
from .services import RegistrationRefused, UsernameTaken, registration_check, user_register, user_set_role
from .throttling import AuthRateThrottle
from .tokens import RotatingRefreshSerializer, TokenSpent, refresh_token_spend


class RegisterApi(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=RegisterInputSerializer,
        responses={
            201: RegisterOutputSerializer,
            403: OpenApiResponse(error_ref("RegistrationClosedError"), description="Self-registration is off."),
            409: OpenApiResponse(error_ref("UsernameTakenError"), description="The username is taken."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterInputSerializer(data=request.data)
        try:
            registration_check(email=None)  # a closed door says so before it reads the body
            serializer.is_valid(raise_exception=True)
            user = user_register(**serializer.validated_data)
        except RegistrationRefused as refused:
            if refused.field:  # an email outside REGISTRATION_EMAIL_DOMAINS: a field error
                return Response({refused.field: [refused.message], "code": "invalid"}, status=400)
            return Response({"detail": refused.message, "code": refused.code}, status=status.HTTP_403_FORBIDDEN)
        except UsernameTaken as exc:
            body = {"detail": exc.message, "code": "username_taken", "username": [exc.message]}
            return Response(body, status=status.HTTP_409_CONFLICT)
        return Response(RegisterOutputSerializer(user).data, status=status.HTTP_201_CREATED)


class LoginApi(TokenObtainPairView):
    throttle_classes = [AuthRateThrottle]
    throttle_scope = "auth"


class RefreshApi(TokenRefreshView):
    """Rotation: the refresh token sent is spent (exactly once, see accounts.tokens) for a new pair."""

    throttle_classes = [AuthRateThrottle]
    throttle_scope = "auth"
    serializer_class = RotatingRefreshSerializer


class LogoutApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(request=LogoutInputSerializer, responses={205: None})
    def post(self, request: Request) -> Response:
        serializer = LogoutInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
        except TokenError as exc:
            raise ValidationError({"refresh": [str(exc)]}) from exc
        if str(token.get("user_id")) != str(request.user.pk):
            raise ValidationError({"refresh": ["This refresh token belongs to someone else."]})
        try:
            refresh_token_spend(token=token)
        except TokenSpent as exc:
            raise ValidationError({"refresh": ["Token is blacklisted"]}) from exc
        return Response(status=status.HTTP_205_RESET_CONTENT)


class MeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer)
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(cast(User, request.user)).data)


class UserListApi(generics.ListAPIView[User]):
    permission_classes = [IsPlatformAdmin]
    serializer_class = UserAdminSerializer
    queryset = User.objects.order_by("username")


class UserDetailApi(APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(responses=UserAdminSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(UserAdminSerializer(get_object_or_404(User, pk=pk)).data)

    @extend_schema(request=RoleInputSerializer, responses=UserAdminSerializer)
    def patch(self, request: Request, pk: int) -> Response:
        user = get_object_or_404(User, pk=pk)
        serializer = RoleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_set_role(user=user, role=serializer.validated_data["role"])
        return Response(UserAdminSerializer(user).data)
