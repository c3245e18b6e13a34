"""Writes: importing parsed items and their two outputs into a study, atomically (all rows or
none), with `COPY` on PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models.fields import AutoFieldMixin

from annotations.errors import (
    DomainValidationError,
)
from annotations.importers import (
    ImportIssue,
    ParsedItem,
    ParseResult,
    parse_alpaca_pair,
    parse_jsonl,
)
from annotations.models import (
    Item,
    Output,
    Study,
    System,
)
from annotations.services.blinding import blinding_audit_run
from annotations.services.studies import audit_record, evidence_changed_notify

__all__ = [
    "COPY_AS_IS",
    "CopyRows",
    "IMPORT_BATCH_SIZE",
    "IMPORT_COPY_BATCH_SIZE",
    "IMPORT_FORMATS",
    "ImportPreview",
    "ImportSummary",
    "external_ids_taken",
    "import_preview",
    "import_refusal",
    "items_import",
    "items_write_bulk",
    "items_write_copy",
    "output_values",
    "upload_parse",
]

IMPORT_BATCH_SIZE = 2_000
IMPORT_COPY_BATCH_SIZE = 10_000


# --- import ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportSummary:
    """What an import wrote; `skipped` is `ParseResult.skipped_report()` (rows left out on
    purpose, per file), `blinding` the blinding audit run after the write
    (`blinding_audit_run`)."""

    items: int
    outputs: int
    skipped: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    blinding: dict[str, Any] | None = None


def external_ids_taken(*, study: Study, ids: Sequence[str]) -> set[str]:
    """Which of `ids` the study already has."""
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor == "postgresql":
        # One array parameter instead of 5,000 literals per query: a tenth of the time.
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT external_id FROM annotations_item"
                " WHERE study_id = %s AND external_id = ANY(%s)",
                (study.pk, list(ids)),
            )
            return {external_id for (external_id,) in cursor.fetchall()}
    taken: set[str] = set()
    for start in range(0, len(ids), 5_000):
        taken.update(
            Item.objects.filter(
                study=study, external_id__in=ids[start : start + 5_000]
            ).values_list("external_id", flat=True)
        )
    return taken


IMPORT_FORMATS = ("jsonl", "alpaca")


def upload_parse(
    *,
    file_format: str,
    data: bytes,
    file_name: str,
    tuned_data: bytes | None = None,
    tuned_name: str = "",
    unmatched: str = "error",
) -> ParseResult:
    """Parses uploaded pairs (a JSONL file, or an AlpacaEval pair: the base model's file and
    the tuned model's) with the configured limits. Writes nothing: the API, the CLI, the page's
    preview and its confirmed import all parse through here, so the preview shows exactly what
    the import will refuse or write. Raises DomainValidationError (unknown format, an
    AlpacaEval pair without its tuned file)."""
    if file_format not in IMPORT_FORMATS:
        raise DomainValidationError(
            f"format must be one of {', '.join(IMPORT_FORMATS)}, got {file_format!r}",
            errors={"format": ["invalid"]},
        )
    if file_format == "jsonl":
        return parse_jsonl(
            data,
            file=file_name,
            max_line_bytes=settings.IMPORT_MAX_LINE_BYTES,
            max_issues=settings.IMPORT_MAX_ERRORS,
        )
    if tuned_data is None:
        raise DomainValidationError(
            "the AlpacaEval format needs the tuned model's file too",
            errors={"tuned_file": ["required"]},
        )
    return parse_alpaca_pair(
        data,
        tuned_data,
        base_file=file_name,
        tuned_file=tuned_name,
        max_issues=settings.IMPORT_MAX_ERRORS,
        unmatched=unmatched,
    )


def import_refusal(
    *, study: Study, parsed: ParseResult, source: str
) -> DomainValidationError | None:
    """Why `items_import` would refuse `parsed` (bad lines, or ids the study already has), as
    the error it raises with `file:line: reason` for each (capped); None when it would write."""
    return _refusal_and_count(study=study, parsed=parsed, source=source)[0]


def _refusal_and_count(
    *, study: Study, parsed: ParseResult, source: str
) -> tuple[DomainValidationError | None, int]:
    """`import_refusal`, and how many lines it refuses (its list of them is capped)."""
    if not parsed.ok:
        # Name the files the bad lines are in: with a pair of files, `source` is only the first.
        refusal = DomainValidationError(
            f"{parsed.bad_lines} bad line(s) in {parsed.bad_files() or source}; "
            "nothing was imported",
            errors=[str(issue) for issue in parsed.issues],
        )
        return refusal, parsed.bad_lines
    clash_set = external_ids_taken(study=study, ids=[item.external_id for item in parsed.items])
    if clash_set:
        issues = [
            str(
                ImportIssue(
                    source,
                    item.line,
                    f"id {item.external_id!r} already exists in study {study.slug!r}",
                )
            )
            for item in parsed.items
            if item.external_id in clash_set
        ]
        refusal = DomainValidationError(
            f"{len(clash_set)} id(s) already exist in study {study.slug!r}; nothing was imported",
            errors=issues[: settings.IMPORT_MAX_ERRORS],
        )
        return refusal, len(clash_set)
    return None, 0


@dataclass(frozen=True)
class ImportPreview:
    """What `items_import` would do with `parsed`, found without writing: the good items read
    (`count`, the `first` few, how many are gold), and its refusal if it would refuse
    (`refusal`, and `file:line: reason` in `errors` for each of the `bad_lines`, capped at
    IMPORT_MAX_ERRORS)."""

    count: int
    first: list[ParsedItem]
    gold: int
    refusal: str
    errors: list[str]
    bad_lines: int
    skipped: dict[str, dict[str, Any]]

    @property
    def ok(self) -> bool:
        return not self.refusal

    @property
    def errors_not_listed(self) -> int:
        return max(0, self.bad_lines - len(self.errors))


def import_preview(
    *, study: Study, parsed: ParseResult, source: str, first: int = 5
) -> ImportPreview:
    """A dry run of `items_import`: the same checks, nothing written."""
    refusal, refused_lines = _refusal_and_count(study=study, parsed=parsed, source=source)
    errors = list(refusal.errors or []) if refusal is not None else []
    return ImportPreview(
        count=len(parsed.items),
        first=parsed.items[:first],
        gold=sum(1 for item in parsed.items if item.gold_preference),
        refusal=refusal.message if refusal is not None else "",
        errors=errors,
        bad_lines=refused_lines,
        skipped=parsed.skipped_report(),
    )


def items_import(
    *,
    study: Study,
    parsed: ParseResult,
    source: str,
    actor: AbstractBaseUser | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Writes parsed items and both outputs of each, all or nothing, records the import in the
    audit log, then runs the study's blinding audit (stored on the study and returned in the
    summary).

    Raises DomainValidationError listing `file:line: reason` for every bad line (capped) when the
    parse failed or an id already exists in the study; nothing is written then.
    """
    refusal = import_refusal(study=study, parsed=parsed, source=source)
    if refusal is not None:
        raise refusal
    on_postgres = connections[DEFAULT_DB_ALIAS].vendor == "postgresql"
    write = items_write_copy if on_postgres else items_write_bulk
    written_items = 0
    written_outputs = 0
    skipped = parsed.skipped_report()
    with transaction.atomic():
        for items, outputs in write(study=study, parsed=parsed.items):
            written_items += items
            written_outputs += outputs
            if progress is not None:
                progress(items)
        audit_record(
            entity="study",
            entity_id=study.slug,
            action="items_imported",
            actor=actor,
            study=study,
            details={
                "source": source,
                "items": written_items,
                "skipped": {name: row["count"] for name, row in skipped.items()},
            },
        )
        # In the same transaction: the stored audit always describes the outputs stored.
        blinding = blinding_audit_run(study=study)
    evidence_changed_notify(study.pk, kind="items")
    return ImportSummary(
        items=written_items,
        outputs=written_outputs,
        skipped=skipped,
        blinding=blinding,
    )


# How a parsed line becomes an item and its two outputs, for both write paths below.
ITEM_FROM_PARSED: dict[str, Callable[[ParsedItem], Any]] = {
    "external_id": lambda p: p.external_id,
    "prompt": lambda p: p.prompt,
    "reference": lambda p: p.reference,
    "label": lambda p: p.label,
    "task_type": lambda p: p.task_type,
    "metadata": lambda p: p.metadata,
    "priority": lambda p: p.priority,
    "is_gold": lambda p: bool(p.gold_preference),
    "gold_preference": lambda p: p.gold_preference,
}


def output_values(*, study: Study, parsed: ParsedItem) -> tuple[dict[str, Any], dict[str, Any]]:
    return (
        {
            "system": System.BASE,
            "text": parsed.base,
            "model_name": parsed.base_model or study.base_model,
        },
        {
            "system": System.TUNED,
            "text": parsed.tuned,
            "model_name": parsed.tuned_model or study.tuned_model,
        },
    )


def items_write_bulk(*, study: Study, parsed: Sequence[ParsedItem]) -> Iterator[tuple[int, int]]:
    """Writes items and outputs with `bulk_create`, a batch at a time; yields what each wrote."""
    for start in range(0, len(parsed), IMPORT_BATCH_SIZE):
        chunk = parsed[start : start + IMPORT_BATCH_SIZE]
        items = Item.objects.bulk_create(
            [
                Item(study=study, **{name: get(p) for name, get in ITEM_FROM_PARSED.items()})
                for p in chunk
            ]
        )
        outputs = [
            Output(item=item, **values)
            for item, p in zip(items, chunk, strict=True)
            for values in output_values(study=study, parsed=p)
        ]
        Output.objects.bulk_create(outputs)
        yield len(items), len(outputs)


# Column types psycopg adapts straight from the parsed Python value (str, float, bool, int).
COPY_AS_IS = {
    "CharField",
    "TextField",
    "FloatField",
    "BooleanField",
    "PositiveSmallIntegerField",
    "PositiveIntegerField",
    "IntegerField",
    "BigIntegerField",
    "ForeignKey",
}


class CopyRows:
    """Rows for a COPY into `model`'s table: every concrete column but an auto id and a
    generated one (the database fills it, e.g. `Output.text_chars`). The columns
    named in `varying` take per-row values; every other one takes what `bulk_create` would write
    for `model(**fixed)`: its default (a callable one drawn again for each row, e.g. a uuid4
    key), `auto_now_add`, the fixed foreign key."""

    def __init__(self, model, varying: Iterable[str], **fixed: Any) -> None:
        db = connections[DEFAULT_DB_ALIAS]
        template = model(**fixed)
        fields = [
            f
            for f in model._meta.concrete_fields
            if not isinstance(f, AutoFieldMixin) and not f.generated
        ]
        varying = set(varying)
        self.table = db.ops.quote_name(model._meta.db_table)
        self.columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
        self.base = [f.get_db_prep_save(f.pre_save(template, True), db) for f in fields]
        self.slots = []  # (position, attname, adapter or None)
        self.fresh = []  # (position, field): callable defaults, drawn per row
        for position, field in enumerate(fields):
            if field.attname in varying:
                as_is = field.get_internal_type() in COPY_AS_IS
                adapt = None if as_is else (lambda v, f=field: f.get_db_prep_save(v, db))
                self.slots.append((position, field.attname, adapt))
            elif field.has_default() and callable(field.default):
                self.fresh.append((position, field))
        self.db = db

    def row(self, values: dict[str, Any]) -> list[Any]:
        row = list(self.base)
        for position, field in self.fresh:
            row[position] = field.get_db_prep_save(field.get_default(), self.db)
        for position, name, adapt in self.slots:
            value = values[name]
            row[position] = value if adapt is None else adapt(value)
        return row

    def copy(self, cursor, rows: Iterable[dict[str, Any]]) -> None:
        with cursor.copy(f"COPY {self.table} ({self.columns}) FROM STDIN") as copy:
            for values in rows:
                copy.write_row(self.row(values))


def items_write_copy(*, study: Study, parsed: Sequence[ParsedItem]) -> Iterator[tuple[int, int]]:
    """PostgreSQL: the same rows as `items_write_bulk`, sent with COPY (several times faster
    than multi-row INSERTs), a batch at a time, in the caller's transaction."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as wrapper, db.wrap_database_errors:
        cursor = wrapper.cursor  # psycopg 3 under Django's wrapper: it has copy()
        for start in range(0, len(parsed), IMPORT_COPY_BATCH_SIZE):
            chunk = parsed[start : start + IMPORT_COPY_BATCH_SIZE]
            # Built per batch, so auto_now_add is the time of the batch, as with bulk_create.
            item_rows = CopyRows(Item, ITEM_FROM_PARSED, study=study)
            output_rows = CopyRows(Output, ["item_id", "system", "text", "model_name"])
            item_rows.copy(
                cursor, ({n: get(p) for n, get in ITEM_FROM_PARSED.items()} for p in chunk)
            )
            cursor.execute(
                "SELECT external_id, id FROM annotations_item"
                " WHERE study_id = %s AND external_id = ANY(%s)",
                (study.pk, [p.external_id for p in chunk]),
            )
            ids = dict(cursor.fetchall())
            output_rows.copy(
                cursor,
                (
                    {"item_id": ids[p.external_id], **values}
                    for p in chunk
                    for values in output_values(study=study, parsed=p)
                ),
            )
            yield len(chunk), 2 * len(chunk)
