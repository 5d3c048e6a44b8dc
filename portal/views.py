"""Console views shared by every role: sign-in, sign-out, password change and the home page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

from portal import selectors


class LoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "portal/password_change.html"
    success_url = reverse_lazy("portal:home")

    def form_valid(self, form):
        messages.success(self.request, _("Your password was changed."))
        return super().form_valid(form)


@login_required
def home(request):
    membership = selectors.membership_of(request.user)
    context = {
        "membership": membership,
        "merchants": selectors.merchants_visible_to(request.user)[:50],
        "stores": selectors.stores_visible_to(request.user)[:50],
        "devices": selectors.devices_visible_to(request.user)[:100],
    }
    return render(request, "portal/home.html", context)
