"""Platform certificates kept current: downloaded, merged under the row's lock (several serials valid during a
rotation, expired ones dropped), failures recorded without touching what works, public-key-only rows left alone, and
the status the console and the alert read. The helpers here are shared with the alert and console tests."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.db import connection, transaction
from django.utils import timezone

from payments import channels, platform_certificates, tasks
from payments.gateways import wechatpay_v3 as v3
from payments.platform_certificates import Mode, platform_key_status
from portal import credentials as cred
from portal import services
from portal.models import AuditLog, ChannelCredentials, Merchant
from portal.selectors import signing_credentials_for
from tests.factories import MerchantFactory, ServiceProviderFactory
from tests.shop import cached_key_and_certificate

API_V3_KEY = "0123456789abcdefghijklmnopqrstuv"
PUB_KEY_ID = "PUB_KEY_ID_0114232134912410000000000000"


@dataclass(frozen=True)
class Platform:
    """A WeChat Pay platform certificate and its private key."""

    private_pem: str
    cert_pem: str
    serial: str
    not_after: dt.datetime


def platform_certificate(days: float, name: str = "Wechatpay") -> Platform:
    """A certificate valid from yesterday until `days` from now (negative: already expired)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    not_after = now + dt.timedelta(days=days)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(min(now, not_after) - dt.timedelta(days=1))
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return Platform(
        private_pem=cred.private_key_pem(key),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        serial=format(cert.serial_number, "X"),
        not_after=cert.not_valid_after_utc,
    )


@dataclass
class FakeWechat:
    """Plays WeChat's GET /v3/certificates: checks the request is signed by a merchant it knows, lists `listed`
    (each encrypted with the APIv3 key) and signs the answer with `signer` (default: the first listed). `refusal`
    (status, code) answers a signed refusal instead — 404 is WeChat's for a merchant without certificates (public-key
    mode); `before_answer` runs before each answer (tests use it to line threads up)."""

    merchant_certs: dict[str, str] = field(default_factory=dict)  # serial → merchant API certificate
    listed: list[Platform] = field(default_factory=list)
    signer: Platform | None = None
    refusal: tuple[int, str] | None = None
    calls: list[str] = field(default_factory=list)  # the mchid of each request
    before_answer: object = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "GET" and request.url.path.endswith("/v3/certificates")
        verified = v3.verify_request_authorization(
            request.headers["Authorization"],
            method="GET",
            path_with_query=request.url.raw_path.decode(),
            body=b"",
            merchant_keys=self.merchant_certs,
        )
        self.calls.append(verified.mchid)
        if callable(self.before_answer):
            self.before_answer()
        signer = self.signer or self.listed[0]
        if self.refusal is not None:
            status, code = self.refusal
            content = json.dumps({"code": code, "message": "证书不存在" if status == 404 else "无权限"}).encode()
            headers = v3.sign_response(content, serial=signer.serial, private_key=signer.private_pem)
            return httpx.Response(status, content=content, headers=headers)
        data = [
            {
                "serial_no": platform.serial,
                "effective_time": "2024-01-01T00:00:00+08:00",
                "expire_time": platform.not_after.isoformat(),
                "encrypt_certificate": v3.encrypt_notification_resource(
                    platform.cert_pem, api_v3_key=API_V3_KEY, associated_data="certificate"
                ),
            }
            for platform in self.listed
        ]
        content = json.dumps({"data": data}).encode()
        headers = v3.sign_response(content, serial=signer.serial, private_key=signer.private_pem)
        return httpx.Response(200, content=content, headers=headers)


def wechat_credentials(owner, fake: FakeWechat, *, certificates=(), public_key: Platform | None = None):
    """Credentials that can sign v3 requests (the merchant's key known to `fake`), with these platform keys."""
    key_pem, cert_pem = cached_key_and_certificate("platform-keys-merchant")
    values = {"wechat_api_v3_key": API_V3_KEY, "wechat_private_key": key_pem, "wechat_certificate": cert_pem}
    if certificates:
        values["wechat_platform_certificates"] = "".join(platform.cert_pem for platform in certificates)
    if public_key is not None:
        public = x509.load_pem_x509_certificate(public_key.cert_pem.encode()).public_key()
        values["wechat_platform_public_key"] = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        values["wechat_platform_public_key_id"] = PUB_KEY_ID
    credentials = services.credentials_update(owner=owner, values=values, actor=None, actor_label="test")
    fake.merchant_certs[credentials.wechat_cert_serial] = cert_pem
    return credentials


