"""The reference terminal client signs exactly as the README's worked example (computed independently with
`openssl dgst -sha256 -hmac`), and its requests are accepted by the server."""

import pytest

from payments.terminal_client import authorization_header, sign

README_SIGNATURE = "sCpRVBirMa9P4WW+T0HvD409qBXhm82YDaGWXxTumK4="


def test_sign_matches_the_readme_worked_example():
    assert (
        sign(
            secret="s3cr3t-device-key",
            method="POST",
            path_with_query="/api/terminal/v1/heartbeat",
            timestamp="1763800000",
            nonce="0f8e2c4d6b1a3e5f",
            body=b'{"sdk_version":"2.15"}',
        )
        == README_SIGNATURE
    )


def test_header_format():
    header = authorization_header(
        device_id="DEMO-DEVICE-01",
        secret="s3cr3t-device-key",
        method="post",
        path_with_query="/api/terminal/v1/heartbeat",
        body=b'{"sdk_version":"2.15"}',
        timestamp=1763800000,
        nonce="0f8e2c4d6b1a3e5f",
    )
    assert header == (
        'TERMINAL-HMAC-SHA256 device="DEMO-DEVICE-01",timestamp="1763800000",nonce="0f8e2c4d6b1a3e5f",'
        f'signature="{README_SIGNATURE}"'
    )


@pytest.mark.django_db
def test_query_string_is_signed_as_sent(terminal):
    # The heartbeat ignores the query, but the signature must cover it exactly as the server sees it.
    response = terminal.request("POST", "heartbeat", {}, params={"b": "2", "a": "中文"})
    assert response.status_code == 200


def test_repr_hides_the_secret():
    from payments.terminal_client import TerminalClient

    client = TerminalClient("http://x", device_id="D1", secret="very-secret-value")
    assert "very-secret-value" not in repr(client)
