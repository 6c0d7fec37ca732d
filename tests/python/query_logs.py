"""Queries Sluice with the unmodified official SLS Python SDK, or a table with DuckDB.

    python query_logs.py histogram --port P --from F --to T [--query Q] [--topic T]
    python query_logs.py logs --port P --from F --to T [--query Q] [--line N] [--offset N]
                              [--reverse] [--v1] [--all] [--project P] [--logstore L]
    python query_logs.py catalog --port P [--project P] [--logstore L] [--pattern S] [--offset N] [--line N]
    python query_logs.py context --port P --from F --to T --query Q [--back N] [--forward N]
    python query_logs.py duckdb TABLE_PATH SQL      (SQL reads the view `logs`)

Prints JSON. `logs` returns the SDK's QueriedLog contents plus time and source; `catalog` what
list_logstore, get_logstore and list_shards return; `context` the first log GetLogs
finds for the query and get_context_logs around it (by the pack id and meta GetLogs
returned with it); `duckdb`
runs SQL over exactly the Parquet files of the table's current version (their list from
the `deltalake` package), with the `date` partition column, independently of Sluice.
"""

import argparse
import json
import os
import sys

import sluice_sdk


def sdk(args):
    from aliyun.log import GetHistogramsRequest

    client = sluice_sdk.client(args.port, auth_version=args.auth)
    if args.command == "histogram":
        request = GetHistogramsRequest(args.project, args.logstore, args.from_, args.to, args.topic, args.query)
        response = client.get_histograms(request)
        return {
            "complete": response.is_completed(),
            "count": response.get_total_count(),
            "histograms": [
                {"from": h.get_from(), "to": h.get_to(), "count": h.get_count(), "progress": h.progress, "complete": h.is_completed()}
                for h in response.get_histograms()
            ],
        }
    if args.command == "catalog":
        listed = client.list_logstore(args.project, args.pattern, offset=args.offset, size=args.line)
        logstore = client.get_logstore(args.project, args.logstore)
        shards = client.list_shards(args.project, args.logstore)
        return {
            "logstores": listed.get_logstores(),
            "count": listed.get_logstores_count(),
            "total": listed.get_logstores_total(),
            "logstore": {"name": logstore.logstore_name, "ttl": logstore.get_ttl(), "shard_count": logstore.get_shard_count()},
            "shards": shards.get_shards_info(),
            "request_id": shards.get_request_id(),
        }
    if args.command == "context":
        found = client.get_log(args.project, args.logstore, args.from_, args.to, query=args.query, size=1)
        anchor = dict(found.get_logs()[0].get_contents())
        response = client.get_context_logs(
            args.project, args.logstore, anchor["__tag__:__pack_id__"], anchor["__pack_meta__"], args.back, args.forward
        )
        logs = []
        for log in response.get_logs():
            contents = dict(log.get_contents())
            contents["__time__"] = str(log.get_time())
            logs.append(contents)
        return {
            "anchor": anchor,
            "complete": response.is_completed(),
            "total_lines": response.get_total_lines(),
            "back_lines": response.get_back_lines(),
            "forward_lines": response.get_forward_lines(),
            "logs": logs,
        }
    if args.v1:
        client._get_logs_v2_enabled = False
    logs = []
    offset = args.offset
    while True:
        response = client.get_log(
            args.project, args.logstore, args.from_, args.to, topic=args.topic, query=args.query,
            reverse=args.reverse, offset=offset, size=args.line,
        )
        for log in response.get_logs():
            contents = dict(log.get_contents())
            contents["__time__"] = str(log.get_time())
            contents["__source__"] = log.get_source()
            logs.append(contents)
        # --all: page through every log, as a client reading a whole range does.
        if not args.all or response.get_count() < args.line:
            break
        offset += response.get_count()
    return {"complete": response.is_completed(), "count": len(logs), "has_sql": response.get_has_sql(), "logs": logs}


def duck(args):
    import duckdb
    from deltalake import DeltaTable

    files = DeltaTable(args.table).file_uris()
    con = duckdb.connect()
    if files:
        listed = ", ".join("'%s'" % f.replace("file://", "") for f in files)
        con.execute("CREATE VIEW logs AS SELECT * FROM read_parquet([%s], hive_partitioning = true)" % listed)
    else:
        con.execute("CREATE VIEW logs AS SELECT NULL::BIGINT AS time_ns WHERE false")
    cursor = con.execute(args.sql)
    names = [d[0] for d in cursor.description]
    return {"rows": [dict(zip(names, row)) for row in cursor.fetchall()]}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["histogram", "logs", "catalog", "context", "duckdb"])
    p.add_argument("table", nargs="?")
    p.add_argument("sql", nargs="?")
    p.add_argument("--port", type=int)
    p.add_argument("--project", default="demo")
    p.add_argument("--logstore", default="app")
    p.add_argument("--from", dest="from_", type=int)
    p.add_argument("--to", type=int)
    p.add_argument("--topic", default="")
    p.add_argument("--query", default="")
    p.add_argument("--line", type=int, default=100)
    p.add_argument("--offset", type=int, default=0)
    p.add_argument("--reverse", action="store_true")
    p.add_argument("--v1", action="store_true")
    p.add_argument("--pattern", default=None, help="catalog: list_logstore's name pattern")
    p.add_argument("--back", type=int, default=10)
    p.add_argument("--forward", type=int, default=10)
    p.add_argument("--all", action="store_true", help="page through every log (offset += line)")
    p.add_argument("--auth", default="v1", choices=["v1", "v4"])
    args = p.parse_args()
    from aliyun.log import LogException

    try:
        out = duck(args) if args.command == "duckdb" else sdk(args)
    except LogException as e:
        out = {"error": e.get_error_code(), "message": e.get_error_message()}
    print(json.dumps(out, default=str, ensure_ascii=False))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