@pytest.fixture
def wechat(monkeypatch) -> FakeWechat:
    fake = FakeWechat()
    monkeypatch.setattr(channels, "upstream_client", httpx.Client(transport=httpx.MockTransport(fake)))
    return fake


def stored_serials(credentials: ChannelCredentials) -> list[str]:
    credentials.refresh_from_db()
    return [cert.serial for cert in platform_key_status(credentials).certificates]


def refresh_audits() -> list[AuditLog]:
    return list(AuditLog.objects.filter(action="credentials.platform_keys_refresh").order_by("id"))


# --- refresh ---------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_refresh_stores_what_wechat_lists_and_audits_it(wechat):
    provider = ServiceProviderFactory()
    credentials = wechat_credentials(provider, wechat)
    current = platform_certificate(days=1000)
    wechat.listed = [current]

    outcome = platform_certificates.refresh(credentials, actor_label="system")

    assert (outcome.status, outcome.added, outcome.serials) == ("REFRESHED", [current.serial], [current.serial])
    assert wechat.calls == [provider.wechat_mch_id]
    credentials.refresh_from_db()
    assert channels.platform_keys(credentials) == {current.serial: current.cert_pem}
    assert credentials.wechat_platform_keys_refreshed_at is not None
    assert credentials.wechat_platform_keys_error == "" and credentials.wechat_platform_keys_failing_since is None
    [audit] = refresh_audits()
    assert (audit.actor_label, audit.provider, audit.object_type) == ("system", provider, "ServiceProvider")
    assert audit.details == {"result": "OK", "certificates_added": [current.serial], "certificates_removed": []}


@pytest.mark.django_db
def test_during_rotation_both_serials_are_kept_until_wechat_stops_listing_the_old_one(wechat):
    merchant = MerchantFactory()
    old, new = platform_certificate(days=5, name="old"), platform_certificate(days=1800, name="new")
    credentials = wechat_credentials(merchant, wechat, certificates=[old])
    wechat.listed, wechat.signer = [old, new], old  # published before WeChat signs with it

    outcome = platform_certificates.refresh(credentials)

    assert (outcome.added, outcome.removed) == ([new.serial], [])
    assert stored_serials(credentials) == [new.serial, old.serial]
    assert set(channels.platform_keys(credentials)) == {old.serial, new.serial}

    wechat.listed, wechat.signer = [new], new  # the old one has expired: WeChat lists only the new one
    outcome = platform_certificates.refresh(credentials)

    assert (outcome.status, outcome.added, outcome.removed) == ("REFRESHED", [], [old.serial])
    assert stored_serials(credentials) == [new.serial]
    assert set(channels.platform_keys(credentials)) == {new.serial}


@pytest.mark.django_db
def test_expired_and_no_longer_listed_certificates_are_dropped(wechat):
    merchant = MerchantFactory()
    expired, current, new = platform_certificate(days=-1), platform_certificate(days=30), platform_certificate(600)
    credentials = wechat_credentials(merchant, wechat, certificates=[expired, current])
    wechat.listed, wechat.signer = [current, new], current

    outcome = platform_certificates.refresh(credentials)

    assert (outcome.added, outcome.removed) == ([new.serial], [expired.serial])
    assert stored_serials(credentials) == [new.serial, current.serial]
    assert refresh_audits()[-1].details["certificates_removed"] == [expired.serial]


@pytest.mark.django_db
def test_an_empty_list_keeps_what_is_stored(wechat):
    current = platform_certificate(days=30)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.listed, wechat.signer = [], current

    outcome = platform_certificates.refresh(credentials)

    assert (outcome.added, outcome.removed) == ([], [])
    assert stored_serials(credentials) == [current.serial]


