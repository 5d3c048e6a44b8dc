"""The product's URLs plus the benchmark's baseline endpoint (only the benchmark's servers use this module)."""

from django.urls import path

from bench.views import BaselineApi
from portal.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    path("api/terminal/v1/bench/baseline", BaselineApi.as_view(), name="bench-baseline"),
    *product_urlpatterns,
]
