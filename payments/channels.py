"""The merchant's acquiring channel, behind one small interface.

Services speak in payments and refunds; this module turns them into gateway configs and requests for WeChat Pay
(direct or service-provider mode) or UMF, and turns every gateway result into an `Answer`. No state changes here.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from django.conf import settings
from django.core.cache import cache

from payments.gateways import umpay, wechatpay_v2, wechatpay_v3, wechatpay_v3_pay
from payments.gateways.base import GatewayResult, Outcome
from payments.gateways.http import Timeouts
from portal import metrics
from portal.credentials import wechat_v3_configured
from portal.errors import ChannelBusy, DomainError, InvalidState
from portal.jobs import enqueue_on_commit
from portal.models import ChannelCredentials, Device, Merchant
from portal.selectors import signing_credentials_for

logger = logging.getLogger(__name__)

NOT_CONFIGURED = "CHANNEL_NOT_CONFIGURED"  # the merchant has no credentials: raised before any request is built
REFRESH_PLATFORM_KEYS_TASK = "payments.tasks.refresh_platform_certificates_of"

# Tests and the benchmark route upstream calls through an in-process transport by replacing this; None means each
# gateway's own shared client (and the per-certificate mutual-TLS client for secapi calls).
upstream_client: httpx.Client | None = None


@dataclass(frozen=True)
class Answer:
    """A gateway result in the services' terms. `outcome` keeps the gateway's meaning for that call."""

    outcome: Outcome
    code: str = ""
    message: str = ""
    transaction_id: str = ""
    wallet_transaction_id: str = ""
    openid: str = ""
    refund_id: str = ""
    recall: bool | None = None
    # The channel said it has no such order (WeChat ORDERNOTEXIST, UMF respCode 17): nothing reached it.
    order_missing: bool = False
    request: dict[str, Any] = field(default_factory=dict)
    response: dict[str, Any] = field(default_factory=dict)
    latency_ms: int = 0


@dataclass(frozen=True)
class Authinfo:
    authinfo: str
    expires_in: int
    appid: str
    mch_id: str
    sub_appid: str
    sub_mch_id: str


def _answer(result: GatewayResult, **extra: Any) -> Answer:
    return Answer(
        outcome=result.outcome,
        code=result.code,
        message=result.message[:255],
        request=result.request_fields,
        response=result.response_fields,
        latency_ms=result.latency_ms,
        **extra,
    )


def _credentials(merchant: Merchant) -> ChannelCredentials:
    credentials = signing_credentials_for(merchant)
    if credentials is None:
        raise InvalidState("This merchant has no channel credentials configured.", code=NOT_CONFIGURED)
    return credentials


def _reveal(value) -> str:
    return value.reveal() if value else ""


def _wechat_config(merchant: Merchant, *, client_certificate: bool = False) -> wechatpay_v2.WechatPayV2Config:
    """`client_certificate`: the call goes to `secapi/*` (reverse, refund) and needs the API client certificate and
    its key; other calls leave them encrypted (decrypting them is most of the cost of building a config)."""
    credentials = _credentials(merchant)
    if merchant.channel == Merchant.Channel.WECHAT_PROVIDER:
        provider = merchant.provider
        ids = {
            "appid": provider.wechat_appid,
            "mch_id": provider.wechat_mch_id,
            "sub_appid": merchant.sub_appid,
            "sub_mch_id": merchant.sub_mch_id,
        }
    else:
        ids = {"appid": merchant.appid, "mch_id": merchant.mch_id}
    return wechatpay_v2.WechatPayV2Config(
        **ids,
        api_key=_reveal(credentials.wechat_api_v2_key),
        client_cert_pem=_reveal(credentials.wechat_certificate) if client_certificate else "",
        client_key_pem=_reveal(credentials.wechat_private_key) if client_certificate else "",
        base_url=settings.WECHATPAY_API_BASE,
        face_base_url=settings.WECHATPAY_FACE_API_BASE,
    )


def wechat_v3_config(
    merchant: Merchant, *, credentials: ChannelCredentials | None = None
) -> wechatpay_v3.WechatPayV3Config:
    """API v3 (PayScore, facemch users, trade bills): the merchant's own keys when direct, the provider's in 服务商
    mode. `credentials`: the merchant's signing credentials when the caller already has them."""
    credentials = credentials or _credentials(merchant)
    if merchant.channel == Merchant.Channel.WECHAT_PROVIDER:
        provider = merchant.provider
        ids = {
            "mchid": provider.wechat_mch_id,
            "appid": provider.wechat_appid,
            "sub_mchid": merchant.sub_mch_id,
            "sub_appid": merchant.sub_appid,
        }
    else:
        ids = {"mchid": merchant.mch_id, "appid": merchant.appid}
    return v3_config_of(credentials, **ids)


