"""The HTTP side of the query benchmark (compactor/benches/query.rs): the unmodified SLS
Python SDK against the bench's own `sluice serve` (in-process, on PORT).

    python sdk_queries.py < SPEC

SPEC is JSON: {"port", "project", "logstore", "runs", "queries": [{"name", "kind":
"histogram"|"logs", "from", "to", "query", "reverse"}]}. Prints JSON: [{"name",
"seconds": [...], "count"}], count being the histogram's total or the logs returned.
Times are wall clock per SDK call (request, answer, decoding) on one warm client.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "python"))

import sluice_sdk  # noqa: E402


def main():
    from aliyun.log import GetHistogramsRequest, GetLogsRequest

    spec = json.load(sys.stdin)
    client = sluice_sdk.client(spec["port"])
    out = []
    for q in spec["queries"]:
        seconds = []
        count = 0
        for _ in range(int(spec["runs"])):
            started = time.perf_counter()
            if q["kind"] == "histogram":
                request = GetHistogramsRequest(spec["project"], spec["logstore"], q["from"], q["to"], "", q["query"])
                response = client.get_histograms(request)
                assert response.is_completed()
                count = response.get_total_count()
            else:
                request = GetLogsRequest(
                    spec["project"], spec["logstore"], q["from"], q["to"], "", q["query"], 100, 0, q["reverse"]
                )
                response = client.get_logs(request)
                assert response.is_completed()
                count = response.get_count()
            seconds.append(time.perf_counter() - started)
        out.append({"name": q["name"], "seconds": seconds, "count": count})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
