"""Test keys and fake transports for the gateway tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass(frozen=True)
class KeyPair:
    private_key: rsa.RSAPrivateKey
    private_pem: str
    public_pem: str
    cert_pem: str
    serial: str


def make_key_pair(common_name: str) -> KeyPair:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        private_key=key,
        private_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        public_pem=key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode(),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        serial=format(cert.serial_number, "X"),
    )


Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(handler: Handler) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


def raising(exc_type: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("simulated", request=request)  # type: ignore[call-arg]

    return handler


class RecordingV2Server:
    """Answers WeChat Pay v2 calls like WeChat does: checks the request's sign, answers with signed XML."""

    def __init__(self, api_key: str, answer: dict[str, str], *, sign_answer: bool = True) -> None:
        self.api_key = api_key
        self.answer = answer
        self.sign_answer = sign_answer
        self.requests: list[dict[str, str]] = []
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        from payments.gateways import wechatpay_v2

        fields = wechatpay_v2.from_xml(request.content)
        assert wechatpay_v2.verify(fields, self.api_key), "client sent a badly signed request"
        self.requests.append(fields)
        self.paths.append(request.url.path)
        answer = dict(self.answer)
        if self.sign_answer:
            answer["sign"] = wechatpay_v2.sign(answer, self.api_key, fields.get("sign_type", "MD5"))
        return httpx.Response(200, content=wechatpay_v2.to_xml(answer).encode())
