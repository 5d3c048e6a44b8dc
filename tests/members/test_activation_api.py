"""POST /api/terminal/v1/members/activations: every activateWxpayfaceMember result and what the terminal
is told to do next."""

import pytest

from members.models import Member, MemberEvent

pytestmark = pytest.mark.django_db

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture
def member(terminal):
    terminal.post("members/identify", {"openid": OPENID})
    return Member.objects.get()


@pytest.mark.parametrize(
    ("sent", "code", "next_action", "retry_after_ms"),
    [
        # activateWxpayfaceMember's own codes
        ({"return_code": "PARAMS_INVALID", "return_msg": "传入参数错误"}, "PARAMS_INVALID", "FIX_REQUEST", 0),
        ({"return_code": "MEMBER_INFO_EXP_ERROR"}, "MEMBER_INFO_EXP_ERROR", "REIDENTIFY", 0),
        ({"return_code": "GET_MEMBER_INFO_FAIL_ERROR"}, "GET_MEMBER_INFO_FAIL_ERROR", "RETRY", 1000),
        ({"return_code": "NOT_CONFIG_MEMBER_ERROR"}, "NOT_CONFIG_MEMBER_ERROR", "CONFIGURE_DEVICE", 0),
        # the same codes sent as err_code under a generic ERROR
        ({"return_code": "ERROR", "err_code": "MEMBER_INFO_EXP_ERROR"}, "MEMBER_INFO_EXP_ERROR", "REIDENTIFY", 0),
        # the SDK's secondary codes, as the integers the SDK returns
        ({"return_code": "ERROR", "err_code": 271378620}, "271378620", "REINITIALIZE", 0),
        ({"return_code": "ERROR", "err_code": 271378621}, "271378621", "REINITIALIZE", 500),
        ({"return_code": "SYSTEMERROR", "err_code": "271378621"}, "271378621", "REINITIALIZE", 500),
        # public return codes
        ({"return_code": "PARAM_ERROR"}, "PARAM_ERROR", "FIX_REQUEST", 0),
        ({"return_code": "SYSTEMERROR"}, "SYSTEMERROR", "RETRY", 1000),
        ({"return_code": "ERROR", "err_code": None, "return_msg": "用户取消"}, "ERROR", "NONE", 0),
        # something nobody documented: no loop
        ({"return_code": "SOMETHING_NEW", "err_code": 12345}, "12345", "NONE", 0),
    ],
)
def test_failed_activation_is_recorded_with_its_next_action(
    terminal, device_and_secret, member, sent, code, next_action, retry_after_ms
):
    device, _ = device_and_secret

    # when the terminal reports a failed activation
    response = terminal.post("members/activations", {"openid": OPENID, **sent})

    # then it is told what to do next, the member stays unactivated and the failure is on record
    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("activated", "code", "next_action", "retry_after_ms")} == {
        "activated": False,
        "code": code,
        "next_action": next_action,
        "retry_after_ms": retry_after_ms,
    }
    assert body["message"]
    assert body["member"]["card_activated"] is False
    member.refresh_from_db()
    assert (member.card_activated, member.activated_at) == (False, None)
    event = MemberEvent.objects.get(kind="ACTIVATION_FAILED")
    assert (event.member, event.store_id, event.device, event.return_code) == (
        member,
        device.store_id,
        device,
        sent["return_code"],
    )
    assert event.err_code == ("" if sent.get("err_code") is None else str(sent["err_code"]))
    assert event.err_message == sent.get("return_msg", "")
    assert event.next_action == next_action


def test_successful_activation_marks_the_member_activated(terminal, member):
    response = terminal.post("members/activations", {"openid": OPENID, "return_code": "SUCCESS"})

    assert response.status_code == 200
    body = response.json()
    assert {key: body[key] for key in ("activated", "code", "next_action", "message", "retry_after_ms")} == {
        "activated": True,
        "code": "SUCCESS",
        "next_action": "NONE",
        "message": "Membership activated.",
        "retry_after_ms": 0,
    }
    member.refresh_from_db()
    assert member.card_activated is True
    assert member.activated_at is not None
    assert body["member"]["activated_at"] is not None
    assert list(MemberEvent.objects.filter(kind__startswith="ACTIVATION").values_list("kind", "next_action")) == [
        ("ACTIVATION_SUCCESS", "NONE")
    ]


def test_repeated_success_keeps_the_first_activation_time(terminal, member):
    terminal.post("members/activations", {"openid": OPENID, "return_code": "SUCCESS"})
    first = Member.objects.get().activated_at

    terminal.post("members/activations", {"openid": OPENID, "return_code": "SUCCESS"})

    assert Member.objects.get().activated_at == first
    assert MemberEvent.objects.filter(kind="ACTIVATION_SUCCESS").count() == 2


def test_failure_after_success_does_not_deactivate(terminal, member):
    terminal.post("members/activations", {"openid": OPENID, "return_code": "SUCCESS"})

    response = terminal.post("members/activations", {"openid": OPENID, "return_code": "MEMBER_INFO_EXP_ERROR"})

    assert (response.json()["activated"], response.json()["next_action"]) == (True, "REIDENTIFY")
    assert Member.objects.get().card_activated is True


def test_activated_member_is_not_offered_activation_again(terminal, member):
    terminal.post("members/activations", {"openid": OPENID, "return_code": "SUCCESS"})

    body = terminal.post("members/identify", {"openid": OPENID}).json()

    assert (body["is_member"], body["activated"], body["offer_activation"], body["visits"]) == (True, True, False, 2)


def test_unknown_openid_is_404_and_records_nothing(terminal, member):
    response = terminal.post("members/activations", {"openid": "oNeverSeen", "return_code": "SUCCESS"})

    assert response.status_code == 404
    assert response.json() == {
        "code": "MEMBER_NOT_FOUND",
        "message": "No member with this openid at this merchant; identify the user (members/identify) first.",
        "details": {"openid": "Unknown at this merchant."},
    }
    assert not MemberEvent.objects.filter(kind__startswith="ACTIVATION").exists()


def test_member_of_another_merchant_cannot_be_activated(terminal, terminal_for, member):
    # given merchant B's terminal, which never identified this openid
    terminal_b, _ = terminal_for()

    response = terminal_b.post("members/activations", {"openid": OPENID, "return_code": "SUCCESS"})

    assert response.status_code == 404
    assert response.json()["code"] == "MEMBER_NOT_FOUND"
    assert Member.objects.get().card_activated is False


@pytest.mark.parametrize(
    ("payload", "bad_fields"),
    [
        ({"openid": OPENID}, ["return_code"]),
        ({"openid": OPENID, "return_code": "X" * 33}, ["return_code"]),
        ({"openid": OPENID, "return_code": "NOT ok"}, ["return_code"]),
        ({"openid": OPENID, "return_code": "ERROR", "return_msg": "m" * 129}, ["return_msg"]),
        ({"openid": OPENID, "return_code": "ERROR", "err_code": "1" * 33}, ["err_code"]),
        ({"openid": "o" * 129, "return_code": "SUCCESS"}, ["openid"]),
    ],
)
def test_invalid_activation_report_names_each_bad_field(terminal, member, payload, bad_fields):
    response = terminal.post("members/activations", payload)

    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_INPUT"
    assert sorted(response.json()["details"]) == bad_fields
    assert not MemberEvent.objects.filter(kind__startswith="ACTIVATION").exists()
    assert Member.objects.get().card_activated is False