def v3_config_of(credentials: ChannelCredentials, **ids: str) -> wechatpay_v3.WechatPayV3Config:
    """The API v3 config of these credentials for the merchant ids given (mchid, appid[, sub_mchid, sub_appid])."""
    return wechatpay_v3.WechatPayV3Config(
        **ids,
        merchant_private_key_pem=_reveal(credentials.wechat_private_key),
        merchant_serial_no=credentials.wechat_cert_serial,
        api_v3_key=_reveal(credentials.wechat_api_v3_key),
        platform_keys=platform_keys(credentials),
        base_url=settings.WECHATPAY_API_BASE,
    )


def platform_keys(credentials: ChannelCredentials, *, now: datetime | None = None) -> dict[str, str]:
    """Wechatpay-Serial → key: every platform certificate not yet expired by its serial, and the platform public key
    by its id. An answer signed by an expired certificate is not trusted, whether or not the refresh has dropped it
    from the credentials yet."""
    moment = now or datetime.now(UTC)
    keys = {
        serial: pem
        for serial, pem, expires in _parsed_certificates(credentials.wechat_platform_certificates)
        if expires > moment
    }
    if credentials.wechat_platform_public_key and credentials.wechat_platform_public_key_id:
        keys[credentials.wechat_platform_public_key_id] = credentials.wechat_platform_public_key
    return keys


@functools.lru_cache(maxsize=64)
def _parsed_certificates(certificates: str) -> tuple[tuple[str, str, datetime], ...]:
    """(serial, PEM, expiry) of each stored platform certificate, parsed once per distinct text: parsing X.509 on
    every v3 call would be a sixth of its CPU."""
    from portal.credentials import certificate_pem, certificate_serial, load_certificates

    if not certificates:
        return ()
    return tuple(
        (certificate_serial(cert), certificate_pem(cert), cert.not_valid_after_utc)
        for cert in load_certificates("wechat_platform_certificates", certificates)
    )


def _umpay_config(merchant: Merchant) -> umpay.UmpayConfig:
    credentials = _credentials(merchant)
    return umpay.UmpayConfig(
        acq_sp_id=merchant.provider.umpay_acq_sp_id,
        acq_mer_id=merchant.umpay_acq_mer_id,
        private_key=_reveal(credentials.umpay_private_key),
        umpay_certificate=credentials.umpay_certificate,
        base_url=settings.UMPAY_API_BASE,
    )


def _is_umpay(merchant: Merchant) -> bool:
    return merchant.channel == Merchant.Channel.UMPAY


def _uses_v3(merchant: Merchant) -> bool:
    """Payments and refunds of this WeChat merchant go over API v3 (its configuration says so; v2 by default)."""
    return merchant.wechat_api == Merchant.WechatApi.V3 and not _is_umpay(merchant)


def _timeouts(read: float) -> Timeouts:
    return Timeouts(connect=settings.UPSTREAM_CONNECT_TIMEOUT, read=read)


# --- calls -------------------------------------------------------------------------------------------------------


_request_slots: dict[tuple[str, int], threading.BoundedSemaphore] = {}
_request_slots_lock = threading.Lock()


@contextmanager
def request_slot(merchant: Merchant) -> Iterator[None]:
    """One of UPSTREAM_REQUEST_CONCURRENCY places, per channel and web process, for calls made while a terminal's
    request is open (the payment call, authinfo). A slow or failing channel then fills its own places and its
    terminals get ChannelBusy (503, Retry-After) at once, before any order is created or anything sent, instead of
    every request of the node queueing behind it. The worker's calls are not counted: they wait on nobody."""
    key = ("UMPAY" if _is_umpay(merchant) else "WECHAT", settings.UPSTREAM_REQUEST_CONCURRENCY)
    with _request_slots_lock:
        slots = _request_slots.get(key)
        if slots is None:
            slots = _request_slots[key] = threading.BoundedSemaphore(key[1])
    if not slots.acquire(blocking=False):
        raise ChannelBusy()
    try:
        yield
    finally:
        slots.release()


