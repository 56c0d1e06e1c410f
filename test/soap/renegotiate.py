"""
A TLS 1.2 client that connects with one certificate, then renegotiates
presenting another, then sends one HTTP request: the probe of issue 17 item 1.
Node's own TLS client cannot change its certificate on renegotiation, so the
tests drive this one (Debian's python3-openssl, /usr/bin/python3).

Usage: renegotiate.py HOST PORT CA CERT_A KEY_A CERT_B KEY_B PATH BODY_FILE
Prints one JSON line: {"renegotiated": bool, "error": str|null, "answer": str|null}
"""
import json
import socket
import sys

from OpenSSL import SSL, crypto

host, port, ca, cert_a, key_a, cert_b, key_b, path, body_file = sys.argv[1:10]
body = open(body_file, 'rb').read()


def load(cert_file, key_file):
    with open(cert_file, 'rb') as f:
        cert = crypto.load_certificate(crypto.FILETYPE_PEM, f.read())
    with open(key_file, 'rb') as f:
        key = crypto.load_privatekey(crypto.FILETYPE_PEM, f.read())
    return cert, key


ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
ctx.set_max_proto_version(SSL.TLS1_2_VERSION)  # TLS 1.3 has no renegotiation
ctx.load_verify_locations(ca)
ctx.set_verify(SSL.VERIFY_PEER, lambda *args: args[-1])
a_cert, a_key = load(cert_a, key_a)
ctx.use_certificate(a_cert)
ctx.use_privatekey(a_key)

sock = socket.create_connection((host, int(port)), timeout=20)
sock.settimeout(None)  # blocking: pyOpenSSL raises WantRead on a socket with a timeout; the caller bounds the run
conn = SSL.Connection(ctx, sock)
conn.set_connect_state()
conn.do_handshake()

result = {'renegotiated': False, 'error': None, 'answer': None}
b_cert, b_key = load(cert_b, key_b)
conn.use_certificate(b_cert)
conn.use_privatekey(b_key)
try:
    conn.renegotiate()
    conn.do_handshake()
    # The server's part of the renegotiation arrives with its next records:
    # reading drives it; an HTTP answer then comes on the renegotiated link.
    result['renegotiated'] = True
except SSL.Error as err:
    result['error'] = 'renegotiate: ' + str(err)

if result['error'] is None:
    request = (
        'POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml; charset=utf-8\r\n'
        'Content-Length: %d\r\nConnection: close\r\n\r\n' % (path, host, len(body))
    ).encode() + body
    try:
        conn.sendall(request)
        chunks = []
        while True:
            try:
                data = conn.recv(65536)
            except SSL.ZeroReturnError:
                break
            if not data:
                break
            chunks.append(data)
        result['answer'] = b''.join(chunks).decode('utf-8', 'replace')
        result['renegotiated'] = conn.total_renegotiations() > 0
    except (SSL.Error, OSError) as err:
        result['error'] = 'request: ' + str(err)
        result['renegotiated'] = conn.total_renegotiations() > 0

print(json.dumps(result))
