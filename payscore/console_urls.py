"""Console pages for PayScore service orders; included by portal/urls.py in the "portal" namespace."""

from django.urls import path

from payscore import views

urlpatterns = [
    path("payscore/", views.order_list, name="payscore_list"),
    path("payscore/export.csv", views.order_export, name="payscore_export"),
    path("payscore/export.xlsx", views.order_export_xlsx, name="payscore_export_xlsx"),
    path("payscore/<int:pk>/", views.order_detail, name="payscore_detail"),
    path("payscore/<int:pk>/complete", views.order_complete, name="payscore_complete"),
    path("payscore/<int:pk>/cancel", views.order_cancel, name="payscore_cancel"),
    path("payscore/<int:pk>/sync", views.order_sync, name="payscore_sync"),
    path("payscore/<int:pk>/refresh", views.order_refresh, name="payscore_refresh"),
]
