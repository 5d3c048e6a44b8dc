"""Console onboarding pages: merchants (credentials, connection test, suspend), stores and devices.

Given a world of two providers, each with merchants, stores and devices, and one user per role, each test says
what a role may see and do, that foreign ids are 404s, and that secrets never appear where they must not.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from portal.models import AuditLog, ChannelCredentials, Device, Merchant, StaffMembership, Store
from portal.services import credentials_update
from tests.factories import (
    MerchantFactory,
    ServiceProviderFactory,
    StoreFactory,
    login_verified,
    make_device,
    make_user,
)
from tests.shop import cached_key_and_certificate

pytestmark = pytest.mark.django_db
Role = StaffMembership.Role
V2_KEY = "k" * 16 + "0123456789abcdef"


@pytest.fixture
def world():
    p1, p2 = ServiceProviderFactory(name="P1"), ServiceProviderFactory(name="P2")
    a = MerchantFactory(provider=p1, name="Merchant A")
    b = MerchantFactory(provider=p2, name="Merchant B")
    store_a, store_b = StoreFactory(merchant=a, store_id="A-001"), StoreFactory(merchant=b, store_id="B-001")
    (device_a, secret_a), (device_b, secret_b) = make_device(store_a), make_device(store_b)
    users = {
        "p1_admin": make_user("p1_admin", role=Role.PROVIDER_ADMIN, provider=p1),
        "p1_reviewer": make_user("p1_reviewer", role=Role.PROVIDER_REVIEWER, provider=p1),
        "p2_admin": make_user("p2_admin", role=Role.PROVIDER_ADMIN, provider=p2),
        "a_admin": make_user("a_admin", role=Role.MERCHANT_ADMIN, merchant=a),
        "a_staff": make_user("a_staff", role=Role.MERCHANT_STAFF, merchant=a),
        "b_admin": make_user("b_admin", role=Role.MERCHANT_ADMIN, merchant=b),
        "root": make_user("root", superuser=True),
    }
    return {
        "p1": p1, "p2": p2, "a": a, "b": b, "store_a": store_a, "store_b": store_b,
        "device_a": device_a, "device_b": device_b, "secret_a": secret_a, "secret_b": secret_b, **users,
    }  # fmt: skip


def as_user(client, user, language="en"):
    login_verified(client, user)
    client.cookies["django_language"] = language
    return client


def url(name, *args):
    return reverse(f"portal:{name}", args=args)


# --- access: anonymous, roles, foreign ids ---------------------------------------------------------------------

GET_PAGES = [
    ("merchant_list", None),
    ("merchant_create", None),
    ("merchant_detail", "a"),
    ("merchant_edit", "a"),
    ("merchant_credentials", "a"),
    ("merchant_suspend", "a"),
    ("provider_credentials", "p1"),
    ("store_list", None),
    ("store_create", None),
    ("store_detail", "store_a"),
    ("store_edit", "store_a"),
    ("device_rotate", "device_a"),
]
POST_ACTIONS = [
    ("merchant_test_connection", "a"),
    ("merchant_suspend", "a"),
    ("merchant_resume", "a"),
    ("store_toggle", "store_a"),
    ("device_register", "store_a"),
    ("device_rotate", "device_a"),
    ("device_toggle", "device_a"),
]


def page_url(world, name, key):
    return url(name, world[key].pk) if key else url(name)


@pytest.mark.parametrize(("name", "key"), GET_PAGES + POST_ACTIONS)
def test_anonymous_is_sent_to_login(client, world, name, key):
    response = client.get(page_url(world, name, key))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("portal:login"))


@pytest.mark.parametrize(("name", "key"), GET_PAGES)
def test_provider_admin_sees_every_page(client, world, name, key):
    response = as_user(client, world["p1_admin"]).get(page_url(world, name, key))

    assert response.status_code == 200


@pytest.mark.parametrize(("name", "key"), [("store_list", None), ("store_detail", "store_a")])
@pytest.mark.parametrize("role", ["p1_reviewer", "a_admin", "a_staff", "root"])
def test_store_pages_render_for_every_role_in_scope(client, world, name, key, role):
    assert as_user(client, world[role]).get(page_url(world, name, key)).status_code == 200


@pytest.mark.parametrize("role", ["p1_reviewer", "a_admin", "a_staff"])
@pytest.mark.parametrize(
    ("name", "key"),
    [("merchant_list", None), ("merchant_create", None), ("merchant_detail", "a"), ("merchant_credentials", "a")],
)
def test_merchant_pages_are_for_provider_admins_only(client, world, role, name, key):
    assert as_user(client, world[role]).get(page_url(world, name, key)).status_code == 403


@pytest.mark.parametrize("role", ["p1_reviewer", "a_staff"])
@pytest.mark.parametrize(("name", "key"), POST_ACTIONS)
def test_read_only_roles_cannot_write(client, world, role, name, key):
    before = AuditLog.objects.count()

    response = as_user(client, world[role]).post(page_url(world, name, key), {"confirm": "yes"})

    assert response.status_code == 403
    assert AuditLog.objects.count() == before


@pytest.mark.parametrize("role", ["p1_reviewer", "a_staff"])
def test_read_only_roles_see_no_write_buttons(client, world, role):
    body = as_user(client, world[role]).get(url("store_detail", world["store_a"].pk)).content.decode()

    assert url("store_toggle", world["store_a"].pk) not in body
    assert url("device_register", world["store_a"].pk) not in body
    assert url("device_toggle", world["device_a"].pk) not in body
    assert url("store_create") not in as_user(client, world[role]).get(url("store_list")).content.decode()


@pytest.mark.parametrize("role", ["b_admin", "p2_admin"])
@pytest.mark.parametrize(("name", "key"), [(name, key) for name, key in GET_PAGES + POST_ACTIONS if key])
def test_foreign_ids_are_404(client, world, role, name, key):
    before = AuditLog.objects.count()
    user = as_user(client, world[role])

    assert user.get(page_url(world, name, key)).status_code in (404, 405)
    assert user.post(page_url(world, name, key), {"confirm": "yes"}).status_code == 404
    assert AuditLog.objects.count() == before
    assert Merchant.objects.get(pk=world["a"].pk).is_active
    assert Device.objects.get(pk=world["device_a"].pk).is_active


def test_merchant_admin_gets_404_for_a_provider_credentials_page(client, world):
    assert as_user(client, world["a_admin"]).get(url("provider_credentials", world["p1"].pk)).status_code == 404


def test_lists_are_scoped(client, world):
    stores = as_user(client, world["a_admin"]).get(url("store_list")).content.decode()
    assert "A-001" in stores and "B-001" not in stores

    merchants = as_user(client, world["p1_admin"]).get(url("merchant_list")).content.decode()
    assert "Merchant A" in merchants and "Merchant B" not in merchants

    everything = as_user(client, world["root"]).get(url("merchant_list")).content.decode()
    assert "Merchant A" in everything and "Merchant B" in everything


# --- merchants ---------------------------------------------------------------------------------------------------


def test_merchant_list_search_and_status_filter(client, world):
    MerchantFactory(provider=world["p1"], name="Tea House", mch_id="1900009999")
    MerchantFactory(provider=world["p1"], name="Closed Shop", status=Merchant.Status.SUSPENDED)
    user = as_user(client, world["p1_admin"])

    by_mch_id = user.get(url("merchant_list"), {"q": "1900009999"}).content.decode()
    suspended = user.get(url("merchant_list"), {"status": "SUSPENDED"}).content.decode()
    nothing = user.get(url("merchant_list"), {"q": "no such merchant"}).content.decode()

    assert "Tea House" in by_mch_id and "Merchant A" not in by_mch_id
    assert "Closed Shop" in suspended and "Tea House" not in suspended
    assert "No merchant matches these filters." in nothing


def create_merchant(client, user, **fields):
    return as_user(client, user).post(url("merchant_create"), {"name": "New Shop", **fields})


def test_create_direct_merchant_needs_appid_and_mch_id(client, world):
    response = create_merchant(client, world["p1_admin"], channel="WECHAT_DIRECT")

    assert response.status_code == 400
    assert response.context["form"].errors["appid"] == ["Required for a direct WeChat Pay merchant."]
    assert response.context["form"].errors["mch_id"] == ["Required for a direct WeChat Pay merchant."]
    assert 'class="field-error" id="appid-error"' in response.content.decode()
    assert not Merchant.objects.filter(name="New Shop").exists()


def test_create_provider_mode_merchant_needs_sub_mch_id_and_a_provider_mch_id(client, world):
    response = create_merchant(client, world["p1_admin"], channel="WECHAT_PROVIDER")
    assert response.context["form"].errors["sub_mch_id"] == ["Required for a service-provider (sub_mch_id) merchant."]

    world["p1"].wechat_mch_id = ""
    world["p1"].save()
    response = create_merchant(client, world["p1_admin"], channel="WECHAT_PROVIDER", sub_mch_id="1900000301")
    assert response.context["form"].errors["channel"] == [
        "The service provider has no WeChat mch_id, so it cannot sign for sub-merchants."
    ]
    assert not Merchant.objects.filter(name="New Shop").exists()


@pytest.mark.parametrize(
    "channel, ids", [("WECHAT_PROVIDER", {"sub_mch_id": "1900000301"}), ("UMPAY", {"umpay_acq_mer_id": "12345678"})]
)
def test_payscore_service_id_is_for_direct_merchants_only(client, world, channel, ids):
    response = create_merchant(client, world["p1_admin"], channel=channel, payscore_service_id="500001", **ids)
    assert response.status_code == 400
    assert response.context["form"].errors["payscore_service_id"] == [
        "PayScore is for direct WeChat Pay merchants only."
    ]
    assert not Merchant.objects.filter(name="New Shop").exists()


def test_create_umpay_merchant_needs_an_8_character_acq_mer_id_and_a_provider_acq_sp_id(client, world):
    response = create_merchant(client, world["p1_admin"], channel="UMPAY", umpay_acq_mer_id="1234567")
    assert response.context["form"].errors["umpay_acq_mer_id"] == ["The UMF acqMerId is exactly 8 letters or digits."]

    world["p1"].umpay_acq_sp_id = ""
    world["p1"].save()
    response = create_merchant(client, world["p1_admin"], channel="UMPAY", umpay_acq_mer_id="12345678")
    assert "channel" in response.context["form"].errors
    assert not Merchant.objects.filter(name="New Shop").exists()


def test_create_merchant_under_the_admins_provider_is_audited(client, world):
    response = create_merchant(client, world["p1_admin"], channel="WECHAT_PROVIDER", sub_mch_id="1900000301")

    merchant = Merchant.objects.get(name="New Shop")
    assert response.status_code == 302
    assert response["Location"] == url("merchant_detail", merchant.pk)
    assert (merchant.provider, merchant.channel, merchant.sub_mch_id) == (world["p1"], "WECHAT_PROVIDER", "1900000301")
    audit = AuditLog.objects.get(action="merchant.create")
    assert (audit.actor, audit.merchant, audit.provider) == (world["p1_admin"], merchant, world["p1"])


def test_duplicate_sub_mch_id_is_a_field_error(client, world):
    MerchantFactory(provider=world["p1"], channel="WECHAT_PROVIDER", sub_mch_id="1900000301", appid="", mch_id="")

    response = create_merchant(client, world["p1_admin"], channel="WECHAT_PROVIDER", sub_mch_id="1900000301")

    assert response.context["form"].errors["sub_mch_id"] == [
        "Another merchant of this provider already has this sub_mch_id."
    ]


def test_edit_merchant_is_audited_and_validated(client, world):
    user = as_user(client, world["p1_admin"])
    fields = {"name": "Merchant A2", "appid": world["a"].appid, "mch_id": "1900000999"}

    bad = user.post(url("merchant_edit", world["a"].pk), {**fields, "mch_id": ""})
    good = user.post(url("merchant_edit", world["a"].pk), fields)

    assert bad.context["form"].errors["mch_id"] == ["Required for a direct WeChat Pay merchant."]
    assert good.status_code == 302
    world["a"].refresh_from_db()
    assert (world["a"].name, world["a"].mch_id) == ("Merchant A2", "1900000999")
    assert AuditLog.objects.get(action="merchant.update").details["mch_id"]["to"] == "1900000999"


def test_switching_to_api_v3_needs_v3_credentials_and_is_shown(client, world):
    user = as_user(client, world["p1_admin"])
    merchant = world["a"]
    fields = {"name": merchant.name, "appid": merchant.appid, "mch_id": merchant.mch_id}
    key_pem, cert_pem = cached_key_and_certificate("switch-v3")
    _platform_key, platform_cert = cached_key_and_certificate("switch-v3-platform")
    credentials_update(
        owner=merchant,
        values={"wechat_api_v3_key": "v3key-0123456789abcdefghijklmnop", "wechat_private_key": key_pem,
                "wechat_certificate": cert_pem},
        actor=None,
        actor_label="test",
    )  # fmt: skip

    refused = user.post(url("merchant_edit", merchant.pk), {**fields, "wechat_api": "V3"})
    assert "wechat_api" in refused.context["form"].errors  # no platform key yet: nothing is changed
    assert Merchant.objects.get(pk=merchant.pk).wechat_api == "V2"
    credentials_update(
        owner=merchant, values={"wechat_platform_certificates": platform_cert}, actor=None, actor_label="test"
    )
    assert user.post(url("merchant_edit", merchant.pk), {**fields, "wechat_api": "V3"}).status_code == 302

    assert Merchant.objects.get(pk=merchant.pk).wechat_api == "V3"
    assert AuditLog.objects.get(action="merchant.update").details["wechat_api"] == {"from": "V2", "to": "V3"}
    user.post(url("merchant_edit", merchant.pk), {**fields, "name": "Merchant A3"})  # the version left out: kept
    assert Merchant.objects.get(pk=merchant.pk).wechat_api == "V3"
    chinese = as_user(client, world["p1_admin"], language="zh-hans")
    assert "API v3（JSON）" in chinese.get(url("merchant_detail", merchant.pk)).content.decode()
    assert "API v3（JSON）" in chinese.get(url("merchant_list")).content.decode()


def test_a_umf_merchant_cannot_be_put_on_wechat_api_v3(world):
    from portal.errors import InvalidInput
    from portal.services import merchant_create

    with pytest.raises(InvalidInput) as refused:
        merchant_create(
            provider=ServiceProviderFactory(umpay_acq_sp_id="Y471790403"),
            channel=Merchant.Channel.UMPAY,
            values={"name": "UMF", "umpay_acq_mer_id": "41509208", "wechat_api": "V3"},
            actor=None,
            actor_label="test",
        )
    assert set(refused.value.details) == {"wechat_api"}
    assert not Merchant.objects.filter(name="UMF").exists()


def test_suspend_and_resume_need_confirmation_and_are_audited(client, world):
    user = as_user(client, world["p1_admin"])

    confirm_page = user.get(url("merchant_suspend", world["a"].pk))
    unconfirmed = user.post(url("merchant_suspend", world["a"].pk))
    assert confirm_page.status_code == unconfirmed.status_code == 200
    assert Merchant.objects.get(pk=world["a"].pk).is_active

    user.post(url("merchant_suspend", world["a"].pk), {"confirm": "yes"})
    assert Merchant.objects.get(pk=world["a"].pk).status == Merchant.Status.SUSPENDED
    user.post(url("merchant_resume", world["a"].pk), {"confirm": "yes"})
    assert Merchant.objects.get(pk=world["a"].pk).status == Merchant.Status.ACTIVE
    assert [a.details["to"] for a in AuditLog.objects.filter(action="merchant.status").order_by("id")] == [
        "SUSPENDED",
        "ACTIVE",
    ]


# --- credentials -------------------------------------------------------------------------------------------------


def upload(name: str, content: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, content.encode(), content_type="application/x-pem-file")


def test_bad_v2_key_is_an_error_next_to_the_field_and_nothing_is_stored(client, world):
    key_pem, cert_pem = cached_key_and_certificate("console-a")

    response = as_user(client, world["p1_admin"]).post(
        url("merchant_credentials", world["a"].pk),
        {"wechat_api_v2_key": "too-short", "wechat_private_key": upload("apiclient_key.pem", key_pem)},
    )

    assert response.status_code == 400
    assert response.context["form"].errors["wechat_api_v2_key"] == [
        "The API v2 key must be exactly 32 letters or digits."
    ]
    assert 'id="wechat_api_v2_key-error"' in response.content.decode()
    assert "too-short" not in response.content.decode()
    assert not ChannelCredentials.objects.filter(merchant=world["a"]).exists()
    assert not AuditLog.objects.filter(action="credentials.update").exists()


def test_key_certificate_mismatch_is_an_error_next_to_the_certificate(client, world):
    key_pem, _ = cached_key_and_certificate("console-a")
    _, other_cert = cached_key_and_certificate("console-other")

    response = as_user(client, world["p1_admin"]).post(
        url("merchant_credentials", world["a"].pk),
        {
            "wechat_private_key": upload("apiclient_key.pem", key_pem),
            "wechat_certificate": upload("apiclient_cert.pem", other_cert),
        },
    )

    assert response.context["form"].errors["wechat_certificate"] == [
        "This certificate does not belong to the merchant private key."
    ]
    assert not ChannelCredentials.objects.filter(merchant=world["a"]).exists()


def test_valid_credentials_are_stored_audited_and_never_shown(client, world):
    key_pem, cert_pem = cached_key_and_certificate("console-a")
    user = as_user(client, world["p1_admin"])

    response = user.post(
        url("merchant_credentials", world["a"].pk),
        {
            "wechat_api_v2_key": V2_KEY,
            "wechat_private_key": upload("apiclient_key.pem", key_pem),
            "wechat_certificate": upload("apiclient_cert.pem", cert_pem),
        },
    )

    assert response.status_code == 302
    stored = ChannelCredentials.objects.get(merchant=world["a"])
    assert stored.wechat_api_v2_key.reveal() == V2_KEY
    assert AuditLog.objects.get(action="credentials.update").details == {
        "fields": ["wechat_api_v2_key", "wechat_cert_serial", "wechat_certificate", "wechat_private_key"]
    }
    key_body = key_pem.splitlines()[1]
    for page in (url("merchant_credentials", world["a"].pk), url("merchant_detail", world["a"].pk)):
        body = user.get(page).content.decode()
        assert V2_KEY not in body and key_body not in body
        assert "Configured" in body


def test_provider_mode_merchant_credentials_are_the_providers(client, world):
    c = MerchantFactory(provider=world["p1"], channel="WECHAT_PROVIDER", sub_mch_id="1900000301", appid="", mch_id="")
    user = as_user(client, world["p1_admin"])

    response = user.get(url("merchant_credentials", c.pk))
    assert response.status_code == 302
    assert response["Location"] == url("provider_credentials", world["p1"].pk)

    umf_key, _ = cached_key_and_certificate("umf-console")
    saved = user.post(url("provider_credentials", world["p1"].pk), {"umpay_private_key": upload("sp.key.p8", umf_key)})
    assert saved.status_code == 302
    assert ChannelCredentials.objects.get(provider=world["p1"]).umpay_private_key.reveal() == umf_key
    assert as_user(client, world["p1_reviewer"]).get(url("provider_credentials", world["p1"].pk)).status_code == 403


# --- connection test (against the sandbox) ------------------------------------------------------------------------


@pytest.mark.parametrize("channel", [Merchant.Channel.WECHAT_DIRECT, Merchant.Channel.WECHAT_PROVIDER])
def test_connection_ok_then_not_accepted_after_a_wrong_v2_key(client, make_shop, channel):
    shop = make_shop(channel)
    merchant = shop.merchant
    admin = make_user("sp_admin", role=Role.PROVIDER_ADMIN, provider=merchant.provider)
    user = as_user(client, admin)

    ok = user.post(url("merchant_test_connection", merchant.pk), HTTP_HX_REQUEST="true")

    # (The in-process sandbox request leaves its own language active, so assert on markup, not on words.)
    assert ok.status_code == 200
    assert '<span class="badge ok">' in ok.content.decode() and "ORDERNOTEXIST" in ok.content.decode()
    assert shop.upstream_calls() == ["pay/orderquery"]

    owner = merchant if channel == Merchant.Channel.WECHAT_DIRECT else merchant.provider
    credentials_update(owner=owner, values={"wechat_api_v2_key": "Z" * 32}, actor=None, actor_label="test")
    refused = user.post(url("merchant_test_connection", merchant.pk), HTTP_HX_REQUEST="true")

    assert '<span class="badge bad">' in refused.content.decode() and "<code>FAIL</code>" in refused.content.decode()
    assert "Z" * 32 not in refused.content.decode()
    assert [a.details["result"] for a in AuditLog.objects.filter(action="merchant.test_connection").order_by("id")] == [
        "OK",
        "NOT_ACCEPTED",
    ]


def test_umpay_connection_ok_then_not_accepted_after_a_wrong_key(client, make_shop):
    shop = make_shop(Merchant.Channel.UMPAY)
    admin = make_user("sp_admin", role=Role.PROVIDER_ADMIN, provider=shop.merchant.provider)
    user = as_user(client, admin)

    ok = user.post(url("merchant_test_connection", shop.merchant.pk), HTTP_HX_REQUEST="true")
    assert '<span class="badge ok">' in ok.content.decode()

    other_key, _ = cached_key_and_certificate("umf-wrong")
    credentials_update(
        owner=shop.merchant.provider, values={"umpay_private_key": other_key}, actor=None, actor_label="test"
    )
    refused = user.post(url("merchant_test_connection", shop.merchant.pk), HTTP_HX_REQUEST="true")
    assert '<span class="badge bad">' in refused.content.decode()
    assert [a.details["result"] for a in AuditLog.objects.filter(action="merchant.test_connection").order_by("id")] == [
        "OK",
        "NOT_ACCEPTED",
    ]


def test_connection_without_credentials_or_network(client, world, settings, monkeypatch):
    import httpx

    from payments import channels

    user = as_user(client, world["p1_admin"])
    not_configured = user.post(url("merchant_test_connection", world["a"].pk), HTTP_HX_REQUEST="true")
    assert "Not configured" in not_configured.content.decode()

    credentials_update(owner=world["a"], values={"wechat_api_v2_key": V2_KEY}, actor=None, actor_label="test")

    def refuse(request):
        raise httpx.ConnectError("connection refused", request=request)

    monkeypatch.setattr(channels, "upstream_client", httpx.Client(transport=httpx.MockTransport(refuse)))
    unreachable = user.post(url("merchant_test_connection", world["a"].pk))  # without HTMX: message + redirect
    assert unreachable.status_code == 302
    page = user.get(unreachable["Location"]).content.decode()
    assert "Unreachable: the channel could not be reached." in page


# --- stores --------------------------------------------------------------------------------------------------------


def test_store_create_and_duplicate_store_id(client, world):
    user = as_user(client, world["a_admin"])
    fields = {"merchant": world["a"].pk, "store_id": "A-002", "name": "二号店", "area_code": "440305"}

    created = user.post(url("store_create"), fields)
    duplicate = user.post(url("store_create"), {**fields, "name": "Another"})

    store = Store.objects.get(merchant=world["a"], store_id="A-002")
    assert created["Location"] == url("store_detail", store.pk)
    assert duplicate.status_code == 400
    assert duplicate.context["form"].errors["store_id"] == ["This merchant already has a store with this store ID."]
    assert 'id="store_id-error"' in duplicate.content.decode()
    assert Store.objects.filter(store_id="A-002").count() == 1
    assert AuditLog.objects.filter(action="store.create").count() == 1


def test_store_create_only_for_merchants_in_scope(client, world):
    response = as_user(client, world["a_admin"]).post(
        url("store_create"), {"merchant": world["b"].pk, "store_id": "X-1", "name": "Sneaky"}
    )

    assert response.status_code == 400
    assert "merchant" in response.context["form"].errors
    assert not Store.objects.filter(store_id="X-1").exists()


def test_store_create_length_limits(client, world):
    response = as_user(client, world["p1_admin"]).post(
        url("store_create"), {"merchant": world["a"].pk, "store_id": "S" * 33, "name": "N" * 129}
    )

    assert set(response.context["form"].errors) == {"store_id", "name"}


def test_store_edit_and_toggle_are_audited(client, world):
    user = as_user(client, world["a_admin"])

    user.post(url("store_edit", world["store_a"].pk), {"name": "新名字", "address": "深圳", "area_code": "440305"})
    user.post(url("store_toggle", world["store_a"].pk))

    store = Store.objects.get(pk=world["store_a"].pk)
    assert (store.name, store.address, store.is_active) == ("新名字", "深圳", False)
    assert list(AuditLog.objects.filter(object_type="Store").values_list("action", flat=True).order_by("id")) == [
        "store.update",
        "store.disable",
    ]


def test_store_payscore_materiel_url_is_edited_in_the_store_form(client, world):
    user = as_user(client, world["a_admin"])
    edit = url("store_edit", world["store_a"].pk)
    assert 'name="payscore_materiel_url"' in user.get(edit).content.decode()

    too_long = user.post(edit, {"name": "店", "payscore_materiel_url": "https://m.test/" + "a" * 241})
    assert set(too_long.context["form"].errors) == {"payscore_materiel_url"}
    user.post(edit, {"name": "店", "payscore_materiel_url": "https://m.test/policy?id=1"})
    assert Store.objects.get(pk=world["store_a"].pk).payscore_materiel_url == "https://m.test/policy?id=1"
    user.post(edit, {"name": "店", "payscore_materiel_url": ""})
    assert Store.objects.get(pk=world["store_a"].pk).payscore_materiel_url == ""


# --- devices -------------------------------------------------------------------------------------------------------


def test_register_shows_the_secret_once(client, world):
    user = as_user(client, world["a_admin"])

    posted = user.post(url("device_register", world["store_a"].pk), {"device_id": "POS-7", "name": "Front desk"})

    device = Device.objects.get(device_id="POS-7")
    secret = device.secret.reveal()
    # POST → redirect → GET: the secret waits in the session encrypted, never in plain text
    assert posted.status_code == 302 and secret not in posted.content.decode()
    assert secret not in str(dict(user.session.items()))
    response = user.get(posted["Location"])
    body = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert f'<div class="secret-once" id="device-secret">{secret}</div>' in body
    assert "device_id=POS-7" in body and "/api/terminal/v1/" in body
    audit = AuditLog.objects.get(action="device.register", object_id=str(device.pk))
    assert audit.actor == world["a_admin"] and secret not in str(audit.details)
    # the secret cannot be obtained again: not by reloading its page, not anywhere else
    reloaded = user.get(posted["Location"])
    assert reloaded.status_code == 200 and secret not in reloaded.content.decode()
    assert 'id="secret-gone"' in reloaded.content.decode()
    assert Device.objects.filter(store=world["store_a"]).count() == 2  # the fixture's device and POS-7: no second
    for page in (url("store_detail", world["store_a"].pk), url("store_list"), reverse("portal:home")):
        assert secret not in user.get(page).content.decode()


def test_a_secret_page_is_for_its_session_and_device_only_and_expires(client, world, monkeypatch):
    from django.test import Client

    from portal import shown_once

    user = as_user(client, world["a_admin"])
    posted = user.post(url("device_register", world["store_a"].pk), {"device_id": "POS-8"})
    secret = Device.objects.get(device_id="POS-8").secret.reveal()
    location = posted["Location"]

    # another user of the same merchant (another session) gets the gone page; a foreign merchant's admin a 404
    colleague = as_user(Client(), world["a_admin"])
    assert secret not in colleague.get(location).content.decode()
    assert as_user(Client(), world["b_admin"]).get(location).status_code == 404
    # a token for another device shows nothing
    pos8 = Device.objects.get(device_id="POS-8")
    other = location.replace(f"/devices/{pos8.pk}/", f"/devices/{world['device_a'].pk}/")
    assert secret not in user.get(other).content.decode()
    # after five minutes the hand-off has expired
    later = shown_once.time.time() + 301
    monkeypatch.setattr(shown_once.time, "time", lambda: later)
    assert secret not in user.get(location).content.decode()


def test_register_duplicate_device_id_is_a_field_error(client, world):
    response = as_user(client, world["a_admin"]).post(
        url("device_register", world["store_a"].pk), {"device_id": world["device_b"].device_id}
    )

    assert response.status_code == 400
    assert response.context["register_form"].errors["device_id"] == ["A device with this id already exists."]
    assert world["secret_b"] not in response.content.decode()


def test_rotate_needs_confirmation_and_shows_the_new_secret_once(client, world):
    user = as_user(client, world["a_admin"])
    device = world["device_a"]

    confirm_page = user.get(url("device_rotate", device.pk))
    assert confirm_page.status_code == 200 and world["secret_a"] not in confirm_page.content.decode()
    assert Device.objects.get(pk=device.pk).secret.reveal() == world["secret_a"]

    posted = user.post(url("device_rotate", device.pk), {"confirm": "yes"})
    response = user.get(posted["Location"])

    new_secret = Device.objects.get(pk=device.pk).secret.reveal()
    assert new_secret != world["secret_a"]
    assert new_secret in response.content.decode() and response["Cache-Control"] == "no-store"
    # reloading neither rotates again nor shows the secret again
    assert new_secret not in user.get(posted["Location"]).content.decode()
    assert Device.objects.get(pk=device.pk).secret.reveal() == new_secret
    assert AuditLog.objects.filter(action="device.rotate_secret", object_id=str(device.pk)).count() == 1
    assert new_secret not in user.get(url("store_detail", world["store_a"].pk)).content.decode()


def test_toggle_device_is_audited(client, world):
    user = as_user(client, world["p1_admin"])

    user.post(url("device_toggle", world["device_a"].pk))
    assert not Device.objects.get(pk=world["device_a"].pk).is_active
    user.post(url("device_toggle", world["device_a"].pk))
    assert Device.objects.get(pk=world["device_a"].pk).is_active

    assert list(
        AuditLog.objects.filter(object_id=str(world["device_a"].pk), action__startswith="device.")
        .exclude(action="device.register")
        .values_list("action", flat=True)
        .order_by("id")
    ) == ["device.disable", "device.enable"]


def test_no_device_secret_on_any_ordinary_page(client, world):
    user = as_user(client, world["root"])
    pages = [url(name, world[key].pk) if key else url(name) for name, key in GET_PAGES]
    for page in [*pages, reverse("portal:home")]:
        body = user.get(page).content.decode()
        assert world["secret_a"] not in body and world["secret_b"] not in body, page


def test_store_detail_lists_recent_payments(client, world):
    from payments.models import Payment

    Payment.objects.create(
        merchant=world["a"], store=world["store_a"], channel=world["a"].channel, method=Payment.Method.FACE,
        out_trade_no="ORDER-123", total_fee=1234, body="coffee", request_fingerprint="x" * 64,
    )  # fmt: skip

    body = as_user(client, world["a_staff"]).get(url("store_detail", world["store_a"].pk)).content.decode()

    assert "ORDER-123" in body and "¥12.34" in body


# --- language -------------------------------------------------------------------------------------------------------


def test_chinese_by_default_english_on_request(client, world):
    login_verified(client, world["p1_admin"])

    chinese = client.get(url("merchant_list")).content.decode()
    client.cookies["django_language"] = "en"
    english = client.get(url("merchant_list")).content.decode()

    assert "接入商户" in chinese and "Onboard a merchant" not in chinese
    assert "Onboard a merchant" in english and "接入商户" not in english


def test_service_errors_are_translated(client, world):
    login_verified(client, world["p1_admin"])

    response = client.post(url("merchant_create"), {"name": "X", "channel": "WECHAT_DIRECT"})

    assert "微信直连商户必填。" in response.content.decode()
