"""The DuckDB and chDB sides of the query benchmark (compactor/benches/query.rs).

    python peers.py duckdb|chdb < SPEC

SPEC is JSON: {"table": PATH, "runs": N, "threads": T, "queries": [{"name", "sql"}]}.
Prints JSON: [{"name", "seconds": [...], "rows": [...]}]. Each query's SQL reads `logs`:
exactly the Parquet files of the Delta table's current version (their list from the
`deltalake` package). DuckDB gets them as a view (with the `date` partition column);
chDB (ClickHouse in-process) as `file(...)` over the same files (a glob checked to
name exactly them), `{logs}` in its SQL being replaced by that table function. Times are wall clock per execution including
fetching every row, on one warm connection or session, with T threads.
"""

import json
import os
import sys
import time

from deltalake import DeltaTable


def duckdb_engine(files, threads, root):
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads = %d" % threads)
    listed = ", ".join("'%s'" % f for f in files)
    con.execute("CREATE VIEW logs AS SELECT * FROM read_parquet([%s], hive_partitioning = true)" % listed)

    def run(sql):
        cursor = con.execute(sql)
        fetched = cursor.fetchall()
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in fetched]

    return run


def chdb_engine(files, threads, root):
    import glob

    from chdb import session

    chdb = session.Session()
    # One table function over the table's partitions: the glob must name exactly the
    # current version's files (the bench never removes any, so it does).
    pattern = os.path.join(root, "*", "*.parquet")
    assert sorted(glob.glob(pattern)) == sorted(files), "the table has files that are not current"
    table = "file('%s', Parquet)" % pattern
    # Struct fields are read as `tupleElement(frequent, 'x')`; ClickHouse's rewriting of
    # that into a subcolumn fails beside `SELECT *` with PREWHERE on Parquet ("Not found
    # column frequent.x"), so it is turned off.
    settings = " SETTINGS max_threads = %d, optimize_functions_to_subcolumns = 0" % threads

    def run(sql):
        text = chdb.query(sql.replace("{logs}", table) + settings, "JSONEachRow").bytes().decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    return run


def main():
    engine = sys.argv[1]
    spec = json.load(sys.stdin)
    files = [f.replace("file://", "") for f in DeltaTable(spec["table"]).file_uris()]
    threads = int(spec["threads"])
    run = {"duckdb": duckdb_engine, "chdb": chdb_engine}[engine](files, threads, spec["table"])
    out = []
    for query in spec["queries"]:
        seconds = []
        rows = []
        for _ in range(int(spec["runs"])):
            started = time.perf_counter()
            rows = run(query["sql"])
            seconds.append(time.perf_counter() - started)
        out.append({"name": query["name"], "seconds": seconds, "rows": rows})
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
