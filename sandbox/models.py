"""The sandbox's own registry and order book: what WeChat Pay and UMF would know, independent of the product's
models (no foreign keys into portal/payments, so the sandbox can be dropped without touching them).

Amounts are integer fen. Secrets (API keys, the sandbox's own private keys) are encrypted at rest like the
product's channel credentials, because the same database holds both.
"""

from __future__ import annotations

from django.db import models

from portal.fields import EncryptedTextField


class SandboxWechatMerchant(models.Model):
    """A WeChat Pay merchant (or a service provider: the same record, with sub-merchants).

    The platform_* fields are the key pair handed out at registration: its certificate (the first platform
    certificate, also a SandboxWechatPlatformCertificate row) and the same key as the platform public key
    (PUB_KEY_ID_…). Certificates issued later by rotation live only in `platform_certificates`; `key_mode` says which
    kind of key signs this merchant's v3 answers and notifications (sandbox/platform_keys.py).
    """

    class KeyMode(models.TextChoices):
        CERTIFICATE = "CERTIFICATE", "platform certificate (Wechatpay-Serial = certificate serial)"
        PUBLIC_KEY = "PUBLIC_KEY", "platform public key (Wechatpay-Serial = PUB_KEY_ID_…)"
        # A merchant moving between the two: WeChat signs each answer with either, and the header names which.
        TRANSITION = "TRANSITION", "either, per answer"

    mch_id = models.CharField(max_length=32, unique=True, help_text="mch_id / mchid.")
    appid = models.CharField(max_length=32, help_text="appid bound to mch_id.")
    api_v2_key = EncryptedTextField(help_text="API v2 key (sign).")
    api_v3_key = EncryptedTextField(help_text="APIv3 key (AEAD_AES_256_GCM for notification resources).")
    merchant_certificate_pem = models.TextField(help_text="Merchant API certificate: verifies v3 Authorization.")
    merchant_certificate_serial = models.CharField(max_length=64, help_text="serial_no in Authorization.")
    platform_private_key_pem = EncryptedTextField(
        help_text="The platform public key's private half (and the registration certificate's)."
    )
    platform_certificate_pem = models.TextField(help_text="The certificate issued at registration.")
    platform_certificate_serial = models.CharField(max_length=64)
    platform_public_key_pem = models.TextField()
    platform_public_key_id = models.CharField(max_length=64, help_text="PUB_KEY_ID_… (platform public-key mode).")
    key_mode = models.CharField(max_length=12, choices=KeyMode.choices, default=KeyMode.CERTIFICATE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"sandbox wechat {self.mch_id}"

    @property
    def uses_public_key(self) -> bool:
        return self.key_mode == self.KeyMode.PUBLIC_KEY


class SandboxWechatPlatformCertificate(models.Model):
    """One of a merchant's platform certificates. /v3/certificates lists those not expired; the sandbox signs with
    the latest whose `signs_from` has come, so a rotation first publishes the new certificate and only later signs
    with it, as WeChat does to let merchants download it in time."""

    merchant = models.ForeignKey(SandboxWechatMerchant, on_delete=models.CASCADE, related_name="platform_certificates")
    serial_no = models.CharField(max_length=64)
    private_key_pem = EncryptedTextField()
    certificate_pem = models.TextField()
    effective_at = models.DateTimeField(help_text="effective_time in /v3/certificates.")
    expires_at = models.DateTimeField(help_text="expire_time in /v3/certificates; no longer listed after it.")
    signs_from = models.DateTimeField(help_text="When answers start being signed with this certificate.")
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["merchant", "serial_no"], name="sandbox_platform_cert_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.merchant_id} platform certificate {self.serial_no}"


class SandboxWechatSubMerchant(models.Model):
    provider = models.ForeignKey(SandboxWechatMerchant, on_delete=models.CASCADE, related_name="sub_merchants")
    sub_mch_id = models.CharField(max_length=32)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "sub_mch_id"], name="sandbox_sub_mch_unique")]

    def __str__(self) -> str:
        return f"{self.provider.mch_id}/{self.sub_mch_id}"


class SandboxUmpayIdentity(models.Model):
    """UMF's own key pair: one for the whole sandbox, as UMF has one certificate for all its partners."""

    private_key_pem = EncryptedTextField()
    certificate_pem = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return "sandbox UMF identity"


class SandboxUmpayProvider(models.Model):
    acq_sp_id = models.CharField(max_length=10, unique=True, help_text="acqSpId.")
    merchant_public_pem = models.TextField(help_text="The provider's certificate or public key (verifies requests).")
    acq_mer_ids = models.JSONField(default=list, help_text="acqMerId values UMF assigned to this provider.")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sandbox umpay {self.acq_sp_id}"

    @property
    def umpay_certificate_pem(self) -> str:
        """UMF's certificate, the same for every provider (the product stores it as `umpay_certificate`)."""
        return SandboxUmpayIdentity.objects.order_by("pk").values_list("certificate_pem", flat=True).first() or ""


class SandboxAuthinfo(models.Model):
    """An issued face SDK credential, so the terminal helper only accepts authinfo the sandbox handed out."""

    authinfo = models.CharField(max_length=128, unique=True)
    appid = models.CharField(max_length=32, blank=True)
    mch_id = models.CharField(max_length=32, blank=True)
    sub_mch_id = models.CharField(max_length=32, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"authinfo for {self.mch_id or self.appid}"


class SandboxScenarioPreset(models.Model):
    """A scenario chosen in advance for an order number (WeChat out_trade_no, UMF orderNo, PayScore out_order_no)."""

    order_no = models.CharField(max_length=64, unique=True)
    scenario = models.CharField(max_length=40)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.order_no}: {self.scenario}"


