"""Benchmark: importing a JSONL pair file into PostgreSQL, ours vs a bare psycopg COPY.

Generates N JSONL lines deterministically (``random.Random(seed)``; ids, prompts, two outputs,
some references, labels, metadata and priorities), then, in the same process and run, on a
fresh copy of a migrated database each time (``bench_import`` by default; only ``bench_*``
names are accepted):

* ours: ``annotations.importers.parse_jsonl`` (validation, duplicate ids, ``file:line``
  issues) then ``annotations.services.items_import`` (clash check against the study, writes
  items and both outputs of each, all or nothing) -- exactly what ``import_pairs`` and the
  import API call;
* with ``--bulk``, also ours with the ``bulk_create`` writer (the path on other databases);
* peer:  ``json.loads`` of every line, then, in one transaction, a psycopg 3
  ``cursor.copy()`` into ``annotations_item``, one query mapping external ids to item ids, and
  a ``cursor.copy()`` into ``annotations_output`` -- the same rows in the same tables (same
  indexes and constraints), with no validation and no Django.

Runs alternate (peer, ours, peer, ours, ...) and the median of ``--repeats`` is reported, for
the whole path (from JSONL bytes) and for the write alone (items_import vs the COPYs). Both
paths' results are checked: same item count, same output count, same texts for a sample.
Usage: ``.venv/bin/python bench/bench_import.py [--lines 100000] [--repeats 3]``.
``--smoke`` (300 lines, 1 repeat, the bulk_create writer too, databases ``<db>_smoke`` and
``<db>_smoke_tpl``, always dropped) is what the test suite runs.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

WORDS = [
    "model",
    "answer",
    "question",
    "data",
    "result",
    "value",
    "people",
    "system",
    "because",
    "example",
    "explain",
    "first",
    "however",
    "simple",
    "between",
    "different",
    "important",
    "number",
    "large",
    "small",
    "process",
    "change",
    "reason",
    "method",
    "case",
    "point",
    "fact",
    "part",
    "place",
    "group",
    "problem",
    "step",
]


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_jsonl(lines: int, seed: int) -> bytes:
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        record: dict = {
            "id": f"ex-{i:07d}",
            "prompt": sentence(rng, rng.randint(10, 40)),
            "base": " ".join(sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(2, 6))),
            "tuned": " ".join(sentence(rng, rng.randint(8, 20)) for _ in range(rng.randint(2, 6))),
        }
        if i % 3 == 0:
            record["reference"] = sentence(rng, rng.randint(5, 15))
        if i % 7 == 0:
            record["metadata"] = {"source": rng.choice(["a", "b", "c"]), "n": i}
        if i % 11 == 0:
            record["priority"] = rng.choice([0.5, 1, 2])
        if i % 500 == 0:
            record["gold"] = rng.choice(["base", "tuned"])
        out.append(json.dumps(record, ensure_ascii=False))
    return ("\n".join(out) + "\n").encode()


# --- the two paths (Django is set up; each runs on a fresh database) ------------------------


def study_new(slug: str):
    from annotations import services

    return services.study_create(
        slug=slug,
        name="Import benchmark",
        task_type="generation",
        base_model="bench-base",
        tuned_model="bench-tuned",
    )


def run_ours(data: bytes) -> dict:
    from django.conf import settings

    from annotations import services
    from annotations.importers import parse_jsonl

    study = study_new("bench-ours")
    batches = []
    started = time.perf_counter()
    parsed = parse_jsonl(
        data,
        file="bench.jsonl",
        max_line_bytes=settings.IMPORT_MAX_LINE_BYTES,
        max_issues=settings.IMPORT_MAX_ERRORS,
    )
    parsed_at = time.perf_counter()
    assert parsed.ok, parsed.issues[:3]
    summary = services.items_import(
        study=study, parsed=parsed, source="bench.jsonl", progress=batches.append
    )
    done = time.perf_counter()
    assert sum(batches) == summary.items == len(parsed.items)
    return {
        "study_id": study.pk,
        "total": done - started,
        "parse": parsed_at - started,
        "write": done - parsed_at,
        "items": summary.items,
        "outputs": summary.outputs,
    }


def run_ours_bulk(data: bytes) -> dict:
    """Ours with the bulk_create writer (the path on other databases, and on PostgreSQL before
    the COPY writer)."""
    from annotations import services

    copy_writer = services.items_write_copy
    services.items_write_copy = services.items_write_bulk
    try:
        return run_ours(data)
    finally:
        services.items_write_copy = copy_writer


def run_copy(data: bytes) -> dict:
    from django.db import connection, transaction

    study = study_new("bench-copy")
    started = time.perf_counter()
    records = [json.loads(line) for line in data.splitlines() if line.strip()]
    parsed_at = time.perf_counter()
    now = datetime.now(UTC)
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg 3 cursor under Django's wrapper
        columns = (
            "study_id, external_id, prompt, reference, label, task_type, metadata, priority, "
            "extra_votes, held, hold_reason, excluded, is_gold, gold_preference, created_at"
        )
        with cursor.copy(f"COPY annotations_item ({columns}) FROM STDIN") as copy:
            for r in records:
                gold = r.get("gold", "")
                copy.write_row(
                    (
                        study.pk,
                        r["id"],
                        r["prompt"],
                        r.get("reference", ""),
                        r.get("label", ""),
                        r.get("task", ""),
                        json.dumps(r.get("metadata") or {}),
                        float(r.get("priority", 0.0)),
                        0,
                        False,
                        "",
                        False,
                        bool(gold),
                        gold,
                        now,
                    )
                )
        cursor.execute(
            "SELECT external_id, id FROM annotations_item WHERE study_id = %s", (study.pk,)
        )
        ids = dict(cursor.fetchall())
        with cursor.copy(
            "COPY annotations_output (id, item_id, system, model_name, text) FROM STDIN"
        ) as copy:
            for r in records:
                item_id = ids[r["id"]]
                copy.write_row(
                    (uuid.uuid4(), item_id, "base", r.get("base_model") or "bench-base", r["base"])
                )
                copy.write_row(
                    (
                        uuid.uuid4(),
                        item_id,
                        "tuned",
                        r.get("tuned_model") or "bench-tuned",
                        r["tuned"],
                    )
                )
    done = time.perf_counter()
    return {
        "study_id": study.pk,
        "total": done - started,
        "parse": parsed_at - started,
        "write": done - parsed_at,
        "items": len(records),
        "outputs": 2 * len(records),
    }


def fingerprint(study_id: int) -> tuple:
    """Counts and a content sample of one study's import, to check both paths wrote the same."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*), count(*) FILTER (WHERE is_gold), sum(priority),
                   sum(length(prompt)), sum(length(reference)),
                   count(*) FILTER (WHERE metadata <> '{}'::jsonb)
            FROM annotations_item WHERE study_id = %s""",
            (study_id,),
        )
        items = cursor.fetchone()
        cursor.execute(
            """
            SELECT count(*), sum(length(o.text)), count(DISTINCT o.model_name),
                   md5(string_agg(i.external_id || o.system || o.text, '|'
                                  ORDER BY i.external_id, o.system))
            FROM annotations_output o JOIN annotations_item i ON i.id = o.item_id
            WHERE i.study_id = %s""",
            (study_id,),
        )
        outputs = cursor.fetchone()
    return items + outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=common.DEFAULT_PG, help="PostgreSQL server URL")
    parser.add_argument("--db", default="bench_import", help="database name (must start bench_)")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bulk", action="store_true", help="also time ours with the bulk_create writer"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument(
        "--migrate-only",
        action="append",
        default=[],
        metavar="APP",
        help="migrate only these apps (repeat; default: all)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="300 lines, 1 repeat, every writer, on <db>_smoke (dropped afterwards)",
    )
    args = parser.parse_args()
    if args.smoke:
        args.lines, args.repeats, args.bulk, args.keep = 300, 1, True, False
        args.db = common.smoke_name(args.db)
        common.drop_at_exit(args.pg, args.db, f"{args.db}_tpl")

    template = f"{args.db}_tpl"
    common.check_bench_name(args.db)
    url = common.database_url(args.pg, args.db)
    print(f"reproduce: {common.reproduce_line()}")
    common.database_recreate(args.pg, template)
    common.migrate(common.database_url(args.pg, template), args.migrate_only)
    common.database_recreate(args.pg, args.db, template=template)
    common.django_setup(url)
    from django import db as django_db

    started = time.perf_counter()
    data = make_jsonl(args.lines, args.seed)
    print(
        f"generated {args.lines:,} JSONL lines ({len(data) / 1e6:.1f} MB) in "
        f"{time.perf_counter() - started:.1f} s; PostgreSQL {args.pg}/{args.db}, "
        f"fresh migrated database per run"
    )

    contenders = [("copy", run_copy), ("ours", run_ours)]
    if args.bulk:
        contenders.append(("bulk", run_ours_bulk))
    results: dict[str, list[dict]] = {name: [] for name, _ in contenders}
    prints: dict[str, tuple] = {}
    try:
        for repeat in range(args.repeats):
            for name, run in contenders:
                django_db.connections.close_all()
                common.database_recreate(args.pg, args.db, template=template)
                result = run(data)
                prints[name] = fingerprint(result["study_id"])
                results[name].append(result)
                print(
                    f"  run {repeat + 1} {name:4s}: total {result['total']:6.2f} s "
                    f"(parse {result['parse']:5.2f} s + write {result['write']:5.2f} s), "
                    f"{result['items']:,} items + {result['outputs']:,} outputs"
                )
    finally:
        django_db.connections.close_all()
        if not args.keep:
            common.database_drop(args.pg, args.db)
            common.database_drop(args.pg, template)

    same = all(p == prints["copy"] for p in prints.values())
    print(f"same rows written by both paths (counts, sums, md5 of all outputs): {same}")
    if not same:
        for name, values in prints.items():
            print(f"  {name}: {values}")

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    n = args.lines
    print(f"\nmedian of {args.repeats} runs, {n:,} lines ({2 * n:,} outputs):")
    print(f"  {'':38s} {'seconds':>8s} {'lines/s':>10s}")
    rows = (
        ("peer: json.loads + COPY, whole path", "copy", "total"),
        ("ours: parse_jsonl + items_import", "ours", "total"),
        ("peer: COPY items, map ids, COPY outputs", "copy", "write"),
        ("ours: items_import only", "ours", "write"),
        ("peer: json.loads only", "copy", "parse"),
        ("ours: parse_jsonl only", "ours", "parse"),
    )
    if args.bulk:
        rows += (
            ("ours, bulk_create writer: whole path", "bulk", "total"),
            ("ours, bulk_create writer: write only", "bulk", "write"),
        )
    for label, name, key in rows:
        seconds = median(name, key)
        print(f"  {label:38s} {seconds:8.2f} {n / seconds:10,.0f}")
    ratio_total = median("ours", "total") / median("copy", "total")
    ratio_write = median("ours", "write") / median("copy", "write")
    print(
        f"ratio ours/COPY: whole path {ratio_total:.2f}x slower, write alone "
        f"{ratio_write:.2f}x slower; target within 3x: "
        f"{'MET' if ratio_total <= 3 else 'MISSED'} (whole path)"
    )
    if args.bulk:
        print(
            "ratio bulk_create writer/COPY: whole path "
            f"{median('bulk', 'total') / median('copy', 'total'):.2f}x slower, write alone "
            f"{median('bulk', 'write') / median('copy', 'write'):.2f}x slower"
        )
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