def _merchant_of(kwargs: dict[str, Any]) -> Merchant:
    """The merchant whose channel a call goes to, from the call's keyword arguments (read as the call reads them)."""
    if "payment" in kwargs:
        return kwargs["payment"].merchant
    if "refund" in kwargs:
        return kwargs["refund"].payment.merchant
    if "device" in kwargs:
        return kwargs["device"].store.merchant
    return kwargs["merchant"]


def _log_upstream_call(channel: str, api: str, outcome: str, code: str, seconds: float) -> None:
    """One line per call, under the request id of the request or task that made it: never the request or answer."""
    milliseconds = round(seconds * 1000)
    logger.info(
        "upstream %s %s %s %s %d ms",
        channel,
        api,
        outcome,
        code or "-",
        milliseconds,
        extra={"channel": channel, "api": api, "outcome": outcome, "code": code, "duration_ms": milliseconds},
    )


def observed(api: str, merchant: Merchant, call: Callable[[], Any]) -> Any:
    """`call()`, an upstream call for `merchant`, counted and timed in the metrics (portal.metrics.upstream_call) and
    logged: by the merchant's channel, `api` and the answer's outcome, or "error" when it raises (the merchant has no
    credentials, a key does not load, a bug). An answer signed with a platform serial the merchant's credentials do
    not have asks for their certificates at once. The calls of this module go through it (`_metered`), and so do
    PayScore's and members' v3 calls, made where their services build them."""
    started = time.perf_counter()
    outcome, code = "error", ""
    try:
        result = call()
        answer = result[1] if isinstance(result, tuple) else result
        outcome, code = answer.outcome.value, answer.code
        if code == "BAD_SIGNATURE" and answer.message == wechatpay_v3.UNKNOWN_SERIAL:
            _refresh_platform_keys_soon(merchant)
        return result
    finally:
        seconds = time.perf_counter() - started
        metrics.upstream_call(merchant.channel, api, outcome, seconds)
        _log_upstream_call(merchant.channel, api, outcome, code, seconds)


