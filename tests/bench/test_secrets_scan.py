"""The log scan finds whole secrets and fragments of private keys, and never reports the values."""

from bench.secrets_scan import needles, scan

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
    "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    "-----END PRIVATE KEY-----\n"
)


def test_needles():
    found = needles(["abcdefghijklmnopqrstuvwxyz012345", "short", "", PEM])

    assert found == {
        "abcdefghijklmnopqrstuvwxyz012345",
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj",
        "MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu",
    }


def test_scan_counts_files_and_secrets(tmp_path):
    (tmp_path / "clean.log").write_text("GET /healthz 200\n")
    (tmp_path / "leaky.log").write_text(
        "key=abcdefghijklmnopqrstuvwxyz012345 and MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n"
    )

    hits = scan(sorted(tmp_path.iterdir()), ["abcdefghijklmnopqrstuvwxyz012345", PEM, "device-secret-0123456789"])

    assert hits == [("leaky.log", 2)]


def test_a_secret_is_found_in_a_json_log_line_too(tmp_path):
    import json

    secret = 'quote"back\\slash-密钥-0123456789'
    (tmp_path / "app.log").write_text(json.dumps({"message": f"leaked {secret}"}) + "\n")
    (tmp_path / "worker.log").write_text(json.dumps({"message": f"leaked {secret}"}, ensure_ascii=False) + "\n")

    assert scan(sorted(tmp_path.iterdir()), [secret]) == [("app.log", 1), ("worker.log", 1)]
