"""Console pages for alerts and the chat robots (session login); included by portal/urls.py in the "portal"
namespace."""

from django.urls import path

from alerts import views

urlpatterns = [
    path("alerts/", views.alert_list, name="alert_list"),
    path("alerts/read-all", views.alert_read_all, name="alert_read_all"),
    path("alerts/<int:pk>/", views.alert_detail, name="alert_detail"),
    path("alerts/<int:pk>/read", views.alert_read, name="alert_read"),
    path("alerts/robots/", views.channel_list, name="alert_channels"),
    path("alerts/robots/new", views.channel_create, name="alert_channel_create"),
    path("alerts/robots/<int:pk>/test", views.channel_test, name="alert_channel_test"),
    path("alerts/robots/<int:pk>/toggle", views.channel_toggle, name="alert_channel_toggle"),
    path("alerts/robots/<int:pk>/delete", views.channel_delete, name="alert_channel_delete"),
]
