"""Registry of automatic metrics and the uniform way to run them.

Every metric is described by a frozen :class:`Metric`: its ``name``, a ``version`` string that
must be bumped whenever the computation changes (so stored scores can be told apart), the task
types it applies to, its ``kind`` (``"task"`` or ``"general_quality"``), its ``level`` and what it
``needs``. Metrics are plain callables with one of two uniform signatures:

* item level (one value per output)::

      fn(output: str, *, reference: str | None, label: str | None,
         metadata: Mapping[str, Any], settings: Mapping[str, Any]) -> float | MetricValue | None

  ``None`` (or ``MetricValue(None, reason)``) means "not applicable to this item".

* corpus level (needs the whole set of outputs)::

      fn(outputs: Sequence[str], *, references: Sequence[str | None],
         labels: Sequence[str | None], metadatas: Sequence[Mapping[str, Any]],
         settings: Mapping[str, Any]) -> Mapping[str, float] | CorpusValue

``needs`` is a tuple of strings in a small language that :func:`score_outputs` checks *before*
calling a metric, so skips are reported with a reason instead of failing:

* ``"reference"`` / ``"label"``: the item's reference text / gold label must not be ``None``
  (corpus metrics: at least one item must have one);
* ``"metadata:<key>"``: the item's metadata must contain ``<key>``;
* ``"setting:<key>"``: the study settings must contain ``<key>``.

A metric may also be gated behind a settings flag (``enabled_by``) that must be exactly ``True``;
code execution uses this so it never runs unless a study opted in.

New metrics plug in by decorating a function with :func:`register` in a module that is imported
(the built-in modules are imported lazily by :func:`get`, :func:`for_task`, :func:`all_metrics`
and :func:`score_outputs`).
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeVar

__all__ = [
    "KINDS",
    "LEVELS",
    "TASK_TYPES",
    "CorpusScore",
    "CorpusValue",
    "ItemScore",
    "Metric",
    "MetricValue",
    "MetricWarning",
    "Registry",
    "ScoreReport",
    "Skipped",
    "all_metrics",
    "default_registry",
    "for_task",
    "get",
    "register",
    "score_outputs",
]

TASK_TYPES: frozenset[str] = frozenset(
    {"generation", "classification", "structured", "chat", "code"}
)
KINDS: frozenset[str] = frozenset({"task", "general_quality"})
LEVELS: frozenset[str] = frozenset({"item", "corpus"})

# Modules whose import registers the built-in metrics on the default registry.
_BUILTIN_MODULES: tuple[str, ...] = (
    "scoring.metrics.classification",
    "scoring.metrics.generation",
    "scoring.metrics.structured",
    "scoring.metrics.code_exec",
)

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_NEED_RE = re.compile(r"^(reference|label|(metadata|setting):[A-Za-z0-9_.\-]+)$")

F = TypeVar("F", bound=Callable[..., Any])


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class MetricValue:
    """What an item metric may return instead of a bare float.

    ``value`` is ``None`` when the metric does not apply to the item; ``detail`` is then the
    reason. Otherwise ``detail`` is a short free-text note (e.g. sacrebleu's signature or why a
    code test failed) and ``warnings`` are caveats worth showing to the study author.
    """

    value: float | None
    detail: str = ""
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CorpusValue:
    """What a corpus metric may return instead of a bare mapping of floats.

    ``detail`` holds JSON-serialisable extras that are not floats (label order, confusion
    matrix, signature strings).
    """

    values: Mapping[str, float]
    detail: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ItemScore:
    """One metric value for one output (``item_index`` indexes the ``outputs`` passed in)."""

    metric: str
    version: str
    item_index: int
    value: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CorpusScore:
    """The values of one corpus-level metric over ``n_items`` outputs."""

    metric: str
    version: str
    values: Mapping[str, float]
    detail: Mapping[str, Any]
    n_items: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """A metric that was not computed, and why.

    ``item_indices`` is ``None`` when the whole metric was skipped, otherwise the items it was
    skipped for (all sharing ``reason``).
    """

    metric: str
    version: str
    reason: str
    item_indices: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class MetricWarning:
    """A caveat raised by a metric, with the items it concerns (``None`` = corpus-level)."""

    metric: str
    message: str
    item_indices: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class ScoreReport:
    """Everything :func:`score_outputs` computed for one set of outputs."""

    task_type: str
    n_items: int
    items: tuple[ItemScore, ...]
    corpus: tuple[CorpusScore, ...]
    skipped: tuple[Skipped, ...]
    warnings: tuple[MetricWarning, ...]

    def all_scores(self) -> list[ItemScore | CorpusScore]:
        """Item scores followed by corpus scores, as one list."""
        return [*self.items, *self.corpus]

    def item_values(self, metric: str) -> list[float | None]:
        """Values of one item metric aligned with the outputs (``None`` where skipped)."""
        aligned: list[float | None] = [None] * self.n_items
        for score in self.items:
            if score.metric == metric:
                aligned[score.item_index] = score.value
        return aligned


# --------------------------------------------------------------------------- metric + registry


@dataclass(frozen=True, slots=True)
class Metric:
    """Description of a registered metric; ``fn`` follows the signature for its ``level``."""

    name: str
    version: str
    task_types: frozenset[str]
    kind: Literal["task", "general_quality"]
    level: Literal["item", "corpus"]
    fn: Callable[..., Any]
    needs: tuple[str, ...] = ()
    enabled_by: str | None = None
    disabled_reason: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ValueError(f"metric name must match {_NAME_RE.pattern}, got {self.name!r}")
        if not isinstance(self.version, str) or not self.version.strip():
            raise ValueError(f"metric {self.name!r}: version must be a non-empty string")
        if not self.task_types or not self.task_types <= TASK_TYPES:
            raise ValueError(
                f"metric {self.name!r}: task_types must be a non-empty subset of "
                f"{sorted(TASK_TYPES)}, got {sorted(self.task_types)}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be one of {sorted(KINDS)}")
        if self.level not in LEVELS:
            raise ValueError(f"metric {self.name!r}: level must be one of {sorted(LEVELS)}")
        for need in self.needs:
            if not _NEED_RE.match(need):
                raise ValueError(
                    f"metric {self.name!r}: bad need {need!r}; expected 'reference', 'label', "
                    "'metadata:<key>' or 'setting:<key>'"
                )
        if not callable(self.fn):
            raise ValueError(f"metric {self.name!r}: fn is not callable")


class Registry:
    """A name -> :class:`Metric` table. The module keeps one default instance."""

    def __init__(self) -> None:
        self._metrics: dict[str, Metric] = {}

    def add(self, metric: Metric) -> Metric:
        """Add ``metric``; raises ``ValueError`` if its name is already taken."""
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name!r} is already registered")
        self._metrics[metric.name] = metric
        return metric

    def register(
        self,
        name: str,
        *,
        version: str,
        task_types: Sequence[str] | frozenset[str],
        kind: Literal["task", "general_quality"],
        level: Literal["item", "corpus"],
        needs: Sequence[str] = (),
        enabled_by: str | None = None,
        disabled_reason: str = "",
        description: str = "",
    ) -> Callable[[F], F]:
        """Decorator registering ``fn`` as a metric; returns ``fn`` unchanged."""

        def decorator(fn: F) -> F:
            doc = description or (fn.__doc__ or "").strip().split("\n", 1)[0]
            self.add(
                Metric(
                    name=name,
                    version=version,
                    task_types=frozenset(task_types),
                    kind=kind,
                    level=level,
                    fn=fn,
                    needs=tuple(needs),
                    enabled_by=enabled_by,
                    disabled_reason=disabled_reason,
                    description=doc,
                )
            )
            return fn

        return decorator

    def get(self, name: str) -> Metric:
        """The metric called ``name``; raises ``KeyError`` listing known names if unknown."""
        try:
            return self._metrics[name]
        except KeyError:
            raise KeyError(
                f"unknown metric {name!r}; registered: {sorted(self._metrics)}"
            ) from None

    def for_task(self, task_type: str) -> tuple[Metric, ...]:
        """Metrics applicable to ``task_type``, in registration order."""
        _check_task_type(task_type)
        return tuple(m for m in self._metrics.values() if task_type in m.task_types)

    def all_metrics(self) -> tuple[Metric, ...]:
        """Every registered metric, in registration order."""
        return tuple(self._metrics.values())


_DEFAULT = Registry()
_builtins_loaded = False


def _ensure_builtins() -> None:
    global _builtins_loaded
    if _builtins_loaded:
        return
    # Set first: the modules call register() while importing, which must not re-enter here.
    _builtins_loaded = True
    try:
        for module in _BUILTIN_MODULES:
            importlib.import_module(module)
    except BaseException:
        _builtins_loaded = False
        raise


def default_registry() -> Registry:
    """The process-wide registry, with the built-in metrics loaded."""
    _ensure_builtins()
    return _DEFAULT


def register(
    name: str,
    *,
    version: str,
    task_types: Sequence[str] | frozenset[str],
    kind: Literal["task", "general_quality"],
    level: Literal["item", "corpus"],
    needs: Sequence[str] = (),
    enabled_by: str | None = None,
    disabled_reason: str = "",
    description: str = "",
) -> Callable[[F], F]:
    """Decorator registering a metric on the default registry (see :meth:`Registry.register`).

    Raises ``ValueError`` on an invalid description or a duplicate name.
    """
    return _DEFAULT.register(
        name,
        version=version,
        task_types=task_types,
        kind=kind,
        level=level,
        needs=needs,
        enabled_by=enabled_by,
        disabled_reason=disabled_reason,
        description=description,
    )


def get(name: str) -> Metric:
    """The registered metric ``name``; raises ``KeyError`` if unknown."""
    return default_registry().get(name)


def for_task(task_type: str) -> tuple[Metric, ...]:
    """Registered metrics that apply to ``task_type``; raises ``ValueError`` if unknown type."""
    return default_registry().for_task(task_type)


def all_metrics() -> tuple[Metric, ...]:
    """All registered metrics."""
    return default_registry().all_metrics()


# --------------------------------------------------------------------------- running metrics


def _check_task_type(task_type: str) -> None:
    if task_type not in TASK_TYPES:
        raise ValueError(f"unknown task type {task_type!r}; expected one of {sorted(TASK_TYPES)}")


def _aligned(name: str, seq: Sequence[Any] | None, n: int, fill: Any) -> tuple[Any, ...]:
    if seq is None:
        return (fill,) * n
    if isinstance(seq, str | bytes):
        raise TypeError(f"{name} must be a sequence, not a single string")
    if len(seq) != n:
        raise ValueError(f"{name} has {len(seq)} entries but there are {n} outputs")
    return tuple(seq)


def _metric_level_skip(metric: Metric, task_type: str, settings: Mapping[str, Any]) -> str | None:
    """Reason the whole metric cannot run, or ``None``."""
    if task_type not in metric.task_types:
        return f"not applicable to task type {task_type!r}"
    if metric.enabled_by is not None and settings.get(metric.enabled_by) is not True:
        return metric.disabled_reason or f"disabled (settings[{metric.enabled_by!r}] is not True)"
    for need in metric.needs:
        if need.startswith("setting:"):
            key = need.partition(":")[2]
            if settings.get(key) is None:
                return f"setting {key!r} not set"
    return None


def _item_skip(
    needs_ref: bool,
    needs_label: bool,
    meta_keys: tuple[str, ...],
    reference: str | None,
    label: str | None,
    metadata: Mapping[str, Any],
) -> str | None:
    if needs_ref and reference is None:
        return "no reference"
    if needs_label and label is None:
        return "no label"
    for key in meta_keys:
        if key not in metadata:
            return f"no metadata[{key!r}]"
    return None


def _check_value(metric: Metric, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"metric {metric.name!r} returned a non-finite value {value!r}")
    return value


def score_outputs(
    task_type: str,
    outputs: Sequence[str],
    references: Sequence[str | None] | None = None,
    labels: Sequence[str | None] | None = None,
    metadatas: Sequence[Mapping[str, Any] | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    metric_names: Sequence[str] | None = None,
    *,
    registry: Registry | None = None,
) -> ScoreReport:
    """Run every applicable metric over one system's outputs.

    ``references``, ``labels`` and ``metadatas`` are aligned with ``outputs`` (``None`` entries
    allowed; a ``None`` sequence means "none for any item"). ``metric_names`` restricts the run
    to those metrics (named metrics that do not apply to ``task_type`` are reported as skipped);
    by default every metric registered for ``task_type`` runs. Nothing passed in is mutated.

    Returns a :class:`ScoreReport` with one :class:`ItemScore` per computed (metric, item), one
    :class:`CorpusScore` per corpus metric, and :class:`Skipped` entries saying what did not run
    and why. Raises ``ValueError`` for an unknown task type, empty ``outputs`` or misaligned
    sequences, ``TypeError`` for non-string outputs, ``KeyError`` for an unknown metric name;
    ``ValueError`` raised by a metric for bad settings (e.g. an invalid JSON Schema) propagates.
    """
    reg = registry if registry is not None else default_registry()
    _check_task_type(task_type)
    n = len(outputs)
    if n == 0:
        raise ValueError("outputs is empty; nothing to score")
    outs = tuple(outputs)
    for i, out in enumerate(outs):
        if not isinstance(out, str):
            raise TypeError(f"outputs[{i}] is {type(out).__name__}, expected str")
    refs = _aligned("references", references, n, None)
    labs = _aligned("labels", labels, n, None)
    # Read-only views so a metric cannot mutate the caller's settings or metadata.
    empty: Mapping[str, Any] = MappingProxyType({})
    metas = tuple(
        empty if m is None else MappingProxyType(dict(m))
        for m in _aligned("metadatas", metadatas, n, None)
    )
    conf: Mapping[str, Any] = MappingProxyType(dict(settings or {}))

    if metric_names is None:
        selected = reg.for_task(task_type)
    else:
        if isinstance(metric_names, str):
            raise TypeError("metric_names must be a sequence of names, not a single string")
        selected = tuple(reg.get(name) for name in dict.fromkeys(metric_names))

    skipped: list[Skipped] = []
    item_metrics: list[Metric] = []
    corpus_metrics: list[Metric] = []
    for metric in selected:
        reason = _metric_level_skip(metric, task_type, conf)
        if reason is not None:
            skipped.append(Skipped(metric.name, metric.version, reason))
        elif metric.level == "item":
            item_metrics.append(metric)
        else:
            corpus_metrics.append(metric)

    item_scores: list[ItemScore] = []
    # (metric name, reason) -> item indices, so per-item skips are reported compactly.
    item_skips: dict[tuple[str, str], list[int]] = {}
    warn_items: dict[tuple[str, str], list[int]] = {}
    plans = [
        (
            m,
            "reference" in m.needs,
            "label" in m.needs,
            tuple(nd.partition(":")[2] for nd in m.needs if nd.startswith("metadata:")),
        )
        for m in item_metrics
    ]
    # Items in the outer loop: metrics that share work for the same (output, reference), such as
    # ROUGE-1/2/L, hit their small per-pair cache.
    for i in range(n):
        out, ref, lab, meta = outs[i], refs[i], labs[i], metas[i]
        for metric, needs_ref, needs_label, meta_keys in plans:
            reason = _item_skip(needs_ref, needs_label, meta_keys, ref, lab, meta)
            if reason is None:
                result = metric.fn(out, reference=ref, label=lab, metadata=meta, settings=conf)
                if result is None:
                    reason = "not applicable"
                elif isinstance(result, MetricValue):
                    for message in result.warnings:
                        warn_items.setdefault((metric.name, message), []).append(i)
                    if result.value is None:
                        reason = result.detail or "not applicable"
                    else:
                        item_scores.append(
                            ItemScore(
                                metric.name,
                                metric.version,
                                i,
                                _check_value(metric, result.value),
                                result.detail,
                            )
                        )
                else:
                    item_scores.append(
                        ItemScore(metric.name, metric.version, i, _check_value(metric, result))
                    )
            if reason is not None:
                item_skips.setdefault((metric.name, reason), []).append(i)

    by_name = {m.name: m for m in item_metrics}
    for (name, reason), indices in item_skips.items():
        metric = by_name[name]
        if len(indices) == n:
            skipped.append(Skipped(name, metric.version, reason))
        else:
            skipped.append(Skipped(name, metric.version, reason, tuple(indices)))
    warnings = [
        MetricWarning(name, message, tuple(indices))
        for (name, message), indices in warn_items.items()
    ]

    corpus_scores: list[CorpusScore] = []
    for metric in corpus_metrics:
        if "reference" in metric.needs and all(r is None for r in refs):
            skipped.append(Skipped(metric.name, metric.version, "no reference"))
            continue
        if "label" in metric.needs and all(lab is None for lab in labs):
            skipped.append(Skipped(metric.name, metric.version, "no label"))
            continue
        result = metric.fn(outs, references=refs, labels=labs, metadatas=metas, settings=conf)
        if isinstance(result, CorpusValue):
            values, detail = dict(result.values), dict(result.detail)
            warnings.extend(MetricWarning(metric.name, w) for w in result.warnings)
        else:
            values, detail = dict(result), {}
        values = {k: _check_value(metric, v) for k, v in values.items()}
        n_used = int(values.get("n_items", n))
        corpus_scores.append(CorpusScore(metric.name, metric.version, values, detail, n_used))

    return ScoreReport(
        task_type=task_type,
        n_items=n,
        items=tuple(item_scores),
        corpus=tuple(corpus_scores),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )
