"""TLS as a stream layer: the standard library's sans-IO `ssl.SSLObject` over two
`ssl.MemoryBIO`s, so it runs inside the connection's ordinary non-blocking
read loop — no blocking handshake, no wrapped socket, no monkey-patching.

Wire bytes go into the incoming BIO; the handshake and decryption happen
there, and whatever OpenSSL wants sent (handshake records, alerts, session
tickets) is written to the socket as it is. A handshake failure closes only
that connection, with one log line naming the peer. Memory per connection is
OpenSSL's own state plus at most one read (64 KiB) of undecrypted bytes.
"""

from __future__ import annotations

import logging
import ssl

log = logging.getLogger("nanomq.transport")

_READ_SIZE = 65536


def server_context(listener):
    """An SSLContext for a ssl/wss listener; OSError names the listener and the file."""
    tls = listener.tls
    where = f"listeners.{listener.kind}" + ("" if listener.name == "default" else f".{listener.name}")
    if tls is None or not tls.certfile or not tls.keyfile:
        raise OSError(f"{where}: a {listener.kind} listener needs certfile and keyfile")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_RENEGOTIATION  # a client could otherwise make us redo handshakes at will
    try:
        # A callable, never None: None would make OpenSSL prompt on the terminal for an encrypted key.
        context.load_cert_chain(tls.certfile, tls.keyfile, password=lambda: tls.key_password)
    except OSError as exc:  # ssl.SSLError included
        raise OSError(
            f"{where}: cannot load certfile {tls.certfile} with keyfile {tls.keyfile}"
            f" (wrong files, or a wrong or missing key_password?): {_reason(exc)}"
        ) from None
    if tls.verify_peer:
        if not tls.cacertfile:
            raise OSError(f"{where}: verify_peer = true needs a cacertfile to check client certificates")
        try:
            context.load_verify_locations(cafile=tls.cacertfile)
        except OSError as exc:  # ssl.SSLError included
            raise OSError(f"{where}: cannot load cacertfile {tls.cacertfile}: {_reason(exc)}") from None
        context.verify_mode = ssl.CERT_REQUIRED if tls.fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    return context


def _reason(exc):
    return getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)


class TlsLayer:
    """One connection's TLS session: ciphertext in, plaintext out, and back."""

    __slots__ = ("tls", "incoming_bio", "outgoing_bio", "peer", "handshaken", "closing")

    def __init__(self, context, peer):
        self.incoming_bio = ssl.MemoryBIO()
        self.outgoing_bio = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming_bio, self.outgoing_bio, server_side=True)
        self.peer = peer
        self.handshaken = False
        self.closing = False  # set when the connection must end: failure or close_notify

    def incoming(self, conn, data):
        """Ciphertext from the socket -> the plaintext it completes (maybe b"")."""
        self.incoming_bio.write(data)
        plain = b""
        try:
            if not self.handshaken:
                self.tls.do_handshake()
                self.handshaken = True
            plain = self._decrypt()
        except ssl.SSLWantReadError:
            pass  # a record is incomplete: wait for more bytes
        except ssl.SSLError as exc:
            self.closing = True
            conn.broker.stats.protocol_errors += 1
            stage = "TLS" if self.handshaken else "TLS handshake"
            log.warning("%s with %s:%s failed: %s", stage, *self.peer, exc.reason or exc)
        if self.outgoing_bio.pending:
            conn.write_raw(self.outgoing_bio.read())
        return plain

    def _decrypt(self):
        """Everything decryptable now; one SSLWantReadError at most per call, none
        when the input ends on a record boundary (the usual case)."""
        tls = self.tls
        incoming_bio = self.incoming_bio
        chunks = []
        try:
            while True:
                chunk = tls.read(_READ_SIZE)
                if not chunk:  # close_notify from the peer
                    self.closing = True
                    break
                chunks.append(chunk)
                if not incoming_bio.pending and not tls.pending():
                    break
        except ssl.SSLWantReadError:
            pass
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def outgoing(self, data):
        """Plaintext -> the TLS records that carry it."""
        try:
            self.tls.write(data)
        except ssl.SSLError:
            return b""  # the session has failed or ended: the connection is closing anyway
        return self.outgoing_bio.read()

    def goodbye(self):
        """The close_notify alert to send before the connection's FIN, if the session is up."""
        if self.handshaken and not self.closing:
            try:
                self.tls.unwrap()
            except ssl.SSLError:
                pass  # SSLWantReadError: the alert is written, the peer's reply is not awaited
        return self.outgoing_bio.read()
