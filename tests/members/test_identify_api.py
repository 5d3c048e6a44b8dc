"""POST /api/terminal/v1/members/identify: upsert, visit counting, merchant separation, validation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from members.models import Member, MemberEvent
from tests.factories import StoreFactory

pytestmark = pytest.mark.django_db

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def test_first_identification_creates_the_member_and_records_one_visit(terminal, device_and_secret):
    # given a device and an openid never seen at its merchant
    device, _ = device_and_secret

    # when the terminal reports the identification
    response = terminal.post("members/identify", {"openid": OPENID, "nickname": "小明"})

    # then a member exists with one visit, not yet activated, and the terminal is told to offer activation
    assert response.status_code == 200
    body = response.json()
    member = Member.objects.get()
    assert body == {
        "is_member": False,
        "member": {
            "id": member.pk,
            "openid": OPENID,
            "sub_openid": "",
            "unionid": "",
            "nickname": "小明",
            "first_seen_at": body["member"]["first_seen_at"],
            "last_seen_at": body["member"]["last_seen_at"],
            "visit_count": 1,
            "card_activated": False,
            "activated_at": None,
        },
        "visits": 1,
        "activated": False,
        "offer_activation": True,
        "unionid_lookup": "NOT_REQUESTED",
    }
    assert member.merchant == device.store.merchant
    assert member.first_seen_at == member.last_seen_at
    assert list(MemberEvent.objects.values_list("member", "kind", "store", "device")) == [
        (member.pk, "IDENTIFIED", device.store_id, device.pk)
    ]


def test_returning_member_counts_the_visit_and_moves_last_seen(terminal):
    # given a member identified once, a while ago
    terminal.post("members/identify", {"openid": OPENID, "nickname": "old name"})
    earlier = timezone.now() - timedelta(days=3)
    Member.objects.update(first_seen_at=earlier, last_seen_at=earlier)

    # when the same openid is identified again, with a new nickname and a sub_openid
    before = timezone.now()
    response = terminal.post("members/identify", {"openid": OPENID, "nickname": "new name", "sub_openid": "oSub_1"})

    # then it is the same member: two visits, last_seen moved to now, first_seen kept, nickname updated
    body = response.json()
    assert response.status_code == 200
    assert (body["is_member"], body["visits"], body["activated"]) == (True, 2, False)
    member = Member.objects.get()
    assert member.visit_count == 2
    assert member.first_seen_at == earlier
    assert member.last_seen_at >= before
    assert (member.nickname, member.sub_openid) == ("new name", "oSub_1")
    assert MemberEvent.objects.filter(member=member, kind="IDENTIFIED").count() == 2


def test_blank_nickname_keeps_the_known_one(terminal):
    terminal.post("members/identify", {"openid": OPENID, "nickname": "小明"})

    terminal.post("members/identify", {"openid": OPENID})

    assert Member.objects.get().nickname == "小明"


def test_same_openid_at_another_merchant_is_a_separate_member(terminal, device_and_secret, terminal_for):
    # given merchant A's terminal identified the openid
    device_a, _ = device_and_secret
    terminal.post("members/identify", {"openid": OPENID})
    # and a terminal of merchant B
    terminal_b, device_b = terminal_for()

    # when merchant B's terminal identifies the same openid
    response = terminal_b.post("members/identify", {"openid": OPENID})

    # then B gets its own member: new to B, one visit each
    assert (response.json()["is_member"], response.json()["visits"]) == (False, 1)
    assert sorted(Member.objects.values_list("merchant_id", "openid", "visit_count")) == sorted(
        [(device_a.store.merchant_id, OPENID, 1), (device_b.store.merchant_id, OPENID, 1)]
    )


def test_second_store_of_the_same_merchant_shares_the_member(terminal, device_and_secret, terminal_for):
    device, _ = device_and_secret
    other_store_terminal, other_device = terminal_for(StoreFactory(merchant=device.store.merchant))

    terminal.post("members/identify", {"openid": OPENID})
    response = other_store_terminal.post("members/identify", {"openid": OPENID})

    assert (response.json()["is_member"], response.json()["visits"]) == (True, 2)
    assert Member.objects.count() == 1
    assert sorted(MemberEvent.objects.values_list("store", flat=True)) == sorted(
        [device.store_id, other_device.store_id]
    )


@pytest.mark.parametrize(
    ("payload", "bad_fields"),
    [
        ({"openid": "o" * 129}, ["openid"]),
        ({"openid": "has space"}, ["openid"]),
        ({"openid": "erased:abc"}, ["openid"]),
        ({}, ["openid"]),
        ({"openid": OPENID, "sub_openid": "s" * 129, "nickname": "n" * 129}, ["nickname", "sub_openid"]),
        ({"openid": OPENID, "face_sid": "f" * 129}, ["face_sid"]),
        ({"openid": OPENID, "ask_unionid": True}, ["face_sid"]),
        ({"openid": OPENID, "ask_unionid": "maybe"}, ["ask_unionid"]),
    ],
)
def test_invalid_input_names_each_bad_field_and_writes_nothing(terminal, payload, bad_fields):
    response = terminal.post("members/identify", payload)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "INVALID_INPUT"
    assert sorted(body["details"]) == bad_fields
    assert Member.objects.count() == 0
    assert MemberEvent.objects.count() == 0


def test_unsigned_request_is_refused(wsgi_transport):
    import httpx

    with httpx.Client(transport=wsgi_transport, base_url="http://testserver") as client:
        response = client.post("/api/terminal/v1/members/identify", json={"openid": OPENID})

    assert response.status_code == 401
    assert Member.objects.count() == 0