@pytest.mark.django_db
def test_a_refresh_that_finds_nothing_new_is_not_audited(wechat):
    current = platform_certificate(days=1000)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.listed = [current]

    outcome = platform_certificates.refresh(credentials)

    assert (outcome.status, outcome.changed) == ("REFRESHED", False)
    assert refresh_audits() == []
    credentials.refresh_from_db()
    assert credentials.wechat_platform_keys_refreshed_at is not None


@pytest.mark.django_db
def test_a_failed_refresh_keeps_the_certificates_and_records_why(wechat):
    current = platform_certificate(days=1000)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.listed, wechat.signer = [platform_certificate(days=900)], platform_certificate(days=900, name="impostor")

    first = platform_certificates.refresh(credentials)
    credentials.refresh_from_db()
    since = credentials.wechat_platform_keys_failing_since
    platform_certificates.refresh(credentials)

    assert (first.status, first.code) == ("FAILED", "BAD_SIGNATURE")
    assert stored_serials(credentials) == [current.serial]
    assert credentials.wechat_platform_keys_error.startswith("BAD_SIGNATURE: ")
    assert credentials.wechat_platform_keys_refreshed_at is None
    assert since is not None and credentials.wechat_platform_keys_failing_since == since  # the first failure's time
    assert refresh_audits() == []  # the beat's failures are on the row (and alerted), not in the audit log

    wechat.listed, wechat.signer = [current], None
    assert platform_certificates.refresh(credentials).status == "REFRESHED"
    credentials.refresh_from_db()
    assert (credentials.wechat_platform_keys_error, credentials.wechat_platform_keys_failing_since) == ("", None)


@pytest.mark.django_db
def test_a_refresh_a_person_asked_for_is_audited_whatever_its_result(wechat, django_user_model):
    user = django_user_model.objects.create_user("operator")
    current = platform_certificate(days=1000)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.listed, wechat.refusal = [current], (403, "NO_AUTH")

    outcome = platform_certificates.refresh(credentials, actor=user)

    assert (outcome.status, outcome.code) == ("FAILED", "NO_AUTH")
    [audit] = refresh_audits()
    assert (audit.actor, audit.actor_label) == (user, "operator")
    assert audit.details == {
        "result": "FAILED",
        "code": "NO_AUTH",
        "certificates_added": [],
        "certificates_removed": [],
    }


@pytest.mark.django_db
def test_public_key_only_is_not_downloaded_but_the_transition_is(wechat):
    public_key, current = platform_certificate(days=3000, name="public key"), platform_certificate(days=1000)
    only_key = wechat_credentials(MerchantFactory(), wechat, public_key=public_key)
    both = wechat_credentials(MerchantFactory(), wechat, certificates=[current], public_key=public_key)
    wechat.listed = [current]

    skipped = platform_certificates.refresh(only_key)
    refreshed = platform_certificates.refresh(both)

    assert (skipped.status, skipped.code) == ("SKIPPED", "PUBLIC_KEY_ONLY")
    assert refreshed.status == "REFRESHED"
    assert wechat.calls == [both.merchant.mch_id]
    assert (platform_key_status(only_key).mode, platform_key_status(both).mode) == (Mode.PUBLIC_KEY, Mode.TRANSITION)


@pytest.mark.django_db
def test_wechat_having_no_certificates_is_a_failure_until_the_public_key_is_entered(wechat):
    current, public_key = platform_certificate(days=1000), platform_certificate(days=3000, name="public key")
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.listed, wechat.refusal = [current], (404, "RESOURCE_NOT_EXISTS")

    failed = platform_certificates.refresh(credentials)
    credentials.refresh_from_db()
    status = platform_key_status(credentials)

    assert (failed.status, failed.code) == ("FAILED", "NO_CERTIFICATES")
    assert status.error_code == "NO_CERTIFICATES" and "微信支付公钥" in status.error_text

    wechat_credentials(credentials.merchant, wechat, public_key=public_key)  # the transition
    done = platform_certificates.refresh(credentials)

    assert (done.status, done.code) == ("SKIPPED", "NO_CERTIFICATES")
    credentials.refresh_from_db()
    assert (credentials.wechat_platform_keys_error, credentials.wechat_platform_keys_failing_since) == ("", None)
    assert stored_serials(credentials) == [current.serial]  # kept until it expires
    assert platform_key_status(credentials).warning_due is False


