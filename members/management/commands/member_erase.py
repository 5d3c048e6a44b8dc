from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from members import selectors, services


class Command(BaseCommand):
    help = "Erase a member's personal data (openid, sub_openid, unionid, nickname); visits are kept. Audited."

    def add_arguments(self, parser):
        parser.add_argument("--merchant", type=int, required=True, help="Merchant primary key")
        parser.add_argument("--openid", required=True, help="The member's openid at that merchant")
        parser.add_argument("--user", default="", help="Console username to record as the actor")

    def handle(self, *args, merchant, openid, user, **options):
        actor = None
        if user:
            actor = get_user_model().objects.filter(username=user).first()
            if actor is None:
                raise CommandError(f"No user {user!r}.")
        member = selectors.member_by_openid(merchant_id=merchant, openid=openid)
        if member is None:
            raise CommandError("No member with this openid at this merchant (or already erased).")
        member = services.member_erase(member=member, actor=actor, actor_label=None if actor else "cli")
        self.stdout.write(f"Member {member.pk} erased; {member.visit_count} visits kept.")
