"""tools/infra/tls.py: the private CA is made once and kept; the broker certificate
follows the hosts asked for and is renewed by the same CA."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

from tools.device import device_config

from tools.infra import tls


def _sans(files) -> set[str]:
    cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | \
        {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def test_ca_is_kept_and_the_certificate_grows_with_the_hosts(tmp_path):
    first = tls.ensure_tls(tmp_path / "tls")
    ca, cert = first.ca.read_bytes(), first.cert.read_bytes()
    assert {"localhost", "127.0.0.1", "::1"} <= _sans(first)
    assert tls.ensure_tls(tmp_path / "tls").cert.read_bytes() == cert  # nothing to do: untouched
    again = tls.ensure_tls(tmp_path / "tls", hosts=["10.0.0.5", "broker.lan"])
    assert again.ca.read_bytes() == ca  # flashed boards keep trusting the broker
    assert again.cert.read_bytes() != cert and {"10.0.0.5", "broker.lan", "localhost"} <= _sans(again)
    issued = x509.load_pem_x509_certificate(again.cert.read_bytes())
    issued.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    for key in (again.key, again.ca_key):
        assert key.stat().st_mode & 0o777 == 0o600
    assert again.dir.stat().st_mode & 0o777 == 0o700


def test_a_certificate_near_its_end_is_renewed(tmp_path, monkeypatch):
    files = tls.ensure_tls(tmp_path / "tls")
    cert = files.cert.read_bytes()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=tls.CERT_DAYS - tls.RENEW_BEFORE_DAYS + 1)
    monkeypatch.setattr(tls, "_now", lambda: later)
    assert tls.ensure_tls(tmp_path / "tls").cert.read_bytes() != cert


def test_device_config_carries_the_ca_as_der_and_refuses_what_is_not_one(tmp_path):
    import base64
    import json
    import ssl

    pem = tls.ensure_tls(tmp_path / "tls").ca_pem()
    doc = json.loads(device_config.render({"device_id": "d1", "mqtt_host": "h", "key": "00" * 32, "mqtt_ca": pem}))
    assert doc["mqtt"]["port"] == 8883 and base64.b64decode(doc["mqtt"]["ca"]) == ssl.PEM_cert_to_DER_cert(pem)
    plain = json.loads(device_config.render({"device_id": "d1", "mqtt_host": "h", "key": "00" * 32}))
    assert plain["mqtt"]["port"] == 1883 and "ca" not in plain["mqtt"]
    with pytest.raises(device_config.ConfigError, match="mqtt_ca: not a PEM certificate"):
        device_config.check({"device_id": "d1", "mqtt_host": "h", "key": "00", "mqtt_ca": "hello"})
