"""Sends PutLogs with the unmodified official SLS Python SDK and prints what it sent.

    python put_logs.py --port P [--case lz4|zstd|hashkey|v4] [--count N] [--project P] [--logstore L]
                       [--start SECONDS] [--requests R]

Prints one JSON object: {"logs": [{"time", "time_ns", "contents"}...], "requests": R}.
"""

import argparse
import json

import sluice_sdk
from aliyun.log import PutLogsRequest


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--case", default="lz4", choices=["lz4", "zstd", "hashkey", "v4", "none"])
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--requests", type=int, default=1)
    p.add_argument("--project", default="demo")
    p.add_argument("--logstore", default="app")
    p.add_argument("--start", type=int, default=1700000000)
    p.add_argument("--key-id", default="sluice-demo")
    p.add_argument("--secret", default="sluice-demo-secret")
    args = p.parse_args()

    client = sluice_sdk.client(args.port, args.key_id, args.secret, auth_version="v4" if args.case == "v4" else "v1")
    sent = []
    for r in range(args.requests):
        items = sluice_sdk.log_items(args.count, start=args.start + r * args.count, prefix="%s-%d" % (args.case, r))
        extra = {"compress_type": "zstd"} if args.case == "zstd" else {"compress_type": "lz4"}
        if args.case == "hashkey":
            extra["hashKey"] = "14d2f850ad6ea48e46e4547edbbb27e0"
        if args.case == "none":
            extra = {"compress": False}
        request = PutLogsRequest(
            args.project, args.logstore, topic="sdk", source="10.0.0.1", logitems=items,
            logtags=[("host", "web-01")], **extra
        )
        response = client.put_logs(request)
        assert response.get_request_id(), "SLS answers carry x-log-requestid"
        for it in items:
            sent.append({"time": it.get_time(), "time_ns": it.get_time_nano_part(), "contents": [list(c) for c in it.get_contents()]})
    print(json.dumps({"logs": sent, "requests": args.requests}, ensure_ascii=False))


if __name__ == "__main__":
    main()
