from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from annotations.auth_api import ThrottledLoginView, TokenObtainApi, TokenRevokeApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("login/", ThrottledLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/auth/token/", TokenObtainApi.as_view(), name="api-token"),
    path("api/v1/auth/token/revoke/", TokenRevokeApi.as_view(), name="api-token-revoke"),
    path("api/v1/", include("annotations.api_urls")),
    path("api/v1/", include("scoring.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("scoring.urls")),
    path("", include("annotations.urls")),
]

# A database outage outside a view (session or auth middleware) answers 503, not 500.
handler500 = "evalplatform.db_errors.server_error"
