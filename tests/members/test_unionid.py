"""unionid resolution during identify (GET /v3/facemch/users/{face_sid}), against the built-in WeChat sandbox through
`payments.channels.upstream_client` (real v3 request signatures and signed, verified responses). A failed lookup is
recorded as an event and never fails the identification."""

import httpx
import pytest

from members.models import Member, MemberEvent
from payments import channels
from sandbox import identity
from tests.factories import MerchantFactory, StoreFactory
from tests.members.conftest import configure_wechat_credentials

pytestmark = pytest.mark.django_db


@pytest.fixture
def merchant():
    return MerchantFactory()


@pytest.fixture
def client_and_device(terminal_for, merchant):
    return terminal_for(StoreFactory(merchant=merchant))


def failure_events():
    return list(
        MemberEvent.objects.filter(kind="UNIONID_LOOKUP_FAILED").values_list("err_code", "err_message", "device")
    )


def test_unionid_is_resolved_and_stored(wechat_sandbox, merchant, client_and_device):
    # given a merchant onboarded with the sandbox and a user whose face the SDK recognised
    configure_wechat_credentials(merchant)
    client, _ = client_and_device
    user = identity.new_user()
    openid = identity.openid_for(user, merchant.appid)

    # when the terminal reports the identification with the SDK's token and ask_unionid
    response = client.post(
        "members/identify", {"openid": openid, "face_sid": identity.face_sid_for(user), "ask_unionid": True}
    )

    # then the member carries the user's union_id and no failure was recorded
    assert response.status_code == 200
    body = response.json()
    assert body["unionid_lookup"] == "SUCCESS"
    assert body["member"]["unionid"] == identity.union_id_for(user)
    assert Member.objects.get().unionid == identity.union_id_for(user)
    assert failure_events() == []
    assert list(MemberEvent.objects.values_list("kind", flat=True)) == ["IDENTIFIED"]


def test_known_unionid_is_not_looked_up_again(wechat_sandbox, monkeypatch, merchant, client_and_device):
    # given a member whose unionid is already known
    configure_wechat_credentials(merchant)
    client, _ = client_and_device
    user = identity.new_user()
    openid = identity.openid_for(user, merchant.appid)
    client.post("members/identify", {"openid": openid, "face_sid": identity.face_sid_for(user), "ask_unionid": True})
    calls = []
    counting = httpx.Client(transport=httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(500)))
    monkeypatch.setattr(channels, "upstream_client", counting)

    # when the user is identified again with ask_unionid
    response = client.post(
        "members/identify", {"openid": openid, "face_sid": identity.face_sid_for(user), "ask_unionid": True}
    )

    # then no upstream call is made and the stored unionid is returned
    assert response.json()["unionid_lookup"] == "ALREADY_KNOWN"
    assert response.json()["member"]["unionid"] == identity.union_id_for(user)
    assert calls == []


def test_rejected_lookup_is_recorded_and_identification_still_succeeds(wechat_sandbox, merchant, client_and_device):
    # given an onboarded merchant and a face_sid WeChat does not know
    configure_wechat_credentials(merchant)
    client, device = client_and_device

    # when the terminal asks for the unionid with it
    response = client.post("members/identify", {"openid": "oUser_1", "face_sid": "not-a-face-sid", "ask_unionid": True})

    # then the visit counts, the member has no unionid, and the sandbox's signed refusal is recorded
    assert response.status_code == 200
    assert (response.json()["visits"], response.json()["unionid_lookup"]) == (1, "FAILED")
    assert Member.objects.get().unionid == ""
    assert failure_events() == [("PARAM_ERROR", "face_sid无效", device.pk)]


def test_face_sid_of_another_user_is_never_attached(wechat_sandbox, merchant, client_and_device):
    # given a face_sid that belongs to a different user than the reported openid
    configure_wechat_credentials(merchant)
    client, device = client_and_device
    someone_else = identity.new_user()
    openid = identity.openid_for(identity.new_user(), merchant.appid)

    response = client.post(
        "members/identify", {"openid": openid, "face_sid": identity.face_sid_for(someone_else), "ask_unionid": True}
    )

    assert response.json()["unionid_lookup"] == "FAILED"
    assert Member.objects.get().unionid == ""
    assert failure_events() == [("OPENID_MISMATCH", "face_sid does not belong to this openid.", device.pk)]


def test_merchant_without_credentials_records_the_failure(wechat_sandbox, client_and_device):
    # given a merchant that has no channel credentials
    client, device = client_and_device

    response = client.post("members/identify", {"openid": "oUser_1", "face_sid": "fsid-any", "ask_unionid": True})

    assert response.status_code == 200
    assert response.json()["unionid_lookup"] == "FAILED"
    assert failure_events() == [
        ("CHANNEL_NOT_CONFIGURED", "This merchant has no channel credentials configured.", device.pk)
    ]


def test_upstream_timeout_is_recorded(monkeypatch, merchant, client_and_device):
    # given an onboarded merchant whose upstream does not answer in time
    configure_wechat_credentials(merchant)
    client, device = client_and_device

    def time_out(request):
        raise httpx.ReadTimeout("no answer", request=request)

    monkeypatch.setattr(channels, "upstream_client", httpx.Client(transport=httpx.MockTransport(time_out)))

    response = client.post("members/identify", {"openid": "oUser_1", "face_sid": "fsid-any", "ask_unionid": True})

    assert response.status_code == 200
    assert (response.json()["visits"], response.json()["unionid_lookup"]) == (1, "FAILED")
    assert failure_events() == [("TIMEOUT", "ReadTimeout", device.pk)]


def test_without_ask_unionid_nothing_is_looked_up(monkeypatch, client_and_device):
    calls = []
    counting = httpx.Client(transport=httpx.MockTransport(lambda request: calls.append(request) or httpx.Response(500)))
    monkeypatch.setattr(channels, "upstream_client", counting)
    client, _ = client_and_device

    response = client.post("members/identify", {"openid": "oUser_1", "face_sid": "fsid-any"})

    assert response.json()["unionid_lookup"] == "NOT_REQUESTED"
    assert calls == []
    assert failure_events() == []
