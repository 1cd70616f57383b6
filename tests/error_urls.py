"""The real URLs plus a view that fails, for the error-page tests."""

from django.urls import path

from config.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


def boom(request):
    raise RuntimeError("forced failure for the 500 page test")


urlpatterns = [path("boom/", boom), *urlpatterns]
