"""The DuckDB side of the query benchmark (compactor/benches/query.rs).

Reads JSON on stdin: {"table": PATH, "runs": N, "threads": T, "queries": [{"name", "sql"}]}
and prints JSON: [{"name", "seconds": [...], "rows": [...]}]. Each query's SQL reads the
view `logs`: exactly the Parquet files of the Delta table's current version (their list
from the `deltalake` package), with the `date` partition column. Times are wall clock
per execution including fetching every row, on one warm connection.
"""

import json
import sys
import time

import duckdb
from deltalake import DeltaTable


def main():
    spec = json.load(sys.stdin)
    files = [f.replace("file://", "") for f in DeltaTable(spec["table"]).file_uris()]
    con = duckdb.connect()
    con.execute("SET threads = %d" % int(spec["threads"]))
    listed = ", ".join("'%s'" % f for f in files)
    con.execute("CREATE VIEW logs AS SELECT * FROM read_parquet([%s], hive_partitioning = true)" % listed)
    out = []
    for query in spec["queries"]:
        seconds = []
        rows = []
        for _ in range(int(spec["runs"])):
            started = time.perf_counter()
            cursor = con.execute(query["sql"])
            fetched = cursor.fetchall()
            seconds.append(time.perf_counter() - started)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row)) for row in fetched]
        out.append({"name": query["name"], "seconds": seconds, "rows": rows})
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
