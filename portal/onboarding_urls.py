"""Console pages (session login); included by portal/urls.py in the "portal" namespace."""

from django.urls import path

from portal import views_onboarding as views

urlpatterns = [
    path("merchants/", views.merchant_list, name="merchant_list"),
    path("merchants/new/", views.merchant_create, name="merchant_create"),
    path("merchants/<int:pk>/", views.merchant_detail, name="merchant_detail"),
    path("merchants/<int:pk>/edit/", views.merchant_edit, name="merchant_edit"),
    path("merchants/<int:pk>/credentials/", views.merchant_credentials, name="merchant_credentials"),
    path("merchants/<int:pk>/test-connection", views.merchant_test_connection, name="merchant_test_connection"),
    path("merchants/<int:pk>/suspend", views.merchant_suspend, name="merchant_suspend"),
    path("merchants/<int:pk>/resume", views.merchant_resume, name="merchant_resume"),
    path("providers/<int:pk>/credentials/", views.provider_credentials, name="provider_credentials"),
    path(
        "merchants/<int:pk>/credentials/refresh-platform-keys",
        views.merchant_refresh_platform_keys,
        name="merchant_refresh_platform_keys",
    ),
    path(
        "providers/<int:pk>/credentials/refresh-platform-keys",
        views.provider_refresh_platform_keys,
        name="provider_refresh_platform_keys",
    ),
    path("stores/", views.store_list, name="store_list"),
    path("stores/new/", views.store_create, name="store_create"),
    path("stores/<int:pk>/", views.store_detail, name="store_detail"),
    path("stores/<int:pk>/edit/", views.store_edit, name="store_edit"),
    path("stores/<int:pk>/toggle", views.store_toggle, name="store_toggle"),
    path("stores/<int:pk>/devices/register", views.device_register, name="device_register"),
    path("devices/", views.device_list, name="device_list"),
    path("devices/<int:pk>/rotate", views.device_rotate, name="device_rotate"),
    path("devices/<int:pk>/secret/<str:token>", views.device_secret, name="device_secret"),
    path("devices/<int:pk>/toggle", views.device_toggle, name="device_toggle"),
]
