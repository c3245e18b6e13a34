"""Signing in: the API token endpoint (throttled, expiring tokens), token revocation, and the
login page with the same throttle."""

from __future__ import annotations

import math

from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import Throttled, ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import services
from annotations.throttles import login_failure_record, login_throttle_wait
from evalplatform.parsers import SafeJSONParser


class TokenObtainApi(ObtainAuthToken):
    """`POST username, password` → `{"token", "expires_at"}`; 400 for wrong credentials,
    429 after too many failed attempts from one address or for one username."""

    throttle_classes: list = []  # failures only are counted, below
    parser_classes = [SafeJSONParser, FormParser, MultiPartParser]

    @extend_schema(
        request=inline_serializer(
            "TokenRequest",
            {"username": serializers.CharField(), "password": serializers.CharField()},
        ),
        responses={
            200: inline_serializer(
                "TokenResponse",
                {"token": serializers.CharField(), "expires_at": serializers.DateTimeField()},
            ),
            429: OpenApiResponse(description="too many attempts; Retry-After says how long"),
        },
    )
    def post(self, request: Request, *args, **kwargs) -> Response:
        wait = login_throttle_wait(request, self)
        if wait is not None:
            raise Throttled(wait=wait)
        serializer = self.get_serializer(data=request.data)
        if not serializer.is_valid():
            login_failure_record(request, self)
            raise ValidationError(serializer.errors)
        token = services.token_issue(user=serializer.validated_data["user"])
        expires = services.token_expires_at(token.created)
        return Response(
            {"token": token.key, "expires_at": expires.isoformat() if expires else None}
        )


class TokenRevokeApi(APIView):
    """Deletes the caller's API token; every client that uses it must sign in again."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=None, responses={204: OpenApiResponse(description="revoked")})
    def post(self, request: Request) -> Response:
        services.token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ThrottledLoginView(auth_views.LoginView):
    """Django's login page, counting each POST against the sign-in throttles."""

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = login_throttle_wait(request, self)
        if wait is not None:
            seconds = math.ceil(wait)
            response = self.render_to_response(
                self.get_context_data(
                    throttled=f"Too many sign-in attempts. Try again in {seconds} seconds."
                )
            )
            response.status_code = 429
            response["Retry-After"] = str(seconds)
            return response
        response = super().post(request, *args, **kwargs)
        if response.status_code != 302:  # the form came back: the sign-in failed
            login_failure_record(request, self)
        return response
