"""Console pages for webhook endpoints and their delivery log."""

urlpatterns: list = []
