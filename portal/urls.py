from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from alerts import console_urls as alert_console_urls
from members import console_urls as member_console_urls
from members import urls as member_urls
from merchant_api import console_urls as merchant_api_console_urls
from merchant_api import urls as merchant_api_urls
from payments import console_urls as payment_console_urls
from payments import urls as payment_urls
from payscore import console_urls as payscore_console_urls
from payscore import urls as payscore_urls
from portal import api, health, metrics_endpoint, onboarding_urls, users_urls, views
from portal.schema import staff_only_unless_public
from reconciliation import console_urls as reconciliation_console_urls
from webhooks import console_urls as webhook_console_urls

terminal_v1 = [
    path("heartbeat", api.HeartbeatApi.as_view(), name="heartbeat"),
    *payment_urls.terminal_v1,
    *member_urls.terminal_v1,
    *payscore_urls.terminal_v1,
]

console = [
    path("", views.home, name="home"),
    path("dashboard/live", views.dashboard_live, name="dashboard_live"),
    path("audit/", views.audit_list, name="audit_list"),
    *payment_console_urls.urlpatterns,
    *onboarding_urls.urlpatterns,
    *member_console_urls.urlpatterns,
    *payscore_console_urls.urlpatterns,
    *reconciliation_console_urls.urlpatterns,
    *webhook_console_urls.urlpatterns,
    *merchant_api_console_urls.urlpatterns,
    *alert_console_urls.urlpatterns,
    *users_urls.urlpatterns,
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/", views.PasswordChangeView.as_view(), name="password_change"),
]

urlpatterns = [
    path("", include((console, "portal"))),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics_endpoint.metrics_view, name="metrics"),
    path("api/terminal/v1/", include((terminal_v1, "terminal"))),
    path("api/staff/v1/", include((payment_urls.staff_v1, "staff"))),
    path("api/merchant/v1/", include((merchant_api_urls.v1, "merchant"))),
    path("notify/", include(([*payment_urls.notify, *payscore_urls.notify], "notify"))),
    # Public in development; in production for signed-in console staff only (API_SCHEMA_PUBLIC).
    path("api/schema/", staff_only_unless_public(SpectacularAPIView.as_view(), viewer=False), name="schema"),
    path(
        "api/schema/docs/",
        staff_only_unless_public(SpectacularSwaggerView.as_view(url_name="schema"), viewer=True),
        name="schema-docs",
    ),
    path(
        "api/schema/redoc/",
        staff_only_unless_public(SpectacularRedocView.as_view(url_name="schema"), viewer=True),
        name="schema-redoc",
    ),
]


handler400 = "portal.api_errors.bad_request"
handler404 = "portal.api_errors.page_not_found"
handler500 = "portal.api_errors.server_error"

if settings.SANDBOX_MOUNTED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
