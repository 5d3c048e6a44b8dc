"""RSA key loading and PKCS#1 v1.5 signatures shared by WeChat Pay v3 (SHA-256) and UMF (SHA-1).

Keys arrive as PEM or DER text/bytes from encrypted credential fields; loaded keys are cached by content so a
busy worker does not parse the same key for every call. Errors never echo the key material.
"""

from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PublicKeySource = str | bytes | rsa.RSAPublicKey
PrivateKeySource = str | bytes | rsa.RSAPrivateKey


def _bytes(source: str | bytes) -> bytes:
    return source.encode("ascii") if isinstance(source, str) else bytes(source)


@functools.lru_cache(maxsize=64)
def _private_key(data: bytes) -> rsa.RSAPrivateKey:
    try:
        if b"-----BEGIN" in data:
            key: Any = serialization.load_pem_private_key(data, password=None)
        else:
            key = serialization.load_der_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ValueError("private key could not be loaded") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("private key is not RSA")
    return key


def load_private_key(source: PrivateKeySource) -> rsa.RSAPrivateKey:
    """RSA private key from PEM (PKCS#8 or PKCS#1) or DER PKCS#8 (UMF's `*.key.p8`); key objects pass through."""
    if isinstance(source, rsa.RSAPrivateKey):
        return source
    return _private_key(_bytes(source))


@functools.lru_cache(maxsize=256)
def _public_key(data: bytes) -> rsa.RSAPublicKey:
    try:
        if b"-----BEGIN CERTIFICATE" in data:
            key: Any = x509.load_pem_x509_certificate(data).public_key()
        elif b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            try:
                key = x509.load_der_x509_certificate(data).public_key()
            except ValueError:
                key = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        raise ValueError("public key or certificate could not be loaded") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public key is not RSA")
    return key


def load_public_key(source: PublicKeySource) -> rsa.RSAPublicKey:
    """RSA public key from a certificate or public key, PEM or DER; key objects pass through.

    Only the key is used. Certificates are pinned by configuration (UMF's test certificate expired in 2006,
    WeChat platform certificates are chosen by serial), so dates and chains are deliberately not checked.
    """
    if isinstance(source, rsa.RSAPublicKey):
        return source
    return _public_key(_bytes(source))


def certificate_serial(certificate: str | bytes) -> str:
    """Serial number in upper-case hex, as WeChat names certificates (`serial_no`, `Wechatpay-Serial`)."""
    data = _bytes(certificate)
    if b"-----BEGIN" in data:
        cert = x509.load_pem_x509_certificate(data)
    else:
        cert = x509.load_der_x509_certificate(data)
    return format(cert.serial_number, "X")


def rsa_sign(private_key: PrivateKeySource, message: bytes, algorithm: hashes.HashAlgorithm) -> str:
    """base64(RSASSA-PKCS1-v1_5 signature)."""
    signature = load_private_key(private_key).sign(message, padding.PKCS1v15(), algorithm)
    return base64.b64encode(signature).decode("ascii")


def rsa_verify(
    public_key: PublicKeySource, message: bytes, signature_b64: str, algorithm: hashes.HashAlgorithm
) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    try:
        load_public_key(public_key).verify(signature, message, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True
