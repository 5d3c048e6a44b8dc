"""Console pages for staff accounts and one's own second factor; included by portal/urls.py in the "portal"
namespace."""

from django.urls import path

from portal import views_users as views

urlpatterns = [
    path("users/", views.staff_list, name="staff_list"),
    path("users/new/", views.staff_create, name="staff_create"),
    path("users/<int:pk>/", views.staff_detail, name="staff_detail"),
    path("users/<int:pk>/role", views.staff_role, name="staff_role"),
    path("users/<int:pk>/disable", views.staff_disable, name="staff_disable"),
    path("users/<int:pk>/enable", views.staff_enable, name="staff_enable"),
    path("users/<int:pk>/reset-password", views.staff_reset_password, name="staff_reset_password"),
    path("users/<int:pk>/reset-two-factor", views.staff_reset_two_factor, name="staff_reset_two_factor"),
    path("users/<int:pk>/password/<str:token>", views.staff_password, name="staff_password"),
    path("account/two-factor/", views.two_factor_setup, name="two_factor_setup"),
    path("account/two-factor/verify/", views.two_factor_verify, name="two_factor_verify"),
    path("account/two-factor/recovery-codes", views.two_factor_new_codes, name="two_factor_new_codes"),
    path("account/two-factor/recovery-codes/<str:token>", views.two_factor_codes, name="two_factor_codes"),
    path("account/two-factor/turn-off", views.two_factor_turn_off, name="two_factor_turn_off"),
]
