"""factory_boy factories for the merchant domain. Devices are made through the service so the secret is real."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from portal import services
from portal.models import Merchant, ServiceProvider, StaffMembership, Store

PASSWORD = "correct-horse-battery"


class ServiceProviderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ServiceProvider

    name = factory.Sequence(lambda n: f"Provider {n}")
    code = factory.Sequence(lambda n: f"sp-{n}")
    umpay_acq_sp_id = factory.Sequence(lambda n: f"Y{n:09d}")
    wechat_appid = "wx2421b1c4370ec43b"
    wechat_mch_id = factory.Sequence(lambda n: f"19{n:08d}")


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    provider = factory.SubFactory(ServiceProviderFactory)
    name = factory.Sequence(lambda n: f"Merchant {n}")
    channel = Merchant.Channel.WECHAT_DIRECT
    appid = "wxd930ea5d5a258f4f"
    mch_id = factory.Sequence(lambda n: f"10{n:06d}")


class StoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Store

    merchant = factory.SubFactory(MerchantFactory)
    store_id = factory.Sequence(lambda n: f"STORE{n:03d}")
    name = factory.Sequence(lambda n: f"门店 {n}")


def make_device(store: Store | None = None, device_id: str | None = None):
    """(device, secret) registered through `services.device_register`."""
    return services.device_register(store=store or StoreFactory(), device_id=device_id, actor=None, actor_label="test")


def make_user(username: str, *, role: str | None = None, provider=None, merchant=None, superuser: bool = False):
    user = get_user_model().objects.create_user(username=username, password=PASSWORD)
    if superuser:
        user.is_staff = user.is_superuser = True
        user.save()
    if role:
        StaffMembership.objects.create(user=user, role=role, provider=provider, merchant=merchant)
    return user
