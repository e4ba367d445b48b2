"""https:// webhooks with certificates generated here: verification on and off, and client certificates."""

import contextlib
import datetime
import ipaddress
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from webhook_sink import WebhookSink, settled_counters

from nanomq_py.broker.events import ClientInfo
from nanomq_py.settings import WebhookRule, WebhookSettings, WebhookTls
from nanomq_py.webhook import WebHook

RULES = [WebhookRule("on_client_connack")]
CLIENT = ClientInfo("tls_client", "tls_user", 5, 30, "127.0.0.1", 50000, 0, True)


def self_signed(directory, name):
    """(certfile, keyfile) of a self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile = directory / f"{name}.crt"
    keyfile = directory / f"{name}.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(certfile), str(keyfile)


def server_context(certfile, keyfile, client_ca=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certfile, keyfile)
    if client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


@contextlib.contextmanager
def hook_for(url, tls):
    settings = WebhookSettings(url=url, events=RULES, tls=tls, max_retries=0, cancel_timeout=2.0, pool_size=1)
    hook = WebHook(settings)
    hook.start()
    try:
        yield hook
    finally:
        hook.stop(timeout=1.0)


def send_one(sink, tls):
    with hook_for(sink.url, tls) as hook:
        hook.on_client_connack(CLIENT, "success")
        hook.stop(timeout=5)
    return hook.counters()


def test_https_with_verification_against_the_configured_ca(tmp_path):
    certfile, keyfile = self_signed(tmp_path, "server")
    with WebhookSink(ssl_context=server_context(certfile, keyfile)) as sink:
        assert sink.url.startswith("https://127.0.0.1:")
        counters = send_one(sink, WebhookTls(cacertfile=certfile, verify=True))
        assert counters["delivered"] == 1
        assert sink.requests[0].json()["clientid"] == "tls_client"


def test_https_refuses_a_server_the_ca_does_not_vouch_for(tmp_path):
    certfile, keyfile = self_signed(tmp_path, "server")
    other_ca, _ = self_signed(tmp_path, "stranger")
    with WebhookSink(ssl_context=server_context(certfile, keyfile)) as sink:
        counters = send_one(sink, WebhookTls(cacertfile=other_ca, verify=True))
        assert counters == settled_counters(queued=1, failed=1)
        assert sink.requests == []


def test_https_without_verification_accepts_a_self_signed_server(tmp_path):
    certfile, keyfile = self_signed(tmp_path, "server")
    with WebhookSink(ssl_context=server_context(certfile, keyfile)) as sink:
        assert send_one(sink, WebhookTls(verify=False))["delivered"] == 1


def test_https_presents_the_configured_client_certificate(tmp_path):
    certfile, keyfile = self_signed(tmp_path, "server")
    client_cert, client_key = self_signed(tmp_path, "client")
    context = server_context(certfile, keyfile, client_ca=client_cert)
    with WebhookSink(ssl_context=context) as sink:
        without_cert = send_one(sink, WebhookTls(cacertfile=certfile))
        with_cert = send_one(sink, WebhookTls(cacertfile=certfile, certfile=client_cert, keyfile=client_key))
        assert without_cert["failed"] == 1
        assert with_cert["delivered"] == 1
        assert len(sink.requests) == 1
