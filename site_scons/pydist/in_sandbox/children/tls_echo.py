"""A TLS handshake with itself on loopback: a server thread with CERT and KEY, a client that trusts CERT sends
``hello`` and must get ``HELLO`` back; print the protocol and cipher.

    python tls_echo.py CERT KEY

A child program of the runtime tests (runtime_tests.py: tls_handshake, fips_mode and the fipsinstall checks, in
and outside FIPS mode). Standard library only, Python 3.11 and later.
"""

from __future__ import annotations

# Loaded before ssl, as in a program that also hashes: _hashlib then _ssl set up this Python's OpenSSL.
import hashlib  # noqa: F401
import socket
import ssl
import sys
import threading


def serve_once(listener: socket.socket, context: ssl.SSLContext) -> None:
    """Accept one connection and answer what it sends, upper-cased."""
    conn, _ = listener.accept()
    with context.wrap_socket(conn, server_side=True) as tls:
        tls.sendall(tls.recv(100).upper())


def main(cert: str, key: str) -> None:
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=serve_once, args=(listener, server_ctx), daemon=True).start()
    client_ctx = ssl.create_default_context(cafile=cert)
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"hello")
        assert tls.recv(100) == b"HELLO"
        cipher = tls.cipher()
        assert cipher is not None
        print(tls.version(), cipher[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