class SandboxWechatOrder(models.Model):
    class State(models.TextChoices):  # WeChat trade_state
        SUCCESS = "SUCCESS"
        REFUND = "REFUND"
        NOTPAY = "NOTPAY"
        CLOSED = "CLOSED"
        REVOKED = "REVOKED"
        USERPAYING = "USERPAYING"
        PAYERROR = "PAYERROR"

    mch_id = models.CharField(max_length=32)
    sub_mch_id = models.CharField(max_length=32, blank=True)
    appid = models.CharField(max_length=32)
    out_trade_no = models.CharField(max_length=32)
    transaction_id = models.CharField(max_length=32, unique=True)
    total_fee = models.BigIntegerField(help_text="total_fee (fen).")
    body = models.CharField(max_length=128, blank=True)
    attach = models.CharField(max_length=127, blank=True)
    device_info = models.CharField(max_length=32, blank=True)
    state = models.CharField(max_length=12, choices=State.choices)
    scenario = models.CharField(max_length=40)
    openid = models.CharField(max_length=64, blank=True)
    sub_openid = models.CharField(max_length=64, blank=True, help_text="The payer's openid under sub_appid, if sent.")
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    # When a pending (USERPAYING) order reaches its scenario's final state; None = never by itself.
    settles_at = models.DateTimeField(null=True, blank=True)
    reversed_at = models.DateTimeField(null=True, blank=True)
    # Paid and then reversed: WeChat refunds the user; kept for the ledger.
    reversed_after_payment = models.BooleanField(default=False)
    reverse_calls = models.PositiveIntegerField(default=0)
    query_calls = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mch_id", "sub_mch_id", "out_trade_no"], name="sandbox_wx_order_unique"),
            models.CheckConstraint(condition=models.Q(total_fee__gt=0), name="sandbox_wx_order_fee_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.mch_id}/{self.out_trade_no} {self.state}"


class SandboxWechatRefund(models.Model):
    class State(models.TextChoices):  # refund_status
        PROCESSING = "PROCESSING"
        SUCCESS = "SUCCESS"

    order = models.ForeignKey(SandboxWechatOrder, on_delete=models.CASCADE, related_name="refunds")
    out_refund_no = models.CharField(max_length=64)
    refund_id = models.CharField(max_length=32, unique=True)
    refund_fee = models.BigIntegerField()
    state = models.CharField(max_length=12, choices=State.choices)
    created_at = models.DateTimeField()
    succeeds_at = models.DateTimeField()
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "out_refund_no"], name="sandbox_wx_refund_unique"),
            models.CheckConstraint(condition=models.Q(refund_fee__gt=0), name="sandbox_wx_refund_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.out_refund_no} {self.state}"


class SandboxUmpayOrder(models.Model):
    """origRespCode semantics: 00 paid, 01 refunded (in part or whole), 02 unknown/paying, 03 closed, 04 revoked,
    06 failed."""

    acq_sp_id = models.CharField(max_length=10)
    acq_mer_id = models.CharField(max_length=8)
    order_no = models.CharField(max_length=64, help_text="orderNo.")
    transaction_id = models.CharField(max_length=32, unique=True, help_text="transactionId (UMF order number).")
    txn_amt = models.BigIntegerField(help_text="txnAmt (fen).")
    order_time = models.CharField(max_length=14, help_text="orderTime, yyyyMMddHHmmss as sent.")
    order_type = models.CharField(max_length=12)
    face_flag = models.CharField(max_length=2, blank=True)
    back_url = models.CharField(max_length=256, blank=True)
    mer_priv = models.CharField(max_length=128, blank=True)
    orig_resp_code = models.CharField(max_length=2)
    scenario = models.CharField(max_length=40)
    dep_bank_seq = models.CharField(max_length=32, blank=True, help_text="depBankSeq (WeChat transaction id).")
    openid = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    paid_at = models.DateTimeField(null=True, blank=True)
    settles_at = models.DateTimeField(null=True, blank=True)
    reversed_after_payment = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["acq_mer_id", "order_no"], name="sandbox_umf_order_unique"),
            models.CheckConstraint(condition=models.Q(txn_amt__gt=0), name="sandbox_umf_order_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.acq_mer_id}/{self.order_no} {self.orig_resp_code}"


class SandboxUmpayRefund(models.Model):
    order = models.ForeignKey(SandboxUmpayOrder, on_delete=models.CASCADE, related_name="refunds")
    order_no = models.CharField(max_length=64, help_text="The refund's own orderNo.")
    transaction_id = models.CharField(max_length=32, unique=True)
    txn_amt = models.BigIntegerField()
    orig_resp_code = models.CharField(max_length=2, help_text="02 processing, 00 refunded.")
    created_at = models.DateTimeField()
    succeeds_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["order", "order_no"], name="sandbox_umf_refund_unique"),
            models.CheckConstraint(condition=models.Q(txn_amt__gt=0), name="sandbox_umf_refund_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.order_no} {self.orig_resp_code}"


class SandboxPayscoreOrder(models.Model):
    class State(models.TextChoices):
        CREATED = "CREATED"
        DOING = "DOING"
        DONE = "DONE"
        REVOKED = "REVOKED"
        EXPIRED = "EXPIRED"

    mchid = models.CharField(max_length=32)
    appid = models.CharField(max_length=32)
    service_id = models.CharField(max_length=32)
    out_order_no = models.CharField(max_length=32)
    order_id = models.CharField(max_length=64, unique=True)
    service_introduction = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=State.choices)
    state_description = models.CharField(max_length=16, blank=True, help_text="USER_CONFIRM / MCH_COMPLETE.")
    time_range = models.JSONField(default=dict)
    risk_fund = models.JSONField(default=dict)
    post_payments = models.JSONField(default=list)
    post_discounts = models.JSONField(default=list)
    location = models.JSONField(null=True, blank=True)
    attach = models.CharField(max_length=256, blank=True)
    notify_url = models.CharField(max_length=256)
    openid = models.CharField(max_length=64, blank=True)
    need_user_confirm = models.BooleanField(default=True)
    total_amount = models.BigIntegerField(null=True, blank=True)
    collection_state = models.CharField(max_length=12, blank=True, help_text="USER_PAYING / USER_PAID.")
    paid_amount = models.BigIntegerField(default=0)
    paid_at = models.DateTimeField(null=True, blank=True)
    collection_transaction_id = models.CharField(max_length=32, blank=True)
    scenario = models.CharField(max_length=40, blank=True)
    create_request = models.JSONField(default=dict, help_text="The create body, for idempotent re-submission.")
    devices = models.JSONField(
        default=dict, blank=True, help_text="The device object each accepted call sent: {create, complete, modify}."
    )
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mchid", "out_order_no"], name="sandbox_payscore_order_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.mchid}/{self.out_order_no} {self.state}"


