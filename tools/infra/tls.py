"""The private CA and the broker certificate that MQTT over TLS uses.

    files = ensure_tls(Path("var/tls"), hosts=["192.168.1.10"])
    files.ca        # ca.pem: public; `fleetflow flash` writes it into each device's config
    files.cert      # broker.pem + broker.key: Mosquitto's `certfile`/`keyfile`
    files.ca_pem()  # the CA's text

One CA per installation, made once and kept: every device flashed with it
keeps trusting the broker. The broker certificate is signed by it for
localhost, 127.0.0.1, ::1, this machine's name and the `hosts` given (the
names and addresses boards use to reach the broker), and is made again (by
the same CA) when a host is missing, it was signed by another CA, or it ends
within RENEW_BEFORE_DAYS. Keys are written 0600 in a 0700 folder under var/
(git-ignored), never anywhere else.

Keys are ECDSA P-256: what mbedtls on ESP32 and RP2 verifies fastest and
with the least heap (docs/decisions.md "MQTT over TLS").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
CERT_DAYS = 825           # what browsers accept for a server certificate; boards don't care
RENEW_BEFORE_DAYS = 30
# A certificate valid from a little before now: a board whose clock is a few
# minutes behind (NTP not yet synced to the second) still accepts it.
BACKDATE = dt.timedelta(hours=1)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


class TlsError(RuntimeError):
    """A CA or certificate file that is there but cannot be used."""


@dataclass(frozen=True)
class TlsFiles:
    dir: Path
    ca: Path
    ca_key: Path
    cert: Path
    key: Path

    def ca_pem(self) -> str:
        return self.ca.read_text()


def tls_files(directory) -> TlsFiles:
    d = Path(directory).resolve()  # absolute: Mosquitto's config names these files
    return TlsFiles(d, d / "ca.pem", d / "ca.key", d / "broker.pem", d / "broker.key")


def ensure_tls(directory, hosts=()) -> TlsFiles:
    """The CA (made once) and a broker certificate valid for LOCAL_HOSTS,
    this machine's name and `hosts`; made or renewed as needed."""
    files = tls_files(directory)
    files.dir.mkdir(parents=True, exist_ok=True)
    files.dir.chmod(0o700)
    want = _host_set(hosts)
    if files.ca.exists() and files.ca_key.exists():
        ca_cert, ca_key = _load(files.ca, files.ca_key)
    else:
        ca_cert, ca_key = _make_ca()
        _write_key(files.ca_key, ca_key)
        files.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
        files.cert.unlink(missing_ok=True)  # signed by the CA that was replaced
    if _cert_needed(files, ca_cert, want):
        cert, key = _make_cert(ca_cert, ca_key, sorted(want | _cert_hosts(files)))
        _write_key(files.key, key)
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return files


def _host_set(hosts) -> set[str]:
    out = set(LOCAL_HOSTS)
    name = socket.gethostname()
    if name:
        out.add(name)
    out.update(h for h in hosts if h and h not in ("0.0.0.0", "::"))
    return out


def _load(cert_path: Path, key_path: Path):
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise TlsError(f"{cert_path} / {key_path}: not a PEM certificate and key ({exc}); "
                       f"move them away to have a new CA made (every device then needs the new ca.pem)") from None
    return cert, key


def _write_key(path: Path, key) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetflow"),
                      x509.NameAttribute(NameOID.COMMON_NAME, f"fleetflow CA {socket.gethostname()}")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _san(hosts) -> list:
    names: list = []
    for h in hosts:
        try:
            ip = ipaddress.ip_address(h)
        except ValueError:
            names.append(x509.DNSName(h))
            continue
        names.append(x509.IPAddress(ip))
        # mbedtls before 3.6 matched only DNS names: a board given an address
        # finds it here too.
        names.append(x509.DNSName(str(ip)))
    return names


def _make_cert(ca_cert, ca_key, hosts):
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetflow"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, hosts[0] if hosts else "localhost")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE).not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _cert_hosts(files: TlsFiles) -> set[str]:
    """The hosts the current broker certificate names (kept when it is renewed)."""
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return set()
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | \
        {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def _cert_needed(files: TlsFiles, ca_cert, want: set[str]) -> bool:
    if not (files.cert.exists() and files.key.exists()):
        return True
    try:
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
    except ValueError:
        return True
    if cert.issuer != ca_cert.subject:
        return True
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (InvalidSignature, ValueError, TypeError):  # another CA of the same name
        return True
    if cert.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return True
    return not want <= _cert_hosts(files)


def mosquitto_lines(files: TlsFiles) -> list[str]:
    """The lines after a Mosquitto `listener` that make it TLS with these files."""
    return [f"cafile {files.ca}", f"certfile {files.cert}", f"keyfile {files.key}"]


def amqtt_listener(files: TlsFiles) -> dict:
    """The keys of an amqtt listener that make it TLS with these files."""
    return {"ssl": True, "cafile": str(files.ca), "certfile": str(files.cert), "keyfile": str(files.key)}


def client_context(ca_file) -> "ssl.SSLContext":
    """A CPython TLS client context that trusts only `ca_file` and checks the host name."""
    import ssl

    return ssl.create_default_context(cafile=str(ca_file))


def ca_der_b64(pem: str) -> str:
    """The CA as a device's config carries it: base64 of the DER (fleetflow.link)."""
    import base64
    import ssl

    try:
        der = ssl.PEM_cert_to_DER_cert(pem)
        x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise TlsError(f"not a PEM certificate: {exc}") from None
    return base64.b64encode(der).decode()
