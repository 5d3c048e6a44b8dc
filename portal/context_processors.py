from portal.permissions import allowed_actions
from portal.selectors import membership_of


def console(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"perms_console": allowed_actions(user), "membership": membership_of(user)}
