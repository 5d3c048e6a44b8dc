"""Erasure on request (service and management command) and the retention run (service and Celery task)."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from members import services
from members.models import Member, MemberEvent
from members.tasks import anonymise_stale_members
from portal.errors import InvalidInput, NotFound
from portal.models import AuditLog, StaffMembership
from tests.factories import MerchantFactory, StoreFactory, make_device, make_user

pytestmark = pytest.mark.django_db

OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


def identify(device, openid=OPENID, **extra):
    data = services.IdentifyInput(openid=openid, nickname="小明", sub_openid="oSub_1", **extra)
    return services.member_identify(device=device, data=data).member


@pytest.fixture
def device():
    return make_device()[0]


@pytest.fixture
def member(device):
    identify(device)
    member = identify(device)
    Member.objects.filter(pk=member.pk).update(unionid="oUnion_1")
    services.member_activation_record(device=device, openid=OPENID, return_code="SUCCESS")
    member.refresh_from_db()
    return member


def assert_personal_data_gone(member: Member) -> None:
    member.refresh_from_db()
    assert member.openid.startswith("erased:")
    assert len(member.openid) == len("erased:") + 40
    assert OPENID not in member.openid
    assert (member.sub_openid, member.unionid, member.nickname) == ("", "", "")
    assert member.anonymised_at is not None


def test_erase_removes_personal_data_keeps_counts_and_is_audited(member):
    # given a member with two visits, a unionid and an activated card
    admin = make_user("admin", role=StaffMembership.Role.MERCHANT_ADMIN, merchant=member.merchant)
    events_before = list(MemberEvent.objects.filter(member=member).values_list("pk", "kind"))

    # when an admin erases it
    services.member_erase(member=member, actor=admin)

    # then the personal fields are gone, the counters and events stay, and the erasure is audited without them
    assert_personal_data_gone(member)
    assert (member.visit_count, member.card_activated, member.anonymised_reason) == (2, True, "ERASURE_REQUEST")
    assert list(MemberEvent.objects.filter(member=member).values_list("pk", "kind")) == events_before
    audit = AuditLog.objects.get(action="member.erase")
    assert (audit.actor, audit.actor_label, audit.object_type, audit.object_id, audit.merchant) == (
        admin,
        "admin",
        "Member",
        str(member.pk),
        member.merchant,
    )
    assert audit.details == {"visit_count": 2, "card_activated": True}


def test_erasing_twice_changes_and_audits_nothing_more(member):
    services.member_erase(member=member, actor=None, actor_label="cli")
    member.refresh_from_db()
    placeholder = member.openid

    services.member_erase(member=member, actor=None, actor_label="cli")

    member.refresh_from_db()
    assert member.openid == placeholder
    assert AuditLog.objects.filter(action="member.erase").count() == 1


def test_the_same_user_coming_back_after_erasure_starts_afresh(device, member):
    services.member_erase(member=member, actor=None, actor_label="cli")

    again = identify(device)

    assert again.pk != member.pk
    assert (again.visit_count, again.card_activated, again.unionid) == (1, False, "")
    assert Member.objects.count() == 2


def test_erased_member_cannot_be_activated_by_its_old_openid(device, member):
    services.member_erase(member=member, actor=None, actor_label="cli")

    with pytest.raises(NotFound) as raised:
        services.member_activation_record(device=device, openid=OPENID, return_code="SUCCESS")
    assert raised.value.code == "MEMBER_NOT_FOUND"


def test_placeholders_of_two_erased_members_differ_and_keep_the_constraint(device):
    first = identify(device, openid="oFirst")
    second = identify(device, openid="oSecond")

    services.member_erase(member=first, actor=None, actor_label="cli")
    services.member_erase(member=second, actor=None, actor_label="cli")

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.openid != second.openid


def test_management_command_erases_and_audits_as_cli(member):
    call_command("member_erase", "--merchant", str(member.merchant_id), "--openid", OPENID)

    assert_personal_data_gone(member)
    assert list(AuditLog.objects.filter(action="member.erase").values_list("actor_label", "object_id")) == [
        ("cli", str(member.pk))
    ]


def test_management_command_refuses_an_unknown_member(member):
    other_merchant = MerchantFactory()

    with pytest.raises(CommandError):
        call_command("member_erase", "--merchant", str(other_merchant.pk), "--openid", OPENID)

    member.refresh_from_db()
    assert member.openid == OPENID
    assert not AuditLog.objects.filter(action="member.erase").exists()


# --- retention ---


def make_member(merchant, openid, *, days_ago):
    seen = timezone.now() - timedelta(days=days_ago)
    return Member.objects.create(
        merchant=merchant,
        openid=openid,
        nickname="n",
        unionid="u",
        sub_openid="s",
        first_seen_at=seen,
        last_seen_at=seen,
        visit_count=3,
    )


def test_retention_anonymises_only_members_not_seen_within_the_period():
    # given members last seen 400, 366 and 10 days ago at two merchants
    merchant_a, merchant_b = MerchantFactory(), MerchantFactory()
    stale_a = make_member(merchant_a, "oStaleA", days_ago=400)
    stale_b = make_member(merchant_b, "oStaleB", days_ago=366)
    fresh = make_member(merchant_a, "oFresh", days_ago=10)
    now = timezone.now()

    # when the retention run uses 365 days
    run = services.members_anonymise_stale(days=365, now=now)

    # then the two stale members are anonymised (counts kept), the fresh one untouched, one audit row for the run
    assert run.count == 2
    for member in (stale_a, stale_b):
        member.refresh_from_db()
        assert member.openid.startswith("erased:")
        assert (member.nickname, member.unionid, member.sub_openid) == ("", "", "")
        assert (member.visit_count, member.anonymised_reason, member.anonymised_at) == (3, "RETENTION", now)
    fresh.refresh_from_db()
    assert (fresh.openid, fresh.nickname, fresh.anonymised_at) == ("oFresh", "n", None)
    audit = AuditLog.objects.get(action="member.retention_anonymise")
    assert (audit.actor, audit.actor_label, audit.object_type) == (None, "system", "Member")
    assert audit.details == {
        "count": 2,
        "days": 365,
        "cutoff": (now - timedelta(days=365)).isoformat(),
        "by_merchant": {str(merchant_a.pk): 1, str(merchant_b.pk): 1},
    }


def test_second_retention_run_finds_nothing_and_says_so():
    make_member(MerchantFactory(), "oStale", days_ago=400)
    services.members_anonymise_stale(days=365)

    run = services.members_anonymise_stale(days=365)

    assert run.count == 0
    assert list(
        AuditLog.objects.filter(action="member.retention_anonymise").order_by("id").values_list("details__count")
    ) == [(1,), (0,)]


def test_task_uses_the_member_retention_days_setting(settings):
    settings.MEMBER_RETENTION_DAYS = 30
    merchant = MerchantFactory()
    make_member(merchant, "oOld", days_ago=31)
    make_member(merchant, "oRecent", days_ago=29)

    assert anonymise_stale_members() == 1

    assert sorted(Member.objects.values_list("anonymised_reason", flat=True)) == ["", "RETENTION"]
    assert AuditLog.objects.get(action="member.retention_anonymise").details["days"] == 30


def test_retention_defaults_to_365_days(settings):
    del settings.MEMBER_RETENTION_DAYS  # absent until the lead adds it; pytest-django restores it afterwards
    assert services.retention_days() == 365


def test_nonsensical_retention_period_is_refused():
    make_member(MerchantFactory(), "oAny", days_ago=1)

    with pytest.raises(InvalidInput) as raised:
        services.members_anonymise_stale(days=0)

    assert raised.value.details == {"MEMBER_RETENTION_DAYS": "A positive number of days."}
    assert Member.objects.get().anonymised_at is None
    assert not AuditLog.objects.filter(action="member.retention_anonymise").exists()


def test_visit_during_retention_keeps_a_recently_seen_member(device):
    # given a member whose stored last_seen is old but who has just been identified again
    member = identify(device)
    Member.objects.filter(pk=member.pk).update(last_seen_at=timezone.now() - timedelta(days=400))
    identify(device)

    run = services.members_anonymise_stale(days=365)

    assert run.count == 0
    member.refresh_from_db()
    assert (member.openid, member.visit_count) == (OPENID, 2)


def test_events_keep_store_and_device_after_erasure():
    store = StoreFactory()
    device = make_device(store)[0]
    member = identify(device)

    services.member_erase(member=member, actor=None, actor_label="cli")

    assert list(MemberEvent.objects.values_list("kind", "store", "device")) == [("IDENTIFIED", store.pk, device.pk)]
