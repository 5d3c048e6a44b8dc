"""Role scoping: every console query goes through `scope_queryset`; nobody sees another merchant's data."""

import pytest

from portal import selectors
from portal.models import StaffMembership
from tests.factories import PASSWORD, MerchantFactory, ServiceProviderFactory, StoreFactory, make_device, make_user

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role


@pytest.fixture
def world():
    provider_a, provider_b = ServiceProviderFactory(), ServiceProviderFactory()
    m_a1 = MerchantFactory(provider=provider_a, name="A1")
    m_a2 = MerchantFactory(provider=provider_a, name="A2")
    m_b1 = MerchantFactory(provider=provider_b, name="B1")
    stores = {m.name: StoreFactory(merchant=m, store_id=f"ST-{m.name}") for m in (m_a1, m_a2, m_b1)}
    devices = {name: make_device(store, device_id=f"DEV-{name}")[0] for name, store in stores.items()}
    return locals()


def names(queryset):
    return sorted(
        str(getattr(obj, "device_id", None) or getattr(obj, "store_id", None) or obj.name) for obj in queryset
    )


def test_merchant_admin_sees_only_own_merchant(world):
    user = make_user("ma", role=Role.MERCHANT_ADMIN, merchant=world["m_a1"])
    assert names(selectors.merchants_visible_to(user)) == ["A1"]
    assert names(selectors.stores_visible_to(user)) == ["ST-A1"]
    assert names(selectors.devices_visible_to(user)) == ["DEV-A1"]


def test_provider_staff_see_their_providers_merchants(world):
    user = make_user("pr", role=Role.PROVIDER_REVIEWER, provider=world["provider_a"])
    assert names(selectors.merchants_visible_to(user)) == ["A1", "A2"]
    assert names(selectors.devices_visible_to(user)) == ["DEV-A1", "DEV-A2"]


def test_unlinked_user_sees_nothing_superuser_sees_all(world):
    assert names(selectors.stores_visible_to(make_user("nobody"))) == []
    assert names(selectors.stores_visible_to(None)) == []
    assert len(selectors.devices_visible_to(make_user("root", superuser=True))) == 3


def test_console_requires_login_and_admin_requires_superuser(client, world):
    assert client.get("/").status_code == 302
    make_user("ma", role=Role.MERCHANT_ADMIN, merchant=world["m_a1"])
    client.login(username="ma", password=PASSWORD)
    response = client.get("/admin/portal/device/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
