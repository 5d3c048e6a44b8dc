"""Django admin in the console's language: the apps, every model registered from our apps and their fields have
translated names, so the admin index and change lists in zh-hans are in Chinese."""

from __future__ import annotations

import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.utils import translation
from django.utils.functional import Promise

from tests.factories import login_verified, make_user

OUR_APPS = ("portal", "payments", "payscore", "members", "reconciliation", "webhooks", "merchant_api", "sandbox")
CHINESE = re.compile(r"[\u4e00-\u9fff]")
# Names that are the same in both languages: WeChat's own identifiers and a checksum's name.
SAME_IN_CHINESE = {"openid", "unionid", "sub_openid", "SHA-256"}


def registered_models():
    return [model for model in admin.site._registry if model._meta.app_label in OUR_APPS]


def untranslated(name) -> bool:
    if not isinstance(name, Promise):
        return True
    with translation.override("zh-hans"):
        text = str(name)
    return not CHINESE.search(text) and text not in SAME_IN_CHINESE


def test_our_apps_have_translated_names():
    names = {app: apps.get_app_config(app).verbose_name for app in OUR_APPS}
    assert [app for app, name in names.items() if untranslated(name)] == []


@pytest.mark.parametrize("model", registered_models(), ids=lambda model: model._meta.label)
def test_a_registered_model_and_its_fields_have_translated_names(model):
    meta = model._meta
    names = {"verbose_name": meta.verbose_name, "verbose_name_plural": meta.verbose_name_plural}
    names.update({field.name: field.verbose_name for field in meta.concrete_fields if not field.primary_key})
    assert [name for name, value in names.items() if untranslated(value)] == []


@pytest.mark.django_db
def test_the_admin_index_in_chinese(client):
    login_verified(client, make_user("root", superuser=True))
    client.cookies["django_language"] = "zh-hans"

    page = client.get("/admin/").content.decode()

    for name in ("商户、门店与设备", "支付订单", "退款", "支付分订单", "会员", "对账差异", "顺延订单", "管理台角色"):
        assert name in page, name
    for english in ("Payment events", "Service orders", "Carried orders", "Staff memberships"):
        assert english not in page, english
