"""factory_boy factories for the merchant domain. Devices are made through the service so the secret is real."""

from __future__ import annotations

import time

import factory
from django.contrib.auth import get_user_model
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

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


def enrol_totp(user) -> TOTPDevice:
    """The user's authenticator (a confirmed TOTP device), enrolled now if they have none."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    return device or TOTPDevice.objects.create(user=user, name="test authenticator", confirmed=True)


def totp_code(device: TOTPDevice) -> str:
    """The code the authenticator shows now, or the next one when the current one was already used (django-otp
    accepts a code once, and one step ahead)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    if totp.t() <= device.last_t:
        totp.time += (device.last_t + 1 - totp.t()) * device.step
    return f"{totp.token():0{device.digits}d}"


def login_verified(client, user):
    """Sign `user` in with a session that passed the second factor, as after entering a code (an authenticator is
    enrolled for them if they have none). For tests that are not about signing in."""
    device = enrol_totp(user)
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client
