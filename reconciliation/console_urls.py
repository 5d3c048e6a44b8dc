"""Console pages for reconciliation (session login); included by portal/urls.py in the "portal" namespace."""

from django.urls import path

from reconciliation import views

urlpatterns = [
    path("reconciliation/", views.day_list, name="reconciliation_days"),
    path("reconciliation/upload", views.bill_upload, name="reconciliation_upload"),
    path("reconciliation/differences/", views.difference_list, name="reconciliation_differences"),
    path("reconciliation/differences/export.csv", views.difference_export, name="reconciliation_export"),
    path("reconciliation/differences/export.xlsx", views.difference_export_xlsx, name="reconciliation_export_xlsx"),
    path("reconciliation/differences/<int:pk>/", views.difference_detail, name="reconciliation_difference"),
    path("reconciliation/differences/<int:pk>/requery", views.difference_requery, name="reconciliation_requery"),
    path("reconciliation/differences/<int:pk>/explain", views.difference_explain, name="reconciliation_explain"),
]
