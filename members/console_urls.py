"""Console pages (session login); included by portal/urls.py in the "portal" namespace."""

from django.urls import path

from members import views

urlpatterns = [
    path("members/", views.member_list, name="member_list"),
    path("members/export.csv", views.member_export, name="member_export"),
    path("members/export.xlsx", views.member_export_xlsx, name="member_export_xlsx"),
    path("members/<int:pk>/", views.member_detail, name="member_detail"),
    path("members/<int:pk>/erase", views.member_erase, name="member_erase"),
]