@pytest.mark.django_db
def test_refresh_all_covers_providers_and_direct_merchants_and_goes_on_after_a_failure(wechat):
    current = platform_certificate(days=1000)
    provider, direct, broken = ServiceProviderFactory(), MerchantFactory(), MerchantFactory()
    for owner in (provider, direct, broken):
        wechat_credentials(owner, wechat)
    unsigned = ChannelCredentials.objects.create(merchant=MerchantFactory(), wechat_api_v3_key=API_V3_KEY)
    ChannelCredentials.objects.filter(merchant=broken).update(wechat_private_key="")  # cannot sign any more
    wechat_credentials(MerchantFactory(), wechat, public_key=platform_certificate(days=3000))
    wechat.listed = [current]

    counts = tasks.refresh_platform_certificates()

    assert counts == {"refreshed": 2, "failed": 0, "skipped": 2}
    assert sorted(wechat.calls) == sorted([provider.wechat_mch_id, direct.mch_id])
    assert platform_key_status(ChannelCredentials.objects.get(provider=provider)).certificates[0].serial == (
        current.serial
    )
    assert not ChannelCredentials.objects.get(pk=unsigned.pk).wechat_platform_certificates


@pytest.mark.django_db
def test_the_frequent_check_downloads_only_what_is_due(wechat, settings):
    """New credentials get certificates at the next check (minutes), healthy ones once a period, failing ones at
    every check until they work again."""
    settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS = 6 * 3600
    wechat.listed = [platform_certificate(days=1000)]
    fresh, stale, failing, new = (wechat_credentials(MerchantFactory(), wechat) for _ in range(4))
    now = platform_certificates._now()
    ChannelCredentials.objects.filter(pk=fresh.pk).update(wechat_platform_keys_refreshed_at=now - dt.timedelta(hours=5))
    ChannelCredentials.objects.filter(pk=stale.pk).update(wechat_platform_keys_refreshed_at=now - dt.timedelta(hours=6))
    ChannelCredentials.objects.filter(pk=failing.pk).update(
        wechat_platform_keys_refreshed_at=now - dt.timedelta(hours=1), wechat_platform_keys_failing_since=now
    )

    counts = platform_certificates.refresh_all(now=now)

    assert counts == {"refreshed": 3, "failed": 0, "skipped": 0}
    assert sorted(wechat.calls) == sorted(c.merchant.mch_id for c in (stale, failing, new))
    assert platform_certificates.refresh_all(now=now + dt.timedelta(minutes=5)) == {
        "refreshed": 0,
        "failed": 0,
        "skipped": 0,
    }  # all fresh now: nothing downloaded


@pytest.mark.django_db
def test_one_row_raising_does_not_stop_the_others(wechat, monkeypatch):
    first, second = wechat_credentials(MerchantFactory(), wechat), wechat_credentials(MerchantFactory(), wechat)
    wechat.listed = [platform_certificate(days=1000)]
    real = platform_certificates.refresh

    def refresh(credentials, **kwargs):
        if credentials.pk == first.pk:
            raise RuntimeError("a bug")
        return real(credentials, **kwargs)

    monkeypatch.setattr(platform_certificates, "refresh", refresh)

    assert platform_certificates.refresh_all() == {"refreshed": 1, "failed": 1, "skipped": 0}
    assert stored_serials(second) == [wechat.listed[0].serial]


@pytest.mark.django_db
def test_an_unusable_stored_key_is_recorded_as_a_local_error(wechat):
    credentials = wechat_credentials(MerchantFactory(), wechat)
    ChannelCredentials.objects.filter(pk=credentials.pk).update(wechat_private_key="not a key")

    outcome = platform_certificates.refresh(credentials)

    assert (outcome.status, outcome.code) == ("FAILED", "LOCAL_ERROR")
    credentials.refresh_from_db()
    assert credentials.wechat_platform_keys_error == "LOCAL_ERROR: ValueError"
    assert wechat.calls == []


