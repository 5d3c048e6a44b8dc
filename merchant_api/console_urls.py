"""Console pages for merchant API clients; included by portal/urls.py in the "portal" namespace."""

from django.urls import path

from merchant_api import views

urlpatterns = [
    path("api-clients/", views.client_list, name="merchant_api_clients"),
    path("api-clients/new", views.client_create, name="merchant_api_client_create"),
    path("api-clients/<int:pk>/secret/<str:token>", views.client_secret, name="merchant_api_client_secret"),
    path("api-clients/<int:pk>/revoke", views.client_revoke, name="merchant_api_client_revoke"),
]
