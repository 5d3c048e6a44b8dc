"""Console pages for webhook endpoints and their delivery log (session login); included by portal/urls.py in the
"portal" namespace."""

from django.urls import path

from webhooks import views

urlpatterns = [
    path("webhooks/", views.endpoint_list, name="webhook_list"),
    path("webhooks/new", views.endpoint_create, name="webhook_create"),
    path("webhooks/<int:pk>/", views.endpoint_detail, name="webhook_detail"),
    path("webhooks/<int:pk>/rotate", views.endpoint_rotate, name="webhook_rotate"),
    path("webhooks/<int:pk>/test", views.endpoint_send_test, name="webhook_test"),
    path("webhooks/<int:pk>/resend-failed", views.endpoint_resend_failed, name="webhook_resend_failed"),
    path("webhooks/deliveries/<int:pk>/", views.delivery_detail, name="webhook_delivery"),
    path("webhooks/deliveries/<int:pk>/status", views.delivery_status, name="webhook_delivery_status"),
    path("webhooks/deliveries/<int:pk>/resend", views.delivery_resend, name="webhook_delivery_resend"),
]
