"""Time to connect to a Kafka listener until the first request is served:
PLAINTEXT (TCP, ApiVersions) against SASL_SSL (TCP, TLS handshake,
ApiVersions, SaslHandshake, SaslAuthenticate with PLAIN and a token), each
N times in turn over loopback; prints the median and p99 in milliseconds.
Used by benches/security.sh.

    python benches/handshake.py PLAIN_ADDR SASL_SSL_ADDR CA_PEM TOKEN [N=200]
"""

import socket
import ssl
import struct
import sys
import time


def frame(api_key, version, correlation, body=b""):
    header = struct.pack(">hhih", api_key, version, correlation, 3) + b"ben"
    return struct.pack(">i", len(header) + len(body)) + header + body


def read(sock):
    size = struct.unpack(">i", exact(sock, 4))[0]
    return exact(sock, size)


def exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise ConnectionError("closed")
        out += chunk
    return out


def plaintext(addr):
    host, port = addr.rsplit(":", 1)
    started = time.perf_counter()
    with socket.create_connection((host, int(port))) as s:
        s.sendall(frame(18, 0, 1))
        read(s)
        return time.perf_counter() - started


def secure(addr, context, token):
    host, port = addr.rsplit(":", 1)
    started = time.perf_counter()
    with socket.create_connection((host, int(port))) as raw:
        with context.wrap_socket(raw, server_hostname=host) as s:
            s.sendall(frame(18, 0, 1))
            read(s)
            s.sendall(frame(17, 1, 2, struct.pack(">h", 5) + b"PLAIN"))
            assert struct.unpack(">h", read(s)[4:6])[0] == 0
            auth = b"\0public/default\0token:" + token.encode()
            s.sendall(frame(36, 1, 3, struct.pack(">i", len(auth)) + auth))
            assert struct.unpack(">h", read(s)[4:6])[0] == 0
            return time.perf_counter() - started


def summary(name, times):
    times = sorted(times)
    median = times[len(times) // 2] * 1000
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))] * 1000
    print(f"{name:<40} median {median:7.3f} ms   p99 {p99:7.3f} ms   (n={len(times)})")
    return median


def main():
    plain_addr, secure_addr, ca, token = sys.argv[1:5]
    n = int(sys.argv[5]) if len(sys.argv) > 5 else 200
    context = ssl.create_default_context(cafile=ca)
    plain, sec = [], []
    for _ in range(n):
        plain.append(plaintext(plain_addr))
        sec.append(secure(secure_addr, context, token))
    a = summary("PLAINTEXT: connect + ApiVersions", plain)
    b = summary("SASL_SSL: connect + TLS + SASL PLAIN", sec)
    print(f"ratio SASL_SSL / PLAINTEXT: {b / a:.1f}x")


if __name__ == "__main__":
    main()
