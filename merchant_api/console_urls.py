"""Console pages for merchant API clients."""

urlpatterns: list = []
