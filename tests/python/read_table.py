"""Reads a Sluice table with independent readers and prints it as JSON.

    python read_table.py TABLE_URI [--endpoint URL --key ID --secret SECRET --region R] [--inspect]

TABLE_URI is a local path or s3://bucket/prefix/tables/{project}/{logstore}. The rows come
from the Python `deltalake` package (delta-rs's Python reader, not Sluice's code); with
--inspect, each data file's Parquet metadata as pyarrow reads it.
"""

import argparse
import json
import os
import sys

import pyarrow.parquet as pq
from deltalake import DeltaTable


def storage_options(args):
    if not args.endpoint:
        return None
    return {
        "AWS_ENDPOINT_URL": args.endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": args.region,
        "AWS_ACCESS_KEY_ID": args.key,
        "AWS_SECRET_ACCESS_KEY": args.secret,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("uri")
    p.add_argument("--endpoint")
    p.add_argument("--key")
    p.add_argument("--secret")
    p.add_argument("--region", default="garage")
    p.add_argument("--inspect", action="store_true")
    args = p.parse_args()

    dt = DeltaTable(args.uri, storage_options=storage_options(args))
    out = {"version": dt.version(), "partition_columns": dt.metadata().partition_columns}
    table = dt.to_pyarrow_table()
    rows = table.to_pylist()
    for row in rows:
        for key in ("fields", "tags"):
            if row.get(key) is not None:
                row[key] = [list(kv) for kv in row[key]]
        # Fields the table keeps as columns of their own are fields all the same.
        frequent = row.pop("frequent", None) or {}
        kept = [[k, v] for k, v in frequent.items() if v is not None]
        if kept:
            row["fields"] = kept + (row.get("fields") or [])
    out["rows"] = rows
    if args.inspect:
        files = []
        # The dataset's filesystem is rooted at the table: open files by relative path.
        fs = dt.to_pyarrow_dataset().filesystem
        root = dt.table_uri.rstrip("/") + "/"
        for path in dt.file_uris():
            relative = path[len(root):] if path.startswith(root) else path.rsplit("/tables/", 1)[-1].split("/", 2)[-1]
            with fs.open_input_file(relative) as f:
                meta = pq.ParquetFile(f).metadata
            columns = {}
            for rg in range(meta.num_row_groups):
                group = meta.row_group(rg)
                for c in range(group.num_columns):
                    col = group.column(c)
                    info = columns.setdefault(col.path_in_schema, {"compression": col.compression, "bloom_filter": False, "page_index": False})
                    info["bloom_filter"] |= col.bloom_filter_offset is not None if hasattr(col, "bloom_filter_offset") else False
                    info["page_index"] |= bool(getattr(col, "has_column_index", False) or getattr(col, "has_offset_index", False))
            sorting = meta.row_group(0).sorting_columns if meta.num_row_groups else ()
            files.append({
                "path": path,
                "rows": meta.num_rows,
                "row_groups": meta.num_row_groups,
                "sorting_columns": [[s.column_index, s.descending] for s in sorting],
                "columns": columns,
            })
        out["files"] = files
    print(json.dumps(out, default=str))
    sys.stdout.flush()
    # The readers' native threads can abort during interpreter teardown
    # ("terminate called without an active exception"); the output is complete.
    os._exit(0)


if __name__ == "__main__":
    main()
