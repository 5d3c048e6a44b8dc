"""Rules the data must always satisfy are enforced by the database, not only by code."""

import pytest
from django.db import DataError, IntegrityError, transaction

from portal.models import ChannelCredentials, Device, Merchant, StaffMembership, Store
from tests.factories import MerchantFactory, ServiceProviderFactory, StoreFactory, make_device, make_user

pytestmark = pytest.mark.django_db


def violates(fn) -> bool:
    try:
        with transaction.atomic():
            fn()
    except (IntegrityError, DataError):  # DataError: PostgreSQL enforcing a column length
        return True
    return False


def test_store_id_unique_per_merchant_only():
    store = StoreFactory(store_id="S1")
    assert violates(lambda: Store.objects.create(merchant=store.merchant, store_id="S1", name="dup"))
    assert not violates(lambda: StoreFactory(store_id="S1"))  # another merchant may reuse it


def test_device_id_globally_unique_and_charset_checked():
    device, _ = make_device()
    store = StoreFactory()
    assert violates(lambda: Device.objects.create(store=store, device_id=device.device_id, secret="s"))
    assert violates(lambda: Device.objects.create(store=store, device_id="has space", secret="s"))
    assert violates(lambda: Device.objects.create(store=store, device_id="x" * 33, secret="s"))


def test_service_provider_channels_need_a_provider():
    assert violates(lambda: Merchant.objects.create(name="m", channel=Merchant.Channel.UMPAY))
    assert violates(lambda: Merchant.objects.create(name="m", channel=Merchant.Channel.WECHAT_PROVIDER))
    assert not violates(lambda: Merchant.objects.create(name="m", channel=Merchant.Channel.WECHAT_DIRECT))
    assert violates(lambda: Merchant.objects.create(name="m", channel="PAYPAL"))


def test_sub_mch_id_unique_per_provider():
    provider = ServiceProviderFactory()
    MerchantFactory(provider=provider, channel=Merchant.Channel.WECHAT_PROVIDER, sub_mch_id="1900000109")
    assert violates(
        lambda: MerchantFactory(provider=provider, channel=Merchant.Channel.WECHAT_PROVIDER, sub_mch_id="1900000109")
    )
    # Blank sub_mch_id (direct merchants) never collides.
    MerchantFactory(provider=provider)
    MerchantFactory(provider=provider)


def test_credentials_have_exactly_one_owner():
    provider = ServiceProviderFactory()
    merchant = MerchantFactory(provider=provider)
    assert violates(lambda: ChannelCredentials.objects.create())
    assert violates(lambda: ChannelCredentials.objects.create(provider=provider, merchant=merchant))


def test_membership_role_must_match_its_owner():
    provider = ServiceProviderFactory()
    merchant = MerchantFactory(provider=provider)
    user = make_user("u1")
    assert violates(
        lambda: StaffMembership.objects.create(user=user, role=StaffMembership.Role.MERCHANT_ADMIN, provider=provider)
    )
    assert violates(
        lambda: StaffMembership.objects.create(user=user, role=StaffMembership.Role.PROVIDER_ADMIN, merchant=merchant)
    )
    assert not violates(
        lambda: StaffMembership.objects.create(user=user, role=StaffMembership.Role.MERCHANT_STAFF, merchant=merchant)
    )
