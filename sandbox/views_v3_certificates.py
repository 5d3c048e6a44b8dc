"""`GET /v3/certificates` (下载平台证书): the merchant's platform certificates in force, each PEM encrypted with its
APIv3 key (AEAD_AES_256_GCM, associated_data "certificate"), so a merchant can pick up a new certificate before
answers are signed with it (sandbox/platform_keys.py).

- CERTIFICATE and TRANSITION modes: 200 {"data": [{serial_no, effective_time, expire_time, encrypt_certificate}]},
  oldest first, signed with the certificate in force (in transition mode too: a client bootstrapping from this
  answer can check it against the certificates it contains).
- PUBLIC_KEY mode: 404 RESOURCE_NOT_EXISTS, signed with the public key. WeChat answers so a merchant that has no
  platform certificate (the public-key scheme): verify with the public key, do not download certificates. The
  sandbox treats every public-key-mode merchant that way, even one that had certificates before switching.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from payments.gateways import wechatpay_v3 as v3

from . import book, platform_keys, v3_http
from .models import SandboxWechatMerchant

KeyMode = SandboxWechatMerchant.KeyMode


@csrf_exempt
def certificates(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return v3_http.unsigned(405, "METHOD_NOT_ALLOWED", "method not allowed")
    merchant = v3_http.authenticate(request, sign_refusal=False)
    if isinstance(merchant, HttpResponse):
        return merchant
    if merchant.key_mode == KeyMode.PUBLIC_KEY:
        return v3_http.error(
            merchant, 404, "RESOURCE_NOT_EXISTS", "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥"
        )
    api_v3_key = merchant.api_v3_key.reveal()
    data = [
        {
            "serial_no": certificate.serial_no,
            "effective_time": book.rfc3339(certificate.effective_at),
            "expire_time": book.rfc3339(certificate.expires_at),
            "encrypt_certificate": v3.encrypt_notification_resource(
                certificate.certificate_pem, api_v3_key=api_v3_key, associated_data="certificate"
            ),
        }
        for certificate in platform_keys.listed(merchant)
    ]
    return v3_http.signed(merchant, 200, {"data": data}, key=platform_keys.certificate_signing_key(merchant))
