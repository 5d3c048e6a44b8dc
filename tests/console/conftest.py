"""The world of the list tests (tests/console/test_lists.py, test_payscore_member_lists.py): two merchants of one
provider and one of another, their stores and two devices, and a user of each role. A module defining its own
`world` uses that one instead."""

from __future__ import annotations

import pytest

from portal.models import StaffMembership
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device, make_user

Role = StaffMembership.Role


@pytest.fixture
def world():
    provider, other_provider = ServiceProviderFactory(), ServiceProviderFactory()
    a = MerchantFactory(provider=provider, name="甲商户")
    b = MerchantFactory(provider=provider, name="乙商户")
    c = MerchantFactory(provider=other_provider, name="丙商户")
    stores = {
        "a1": StoreFactory(merchant=a, name="甲一店", store_id="A1"),
        "a2": StoreFactory(merchant=a, name="甲二店", store_id="A2"),
        "b1": StoreFactory(merchant=b, name="乙一店", store_id="B1"),
        "c1": StoreFactory(merchant=c, name="丙一店", store_id="C1"),
    }
    devices = {"a1": make_device(stores["a1"], "DEV-A1")[0], "a2": make_device(stores["a2"], "DEV-A2")[0]}
    return {
        "a": a,
        "b": b,
        "c": c,
        "stores": stores,
        "devices": devices,
        "a_admin": make_user("a-admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a-staff", role=Role.MERCHANT_STAFF, merchant=a),
        "reviewer": make_user("reviewer", role=Role.PROVIDER_REVIEWER, provider=provider),
        "p_admin": make_user("p-admin", role=Role.PROVIDER_ADMIN, provider=provider),
        "c_admin": make_user("c-admin", role=Role.MERCHANT_ADMIN, merchant=c),
        "root": make_user("root", superuser=True),
    }