@pytest.mark.django_db
def test_the_sandboxs_answer_verifies_end_to_end(make_shop):
    """The sandbox plays WeChat over HTTP: signed request, encrypted certificates, signed answer."""
    shop = make_shop(Merchant.Channel.WECHAT_DIRECT)
    credentials = signing_credentials_for(shop.merchant)
    stored = stored_serials(credentials)

    outcome = platform_certificates.refresh(credentials)

    assert (outcome.status, outcome.serials) == ("REFRESHED", stored)
    assert shop.upstream_calls() == ["v3/certificates"]


# --- status ----------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("days", "due"), [(400, False), (31, False), (29, True), (-2, True)])
def test_a_warning_is_due_when_the_newest_certificate_expires_within_the_warning_days(wechat, days, due):
    older = platform_certificate(days=days - 10)  # at 31 days it expires within the period: only the newest counts
    newest = platform_certificate(days=days)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[older, newest])

    status = platform_key_status(credentials)

    assert status.mode is Mode.CERTIFICATE
    assert [c.serial for c in status.certificates] == [newest.serial, older.serial]
    assert status.certificates[0].days_left == days - 1  # whole days left, a moment after it was made
    assert (status.expiring == status.certificates[0] if due else status.expiring is None) and status.warning_due is due


@pytest.mark.django_db
def test_no_expiry_warning_in_the_transition_or_with_a_public_key_only(wechat):
    expiring, public_key = platform_certificate(days=3), platform_certificate(days=3000)
    both = wechat_credentials(MerchantFactory(), wechat, certificates=[expiring], public_key=public_key)

    status = platform_key_status(both)

    assert (status.mode, status.public_key_id, status.warning_due) == (Mode.TRANSITION, PUB_KEY_ID, False)


@pytest.mark.django_db
def test_refreshing_is_failing_once_two_periods_passed_without_a_success(wechat, settings):
    settings.PLATFORM_CERTIFICATE_REFRESH_SECONDS = 3600
    current = platform_certificate(days=1000)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.refusal, wechat.listed = (403, "NO_AUTH"), [current]
    platform_certificates.refresh(credentials)
    credentials.refresh_from_db()
    now = timezone.now()

    soon, later = platform_key_status(credentials, now), platform_key_status(credentials, now + dt.timedelta(hours=2))

    assert (soon.refresh_failing, later.refresh_failing) == (False, True)
    assert later.error_code == "NO_AUTH" and later.warning_due
    assert later.error_text == "微信支付拒绝了下载请求。"  # WeChat's own code: a refusal, in the site's language


# --- concurrency (PostgreSQL: real row locks) ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_refresh_applies_under_the_rows_lock_to_what_another_writer_stored_meanwhile(requires_postgres, wechat):
    """The download happens outside the lock; applying it waits for the row and re-reads it: what it reports as
    added and removed is measured against what is stored by then (a certificate someone pasted meanwhile, not listed
    by WeChat, is reported removed), and what the other writer changed besides the certificates (the public key
    entered at the same moment) is kept, not overwritten."""
    current, theirs, ours = platform_certificate(1000), platform_certificate(1500), platform_certificate(2000)
    credentials = wechat_credentials(MerchantFactory(), wechat, certificates=[current])
    wechat.listed, wechat.signer = [current, ours], current
    downloaded, results = threading.Event(), []
    wechat.before_answer = downloaded.set

    def worker():
        try:
            results.append(platform_certificates.refresh(credentials))
        finally:
            connection.close()

    with transaction.atomic():
        row = ChannelCredentials.objects.select_for_update().get(pk=credentials.pk)  # another writer
        thread = threading.Thread(target=worker)
        thread.start()
        assert downloaded.wait(10)
        time.sleep(0.5)
        assert thread.is_alive(), "the refresh must wait for the row's lock"
        row.wechat_platform_certificates += theirs.cert_pem
        row.wechat_platform_public_key_id = PUB_KEY_ID
        row.save(update_fields=["wechat_platform_certificates", "wechat_platform_public_key_id"])
    thread.join(10)

    assert [(r.status, r.added, r.removed) for r in results] == [("REFRESHED", [ours.serial], [theirs.serial])]
    assert stored_serials(credentials) == [ours.serial, current.serial]
    assert credentials.wechat_platform_public_key_id == PUB_KEY_ID
