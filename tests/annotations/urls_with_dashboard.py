"""The project's URLs plus a `study-dashboard` page, to check that the study page links to a
dashboard wherever one is installed (another part of the project provides the real page)."""

from django.http import HttpResponse
from django.urls import path

from evalplatform.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path(
        "studies/<slug:slug>/dashboard/",
        lambda request, slug: HttpResponse(slug),
        name="study-dashboard",
    ),
    *project_urlpatterns,
]
