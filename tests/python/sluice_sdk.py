"""Helpers for driving the unmodified official SLS Python SDK against a local Sluice.

The SDK connects to `{project}.{endpoint}`; production users have wildcard DNS for
that. Here every `*.localhost` name resolves to 127.0.0.1 inside this process, and the
SDK itself is left as it ships.
"""

import socket

_real_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if isinstance(host, str) and host.endswith(".localhost"):
        host = "127.0.0.1"
    return _real_getaddrinfo(host, *args, **kwargs)


def resolve_localhost_subdomains():
    socket.getaddrinfo = _getaddrinfo


def client(port, access_key_id="sluice-demo", access_key_secret="sluice-demo-secret", auth_version="v1"):
    from aliyun.log import LogClient
    from aliyun.log.auth import AUTH_VERSION_1, AUTH_VERSION_4

    resolve_localhost_subdomains()
    version = AUTH_VERSION_4 if auth_version == "v4" else AUTH_VERSION_1
    return LogClient(
        "localhost:%d" % port,
        access_key_id,
        access_key_secret,
        source="10.0.0.1",
        auth_version=version,
        region="cn-hangzhou",
    )


def log_items(count, start=1700000000, prefix="msg"):
    """Deterministic logs: nonzero nanosecond parts, unicode, several keys."""
    from aliyun.log import LogItem

    items = []
    for i in range(count):
        items.append(
            LogItem(
                timestamp=start + i,
                time_nano_part=1000 + i,
                contents=[
                    ("message", "%s %d: café ünïcödé ✓" % (prefix, i)),
                    ("level", ["info", "warn", "error"][i % 3]),
                    ("latency_ms", str(i * 7 % 500)),
                    ("path", "/api/v1/items/%d" % i),
                ],
            )
        )
    return items