def _metered(api: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Every call of the decorated function `observed` under `api`. The function takes keyword arguments only, one of
    which names the merchant."""

    def decorate(call: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(call)
        def metered(**kwargs: Any) -> Any:
            return observed(api, _merchant_of(kwargs), lambda: call(**kwargs))

        return metered

    return decorate


def _refresh_platform_keys_soon(merchant: Merchant) -> None:
    """A WeChat answer was signed with a serial none of the merchant's platform keys has: WeChat may have switched to
    a certificate the schedule has not downloaded yet. Ask for a download of the signing credentials' certificates
    now (at most once a minute per credentials) rather than at their next due time; the order that got the answer is
    settled by its queries as for any unverifiable answer."""
    credentials = signing_credentials_for(merchant)
    if credentials is not None and cache.add(f"platform-keys:refresh-soon:{credentials.pk}", 1, timeout=60):
        logger.warning("answer signed with an unknown platform serial: refreshing credentials %s now", credentials.pk)
        enqueue_on_commit(REFRESH_PLATFORM_KEYS_TASK, credentials.pk)


def guarded(call: Callable[..., Answer], /, **kwargs: Any) -> Answer:
    """`call(**kwargs)` for the services, with whatever it raises turned into a TRANSIENT answer: code
    CHANNEL_NOT_CONFIGURED (the merchant's credentials are missing — raised while the request is built, so nothing was
    sent) or LOCAL_ERROR (anything else: an unreadable key, a bug; the request may or may not have left, so a payment
    call's answer is still found out by querying). The services then record it and count it against their attempt
    limits like any failed call; an exception escaping them would leave the order re-driven by the sweeper forever
    with nothing in its timeline."""
    try:
        return call(**kwargs)
    except DomainError as exc:
        return Answer(outcome=Outcome.TRANSIENT, code=exc.code[:64], message=exc.message[:255])
    except Exception as exc:
        logger.exception("Channel call %s raised %s", call.__name__, type(exc).__name__)
        return Answer(outcome=Outcome.TRANSIENT, code="LOCAL_ERROR", message=type(exc).__name__)


@_metered("authinfo")
def fetch_authinfo(*, device: Device, rawdata: str) -> tuple[Authinfo | None, Answer]:
    store = device.store
    merchant = store.merchant
    if _is_umpay(merchant):
        result = umpay.wxface(
            _umpay_config(merchant),
            umpay.WxfaceRequest(raw_data=rawdata),
            client=upstream_client,
            timeouts=_timeouts(settings.UPSTREAM_READ_TIMEOUT),
        )
        answer = _answer(result)
        if result.outcome is not Outcome.SUCCESS:
            return None, answer
        return Authinfo(
            result.authinfo, result.expires_in or 3600, result.appid, result.mch_id, "", result.sub_mch_id
        ), answer
    config = _wechat_config(merchant)
    result = wechatpay_v2.get_wxpayface_authinfo(
        config,
        wechatpay_v2.FaceAuthinfoRequest(
            store_id=store.store_id, store_name=store.name, device_id=device.device_id, rawdata=rawdata
        ),
        client=upstream_client,
        timeouts=_timeouts(settings.UPSTREAM_READ_TIMEOUT),
    )
    answer = _answer(result)
    if result.outcome is not Outcome.SUCCESS:
        return None, answer
    return Authinfo(
        result.authinfo, result.expires_in or 3600, config.appid, config.mch_id, config.sub_appid, config.sub_mch_id
    ), answer


@_metered("micropay")
def charge(*, payment, auth_code: str) -> Answer:
    """Send the payment (micropay). SUCCESS paid; REJECTED not charged; UNKNOWN / TRANSIENT: find out by querying."""
    merchant = payment.merchant
    read = settings.PAYMENT_CALL_TIMEOUT
    if _is_umpay(merchant):
        result = umpay.micropay(
            _umpay_config(merchant),
            umpay.MicropayRequest(
                order_no=payment.out_trade_no,
                txn_amt=payment.total_fee,
                auth_code=auth_code,
                goods_id=(payment.store.store_id or "goods")[:16],
                goods_info=payment.body,
                order_type=umpay.OrderType(payment.wallet.lower()),
                order_time=datetime.strptime(payment.order_time, "%Y%m%d%H%M%S").replace(tzinfo=umpay.CHINA_TZ),
                back_url=settings.UMPAY_BACK_URL,  # "" (not sent) when there is no plain-HTTP address
                mer_priv=payment.attach,
                is_face_pay=payment.method == "FACE",
            ),
            client=upstream_client,
            timeouts=_timeouts(read),
        )
        return _answer(result, transaction_id=result.transaction_id, wallet_transaction_id=result.dep_bank_seq)
    if _uses_v3(merchant):
        result = wechatpay_v3_pay.codepay(
            wechat_v3_config(merchant),
            wechatpay_v3_pay.CodepayRequest(
                out_trade_no=payment.out_trade_no,
                total=payment.total_fee,
                description=payment.body,
                auth_code=auth_code,
                device_ip=settings.PAYMENT_CREATE_IP,
                device_id=payment.device.device_id if payment.device_id else "",
                store_id=payment.store.store_id,
                attach=payment.attach,
            ),
            client=upstream_client,
            timeouts=_timeouts(read),
            clock=_timestamp,
        )
        return _answer(result, transaction_id=result.transaction_id, openid=result.openid)
    result = wechatpay_v2.micropay(
        _wechat_config(merchant),
        wechatpay_v2.MicropayRequest(
            out_trade_no=payment.out_trade_no,
            total_fee=payment.total_fee,
            body=payment.body,
            auth_code=auth_code,
            spbill_create_ip=settings.PAYMENT_CREATE_IP,
            device_info=payment.device.device_id if payment.device_id else "",
            attach=payment.attach,
        ),
        client=upstream_client,
        timeouts=_timeouts(read),
    )
    return _answer(result, transaction_id=result.transaction_id, openid=result.openid)


@_metered("orderquery")
def query(*, payment) -> Answer:
    """SUCCESS paid; REJECTED definitely not paid; UNKNOWN still open; TRANSIENT the query itself failed."""
    merchant = payment.merchant
    timeouts = _timeouts(settings.UPSTREAM_READ_TIMEOUT)
    if _is_umpay(merchant):
        result = umpay.query_order(
            _umpay_config(merchant),
            order_no=payment.out_trade_no,
            transaction_id=payment.transaction_id,
            txn_amt=payment.total_fee,
            order_time=payment.order_time,
            client=upstream_client,
            timeouts=timeouts,
        )
        return _answer(result, transaction_id=result.transaction_id, order_missing=result.order_exists is False)
    if _uses_v3(merchant):
        result = wechatpay_v3_pay.query(
            wechat_v3_config(merchant),
            out_trade_no=payment.out_trade_no,
            total=payment.total_fee,
            client=upstream_client,
            timeouts=timeouts,
            clock=_timestamp,
        )
    else:
        result = wechatpay_v2.orderquery(
            _wechat_config(merchant),
            wechatpay_v2.OrderQueryRequest(
                transaction_id=payment.transaction_id, out_trade_no=payment.out_trade_no, total_fee=payment.total_fee
            ),
            client=upstream_client,
            timeouts=timeouts,
        )
    code = result.trade_state or result.code
    answer = _answer(
        result, transaction_id=result.transaction_id, openid=result.openid, order_missing=result.order_exists is False
    )
    return Answer(**{**answer.__dict__, "code": code})


@_metered("reverse")
def reverse(*, payment) -> Answer:
    """SUCCESS reversed; TRANSIENT call again (recall=Y); REJECTED a person must look; UNKNOWN answer lost."""
    merchant = payment.merchant
    timeouts = _timeouts(settings.UPSTREAM_READ_TIMEOUT)
    if _is_umpay(merchant):
        result = umpay.cancel_order(
            _umpay_config(merchant),
            order_no=payment.out_trade_no,
            txn_amt=payment.total_fee,
            client=upstream_client,
            timeouts=timeouts,
        )
        missing = result.outcome is Outcome.REJECTED and result.code == umpay.ORDER_NOT_FOUND
        return _answer(result, order_missing=missing)
    if _uses_v3(merchant):
        result = wechatpay_v3_pay.reverse(
            wechat_v3_config(merchant),
            out_trade_no=payment.out_trade_no,
            client=upstream_client,
            timeouts=timeouts,
            clock=_timestamp,
        )
    else:
        result = wechatpay_v2.reverse(
            _wechat_config(merchant, client_certificate=True),
            wechatpay_v2.ReverseRequest(transaction_id=payment.transaction_id, out_trade_no=payment.out_trade_no),
            client=upstream_client,
            timeouts=timeouts,
        )
    not_exist = wechatpay_v3_pay.ORDER_NOT_EXIST_CODES if _uses_v3(merchant) else ("ORDERNOTEXIST",)
    missing = result.outcome is Outcome.REJECTED and result.code in not_exist
    return _answer(result, recall=result.recall, order_missing=missing)


@_metered("refund")
def refund_submit(*, refund) -> Answer:
    """SUCCESS accepted (confirm with refund_query); REJECTED refused; UNKNOWN / TRANSIENT retry same number."""
    payment = refund.payment
    merchant = payment.merchant
    timeouts = _timeouts(settings.UPSTREAM_READ_TIMEOUT)
    if _is_umpay(merchant):
        result = umpay.refund(
            _umpay_config(merchant),
            umpay.RefundRequest(
                order_no=refund.out_refund_no,
                orig_order_no=payment.out_trade_no,
                orig_txn_amt=payment.total_fee,
                txn_amt=refund.refund_fee,
                order_time=datetime.strptime(refund.order_time, "%Y%m%d%H%M%S").replace(tzinfo=umpay.CHINA_TZ),
            ),
            client=upstream_client,
            timeouts=timeouts,
        )
        return _answer(result, refund_id=result.transaction_id)
    if _uses_v3(merchant):
        result = wechatpay_v3_pay.refund(
            wechat_v3_config(merchant),
            wechatpay_v3_pay.RefundRequest(
                out_refund_no=refund.out_refund_no,
                out_trade_no=payment.out_trade_no,
                transaction_id=payment.transaction_id,
                total=payment.total_fee,
                refund=refund.refund_fee,
                reason=refund.reason,
            ),
            client=upstream_client,
            timeouts=timeouts,
            clock=_timestamp,
        )
        return _answer(result, refund_id=result.refund_id)
    result = wechatpay_v2.refund(
        _wechat_config(merchant, client_certificate=True),
        wechatpay_v2.RefundRequest(
            out_refund_no=refund.out_refund_no,
            total_fee=payment.total_fee,
            refund_fee=refund.refund_fee,
            transaction_id=payment.transaction_id,
            out_trade_no=payment.out_trade_no,
            refund_desc=refund.reason,
        ),
        client=upstream_client,
        timeouts=timeouts,
    )
    return _answer(result, refund_id=result.refund_id)


@_metered("refundquery")
def refund_query(*, refund) -> Answer:
    """SUCCESS refunded; REJECTED failed (nothing refunded); UNKNOWN still processing; TRANSIENT query failed."""
    payment = refund.payment
    merchant = payment.merchant
    timeouts = _timeouts(settings.UPSTREAM_READ_TIMEOUT)
    if _is_umpay(merchant):
        result = umpay.refund_query(
            _umpay_config(merchant),
            order_no=refund.out_refund_no,
            txn_amt=refund.refund_fee,
            orig_order_no=payment.out_trade_no,
            client=upstream_client,
            timeouts=timeouts,
        )
        return _answer(result, refund_id=result.transaction_id)
    if _uses_v3(merchant):
        result = wechatpay_v3_pay.refund_query(
            wechat_v3_config(merchant),
            out_refund_no=refund.out_refund_no,
            client=upstream_client,
            timeouts=timeouts,
            clock=_timestamp,
        )
        answer = _answer(result, refund_id=result.refund_id, order_missing=result.order_exists is False)
        return Answer(**{**answer.__dict__, "code": result.status or result.code})
    result = wechatpay_v2.refundquery(
        _wechat_config(merchant),
        wechatpay_v2.RefundQueryRequest(out_refund_no=refund.out_refund_no),
        client=upstream_client,
        timeouts=timeouts,
    )
    missing = result.outcome is Outcome.REJECTED and result.code == "REFUNDNOTEXIST"
    answer = _answer(result, order_missing=missing)
    return Answer(**{**answer.__dict__, "code": result.refund_status or result.code})


def _timestamp() -> float:
    """The product's clock for v3 signatures and answer timestamps: the payment services' (tests share one fake clock
    with the sandbox there, as payscore.services._timestamp does). Imported here: services import this module."""
    from payments import services

    return services._now().timestamp()


@_metered("downloadbill")
def download_bill(*, merchant: Merchant, bill_date: str, bill_type: str = "ALL") -> wechatpay_v2.DownloadBillResult:
    """The WeChat Pay trade bill of `bill_date` (yyyyMMdd) for this merchant (in service-provider mode the provider's
    credentials and the merchant's sub_mch_id): over API v3 (`tradebill`) when those credentials have APIv3
    configured (`wechat_v3_configured`), else over API v2 (`downloadbill`). UMF merchants have no bill download
    here."""
    if _is_umpay(merchant):
        raise InvalidState("UMF bills are not downloaded; import the file.", code="NO_BILL_DOWNLOAD")
    timeouts = _timeouts(settings.RECONCILIATION_DOWNLOAD_TIMEOUT)
    credentials = _credentials(merchant)
    if wechat_v3_configured(credentials):
        config = wechat_v3_config(merchant, credentials=credentials)
        return wechatpay_v3.tradebill(
            config,
            wechatpay_v3.TradeBillRequest(
                bill_date=datetime.strptime(bill_date, "%Y%m%d").date(),
                sub_mchid=config.sub_mchid,
                bill_type=bill_type,
            ),
            client=upstream_client,
            timeouts=timeouts,
            clock=_timestamp,
        )
    return wechatpay_v2.downloadbill(
        _wechat_config(merchant),
        wechatpay_v2.DownloadBillRequest(bill_date=bill_date, bill_type=bill_type),
        client=upstream_client,
        timeouts=timeouts,
    )