class SandboxNotification(models.Model):
    """Outbox of callbacks the sandbox owes merchants, delivered with the upstream's retry schedule."""

    class Kind(models.TextChoices):
        WECHAT_V3 = "WECHAT_V3"  # JSON envelope, Wechatpay-* headers signed at each attempt
        UMPAY = "UMPAY"  # form-urlencoded, `sign` in the body

    kind = models.CharField(max_length=12, choices=Kind.choices)
    url = models.CharField(max_length=512)
    body = models.TextField()
    headers = models.JSONField(default=dict)
    # For WECHAT_V3: the merchant whose platform key signs (the timestamp must be fresh at each attempt).
    signer_mch_id = models.CharField(max_length=32, blank=True)
    event_type = models.CharField(max_length=40, blank=True)
    order_no = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField()
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="None once delivered or given up.")
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status = models.IntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["next_attempt_at"], name="sandbox_notification_due")]

    def __str__(self) -> str:
        return f"{self.kind} {self.event_type} → {self.url}"


class SandboxBillPlant(models.Model):
    """A difference planted in the sandbox's bills (SCENARIOS.md, "Bills"): the ledger stays true, the bill lies."""

    class Kind(models.TextChoices):
        OMIT = "OMIT", "the payment row is left off"
        AMOUNT = "AMOUNT", "the payment row's amount is one fen more"
        DUPLICATE = "DUPLICATE", "the payment row appears twice"
        REVOKED = "REVOKED", "the payment row says REVOKED"
        REFUND_OMIT = "REFUND_OMIT", "the refund row is left off"
        REFUND_AMOUNT = "REFUND_AMOUNT", "the refund row's amount is one fen more"

    order_no = models.CharField(max_length=64, unique=True, help_text="out_trade_no, or out_refund_no for refunds.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.order_no}: {self.kind}"


class SandboxRobot(models.Model):
    """A chat robot as WeCom or DingTalk would know it: its key (WeCom) or access token (DingTalk), and DingTalk's
    signing secret."""

    class Kind(models.TextChoices):
        WECOM = "WECOM", "WeCom group robot"
        DINGTALK = "DINGTALK", "DingTalk custom robot"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    token = models.CharField(max_length=80, unique=True, help_text="WeCom's key, DingTalk's access_token.")
    secret = EncryptedTextField(blank=True, help_text="DingTalk's signing secret (SEC…).")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"sandbox {self.kind} robot"


class SandboxRobotMessage(models.Model):
    """A message a sandbox robot received (the last SANDBOX_ROBOT_MESSAGES_KEPT per robot are kept), as sent, with
    the errcode it was answered."""

    robot = models.ForeignKey(SandboxRobot, on_delete=models.CASCADE, related_name="messages")
    received_at = models.DateTimeField()
    body = models.TextField()
    errcode = models.IntegerField()

    class Meta:
        indexes = [models.Index(fields=["robot", "received_at"], name="sandbox_robot_message")]

    def __str__(self) -> str:
        return f"{self.robot_id} {self.received_at:%Y-%m-%d %H:%M:%S} errcode {self.errcode}"
