"""What the web tier answers before any view: a Host it does not serve, plain HTTP when the HTTPS redirect is on."""

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.django_db

EVIL = "evil.example.net"


@pytest.fixture
def served_hosts(settings):
    settings.DEBUG = False  # as in production: Django's handler400 answers, not the debug page
    settings.ALLOWED_HOSTS = ["pay.example.com"]
    return settings


@pytest.mark.parametrize(
    "path", ["/api/terminal/v1/heartbeat", "/api/schema/", "/api/staff/v1/nothing", "/notify/umpay/"]
)
def test_a_host_not_served_gets_a_json_400_under_api_and_notify(client, served_hosts, path):
    response = client.post(path, data=b"{}", content_type="application/json", HTTP_HOST=EVIL)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {
        "code": "HOST_NOT_ALLOWED",
        "message": "This host name is not served here.",
        "details": {},
    }
    assert EVIL not in response.content.decode()  # the refused host is never repeated


def test_the_console_answers_with_its_400_page(client, served_hosts):
    response = client.get("/login/", HTTP_HOST=EVIL)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")


def test_a_served_host_is_answered_as_usual(client, served_hosts):
    response = client.post("/api/terminal/v1/heartbeat", data=b"{}", content_type="application/json",
                           HTTP_HOST="pay.example.com")  # fmt: skip
    assert (response.status_code, response.json()["code"]) == (401, "AUTH_HEADER_MISSING")


def test_under_asgi_the_terminal_api_chain_answers_json_too(served_hosts):
    """The terminal API's own middleware chain (portal.handlers) refuses the host in CommonMiddleware as well."""
    from portal.handlers import application

    async def send():
        transport = httpx.ASGITransport(app=application())
        async with httpx.AsyncClient(transport=transport, base_url=f"http://{EVIL}") as client:
            return await client.post("/api/terminal/v1/heartbeat", content=b"{}")

    response = asyncio.run(send())
    assert (response.status_code, response.json()["code"]) == (400, "HOST_NOT_ALLOWED")


def test_with_the_https_redirect_on_umf_notifications_and_healthz_stay_on_plain_http(client, settings):
    """UMF posts its notifications to an http:// backUrl and does not follow redirects; load balancers ask /healthz
    over plain HTTP. Everything else is redirected."""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/login/").status_code == 301
    assert client.get("/login/")["Location"] == "https://testserver/login/"
    assert client.post("/api/terminal/v1/heartbeat").status_code == 301
    notification = client.post("/notify/umpay/", data={"orderId": "X"})
    assert notification.status_code != 301 and "Location" not in notification
    assert client.get("/healthz").status_code != 301
