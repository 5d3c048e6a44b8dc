"""Parsing and validation of channel credentials as a person enters them.

Every check here runs before anything is stored, so a key that does not parse, a certificate that does not belong
to its key or a v2 key of the wrong length is a form error, not a signing failure at the first payment. Messages
name the problem, never the value.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class CredentialError(ValueError):
    """A credential that cannot be used; `field` names the form field."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def _text(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


def validate_api_v2_key(value: str) -> str:
    value = value.strip()
    if len(value) != 32 or not value.isascii() or not value.isalnum():
        raise CredentialError("wechat_api_v2_key", "The API v2 key must be exactly 32 letters or digits.")
    return value


def validate_api_v3_key(value: str) -> str:
    value = value.strip()
    # AES-256-GCM uses the key's 32 bytes as they are typed.
    if len(value.encode("utf-8")) != 32:
        raise CredentialError("wechat_api_v3_key", "The APIv3 key must be exactly 32 bytes.")
    return value


def load_private_key(field: str, data: bytes | str) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM (PKCS#1 or PKCS#8) or PKCS#8 DER (UMF's *.key.p8)."""
    raw = _text(data)
    key = None
    for loader in (serialization.load_pem_private_key, serialization.load_der_private_key):
        try:
            key = loader(raw.strip() if loader is serialization.load_pem_private_key else raw, password=None)
            break
        except (ValueError, TypeError):
            continue
    if key is None:
        raise CredentialError(field, "This is not a readable private key (expected PEM or PKCS#8 DER, no password).")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CredentialError(field, "The private key must be an RSA key.")
    return key


def load_certificate(field: str, data: bytes | str) -> x509.Certificate:
    raw = _text(data)
    for loader in (x509.load_pem_x509_certificate, x509.load_der_x509_certificate):
        try:
            return loader(raw.strip() if loader is x509.load_pem_x509_certificate else raw)
        except ValueError:
            continue
    raise CredentialError(field, "This is not a readable X.509 certificate (expected PEM or DER).")


def load_certificates(field: str, data: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(_text(data).strip())
    except ValueError as exc:
        raise CredentialError(field, "These are not readable PEM certificates.") from exc
    return certs


def load_public_key(field: str, data: bytes | str) -> rsa.RSAPublicKey:
    try:
        key = serialization.load_pem_public_key(_text(data).strip())
    except ValueError as exc:
        raise CredentialError(field, "This is not a readable PEM public key.") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise CredentialError(field, "The public key must be an RSA key.")
    return key


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def certificate_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def certificate_serial(cert: x509.Certificate) -> str:
    """serial_no as WeChat Pay expects it: upper-case hex without leading zeros."""
    return format(cert.serial_number, "X")


def certificate_matches_key(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> bool:
    return cert.public_key().public_numbers() == key.public_key().public_numbers()


def generate_key_and_certificate(common_name: str, *, key_size: int = 2048) -> tuple[str, str]:
    """A new RSA key and a self-signed certificate for it, as PEM: for the demo merchants and the sandbox, which
    stand in for keys that WeChat Pay or UMF would issue."""
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return private_key_pem(key), certificate_pem(cert)


def wechat_v3_configured(credentials) -> bool:
    """Whether these `ChannelCredentials` can sign v3 requests and verify v3 answers: the APIv3 key, the merchant
    API private key and its certificate serial, and a WeChat Pay platform certificate or platform public key (with
    its id)."""
    return bool(
        credentials.wechat_api_v3_key
        and credentials.wechat_private_key
        and credentials.wechat_cert_serial
        and (
            credentials.wechat_platform_certificates
            or (credentials.wechat_platform_public_key and credentials.wechat_platform_public_key_id)
        )
    )
