"""Training loss curves: parsing a fine-tuning log and detecting overfitting.

Recipe: validation-loss early stopping with patience (Prechelt 1998, "Early Stopping -- But
When?", in "Neural Networks: Tricks of the Trade"; the ``patience`` of Keras' and Hugging Face's
``EarlyStoppingCallback``) plus a generalisation-gap check (validation / train loss ratio).

Parsing (:func:`parse_training_log`) accepts

* the Hugging Face ``Trainer``'s ``state.log_history`` (a list of dicts, or its JSON text, or the
  whole ``trainer_state.json`` text with a ``log_history`` key): training entries carry ``loss``,
  evaluation entries ``eval_loss``, both with ``step`` and ``epoch``; every other key
  (``learning_rate``, ``grad_norm``, ``eval_runtime``, ...) is ignored, and so is the final
  summary entry (the one with ``train_runtime`` / ``total_flos``, whose ``train_loss`` is the
  mean over the whole run, not a point on the curve);
* common logger variants of the same records: training loss as ``loss``, ``train_loss``,
  ``training_loss`` or ``train/loss``; validation loss as ``eval_loss``, ``val_loss``,
  ``validation_loss``, ``valid_loss`` or ``eval/loss``; the x axis as ``step``, ``global_step``,
  ``iteration``, ``iter`` or ``train/global_step``, else ``epoch`` / ``train/epoch``. Key names
  match after lower-casing and turning spaces and hyphens into underscores;
* a CSV text with a header row (e.g. ``step,train_loss,val_loss``; empty cells are allowed, so
  train and validation rows can be interleaved; a tab-separated header is also recognised);
* a JSONL text (one JSON object per line; blank lines are skipped).

The x axis is chosen for the whole log: ``step`` when every loss record has one, else ``epoch``
when every loss record has one; steps and epochs are never mixed on one axis. Points are sorted
by x; a repeated x with the same loss is kept once, with a different loss it is an error. A
``null`` value or an empty CSV cell counts as absent.

Every problem is collected (up to :data:`MAX_PROBLEMS`) before :class:`TrainingLogError` is
raised. Problem locations:

* JSON list: ``f"{source}[{index}].{field}: {reason}"`` (0-based entry index);
* JSONL: ``f"{source}[line {n}].{field}: {reason}"`` (1-based line number);
* CSV: ``f"{source}:{line}: {field}: {reason}"`` (1-based line number, the header is line 1);
* whole-log problems: ``f"{source}: {reason}"``.

Overfitting (:func:`detect_overfitting`), documented choices:

* The train loss "at" a validation step is the train curve linearly interpolated at that step
  (``numpy.interp``); outside the train curve's range it is the nearest end point. When
  evaluation steps coincide with logging steps, as in a usual Trainer setup, this is the logged
  train loss itself.
* ``rising_evaluations`` counts the trailing run of evaluations at which the validation loss rose
  by more than ``min_rise`` over the previous evaluation while the train loss at those steps did
  not rise (fell or stayed flat, so a train curve logged more sparsely than the evaluations does
  not break the run). Only the run at the end counts: a rise that has since turned back down is
  not overfitting *now*, though ``steps_after_best`` still shows it.
* ``final_gap`` / ``gap_ratio`` compare the last validation loss with the train loss at that
  step. With a zero train loss the ratio is ``inf`` (or 1.0 when the validation loss is zero
  too). The ratio is scale-sensitive near zero loss; ``max_gap_ratio`` should be set with the
  task's loss scale in mind.
* Flagged when ``rising_evaluations >= patience`` or ``gap_ratio > max_gap_ratio``.
* The best validation point is the minimum validation loss (the earliest one on a tie).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "MAX_PROBLEMS",
    "LossPoint",
    "OverfittingReport",
    "TrainingLog",
    "TrainingLogError",
    "detect_overfitting",
    "parse_training_log",
    "plot_curves_svg",
]

MAX_PROBLEMS = 50

Axis = Literal["step", "epoch"]

# Normalised key names, in order of preference.
_TRAIN_KEYS = ("loss", "train_loss", "training_loss", "train/loss")
_VALIDATION_KEYS = ("eval_loss", "val_loss", "validation_loss", "valid_loss", "eval/loss")
_STEP_KEYS = ("step", "global_step", "iteration", "iter", "train/global_step")
_EPOCH_KEYS = ("epoch", "train/epoch")
# Keys that mark the Hugging Face Trainer's end-of-training summary entry.
_SUMMARY_KEYS = ("train_runtime", "total_flos", "train_samples_per_second")


class TrainingLogError(ValueError):
    """A training log that cannot be parsed.

    Attributes:
        problems: up to :data:`MAX_PROBLEMS` problem lines, each naming its location.
        n_problems: all problems found (may exceed ``len(problems)``).
    """

    def __init__(self, problems: Sequence[str], n_problems: int | None = None) -> None:
        self.problems = list(problems)
        self.n_problems = len(self.problems) if n_problems is None else n_problems
        hidden = self.n_problems - len(self.problems)
        more = f"\n(and {hidden} more)" if hidden > 0 else ""
        plural = "" if self.n_problems == 1 else "s"
        super().__init__(
            f"{self.n_problems} problem{plural} in training log:\n"
            + "\n".join(self.problems)
            + more
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problems, self.n_problems))


@dataclass(frozen=True)
class LossPoint:
    """One point of a loss curve: ``loss`` (nats per token, as logged) at ``step``.

    ``step`` is the optimiser step, or the epoch when the log has no steps (see
    :attr:`TrainingLog.axis`).
    """

    step: float
    loss: float


@dataclass(frozen=True)
class TrainingLog:
    """Parsed train and validation loss curves.

    Attributes:
        train: training-loss points, strictly increasing in ``step``.
        validation: validation-loss points, strictly increasing in ``step``.
        axis: what ``LossPoint.step`` measures, ``"step"`` or ``"epoch"``.

    Raises:
        ValueError: (on construction) a point that is not a :class:`LossPoint`, a non-finite or
            negative value, or steps that are not strictly increasing.
    """

    train: tuple[LossPoint, ...]
    validation: tuple[LossPoint, ...]
    axis: Axis = "step"

    def __post_init__(self) -> None:
        for name in ("train", "validation"):
            points = tuple(getattr(self, name))
            object.__setattr__(self, name, points)
            previous = -math.inf
            for i, point in enumerate(points):
                if not isinstance(point, LossPoint):
                    raise ValueError(f"{name}[{i}]: expected a LossPoint, got {point!r}")
                if not (math.isfinite(point.step) and math.isfinite(point.loss)):
                    raise ValueError(f"{name}[{i}]: step and loss must be finite, got {point}")
                if point.loss < 0:
                    raise ValueError(f"{name}[{i}]: loss must be >= 0, got {point.loss}")
                if point.step <= previous:
                    raise ValueError(
                        f"{name}[{i}]: steps must be strictly increasing, got {point.step} "
                        f"after {previous}"
                    )
                previous = point.step
        if self.axis not in ("step", "epoch"):
            raise ValueError(f"axis: must be 'step' or 'epoch', got {self.axis!r}")

    def curves(self) -> dict[str, list[list[float]]]:
        """Both curves as JSON-ready ``{"train": [[step, loss], ...], "validation": [...]}``."""
        return {
            "train": [[p.step, p.loss] for p in self.train],
            "validation": [[p.step, p.loss] for p in self.validation],
        }


@dataclass(frozen=True)
class OverfittingReport:
    """Overfitting diagnosis of a pair of loss curves.

    Attributes:
        final_train_loss: loss of the last train point.
        final_validation_loss: loss of the last validation point.
        final_gap: last validation loss minus the train loss at that step (interpolated).
        gap_ratio: last validation loss / train loss at that step (``inf`` for a zero train
            loss under a positive validation loss).
        best_validation_step: step (or epoch, see ``axis``) of the lowest validation loss.
        best_validation_loss: the lowest validation loss.
        steps_after_best: last validation step minus ``best_validation_step`` (x-axis units).
        evaluations_after_best: validation evaluations after the best one.
        rising_evaluations: trailing run of evaluations where validation loss rose (by more
            than ``min_rise``) while train loss did not rise.
        flagged: ``rising_evaluations >= patience`` or ``gap_ratio > max_gap_ratio``.
        reasons: one line per criterion that fired (empty when not flagged).
        curves: ``{"train": [[step, loss], ...], "validation": [[step, loss], ...]}``.
        axis: ``"step"`` or ``"epoch"``.
        patience, max_gap_ratio, min_rise: the thresholds used.
    """

    final_train_loss: float
    final_validation_loss: float
    final_gap: float
    gap_ratio: float
    best_validation_step: float
    best_validation_loss: float
    steps_after_best: float
    evaluations_after_best: int
    rising_evaluations: int
    flagged: bool
    reasons: tuple[str, ...]
    curves: dict[str, list[list[float]]] = field(compare=False)
    axis: str
    patience: int
    max_gap_ratio: float
    min_rise: float


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Record:
    """One raw entry of any input format, with its location."""

    where: str  # "training_log[3]", "training_log[line 4]" or "training_log:5"
    ordinal: int  # position in the input (entry index or line number), orders the problems
    csv_style: bool
    fields: dict[str, tuple[str, Any]]  # normalised key -> (original key, raw value)

    def at(self, key: str) -> str:
        return f"{self.where}: {key}" if self.csv_style else f"{self.where}.{key}"


@dataclass
class _Problems:
    """Problems in input order (whole-log problems last)."""

    source: str
    found: list[tuple[float, str]] = field(default_factory=list)

    def add(self, line: str, ordinal: float) -> None:
        self.found.append((ordinal, line))

    def whole(self, reason: str) -> None:
        self.add(f"{self.source}: {reason}", math.inf)

    def raise_if_any(self) -> None:
        if self.found:
            ordered = [line for _, line in sorted(self.found, key=lambda item: item[0])]
            raise TrainingLogError(ordered[:MAX_PROBLEMS], len(ordered))


def _normalise_key(key: str) -> str:
    return key.strip().lower().replace(" ", "_").replace("-", "_")


def _is_absent(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")


def _first_present(record: _Record, keys: Iterable[str]) -> tuple[str, Any] | None:
    for key in keys:
        entry = record.fields.get(key)
        if entry is not None and not _is_absent(entry[1]):
            return entry
    return None


def _number(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is not a number (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_loss(record: _Record, key: str, value: Any, problems: _Problems) -> float | None:
    number = _number(value)
    where = record.at(key)
    if number is None:
        problems.add(f"{where}: not a number: {_short(value)}", record.ordinal)
    elif math.isnan(number):
        problems.add(f"{where}: loss is NaN: training diverged?", record.ordinal)
    elif math.isinf(number):
        problems.add(f"{where}: loss is infinite: training diverged?", record.ordinal)
    elif number < 0:
        problems.add(
            f"{where}: loss is negative ({number:g}): a loss cannot be below 0", record.ordinal
        )
    else:
        return number
    return None


def _check_x(record: _Record, key: str, value: Any, problems: _Problems) -> float | None:
    number = _number(value)
    where = record.at(key)
    if number is None:
        problems.add(f"{where}: not a number: {_short(value)}", record.ordinal)
    elif not math.isfinite(number):
        problems.add(f"{where}: must be finite, got {number}", record.ordinal)
    elif number < 0:
        problems.add(f"{where}: is negative ({number:g})", record.ordinal)
    else:
        return number
    return None


@dataclass(frozen=True)
class _Candidate:
    record: _Record
    series: str  # "train" or "validation"
    key: str  # original loss key
    loss: float


def _record(
    where: str, ordinal: int, entry: Mapping[Any, Any], *, csv_style: bool = False
) -> _Record:
    fields: dict[str, tuple[str, Any]] = {}
    for key, value in entry.items():
        if not isinstance(key, str):
            continue
        # The first spelling wins when two keys normalise alike (e.g. "Loss" and "loss").
        fields.setdefault(_normalise_key(key), (key, value))
    return _Record(where=where, ordinal=ordinal, csv_style=csv_style, fields=fields)


def _records_from_json_list(data: list[Any], source: str, problems: _Problems) -> list[_Record]:
    records = []
    for i, entry in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(entry, Mapping):
            problems.add(f"{where}: entry is not an object (got {type(entry).__name__})", i)
            continue
        records.append(_record(where, i, entry))
    return records


def _records_from_jsonl(text: str, source: str, problems: _Problems) -> list[_Record]:
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{source}[line {n}]"
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.add(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})", n)
            continue
        if not isinstance(entry, Mapping):
            problems.add(f"{where}: entry is not an object (got {type(entry).__name__})", n)
            continue
        records.append(_record(where, n, entry))
    return records


def _records_from_csv(text: str, source: str, problems: _Problems) -> list[_Record]:
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    header: list[str] | None = None
    records = []
    for row in reader:
        line = reader.line_num
        if not row or all(not cell.strip() for cell in row):
            continue
        if header is None:
            header = [cell.strip() for cell in row]
            seen: set[str] = set()
            for name in header:
                norm = _normalise_key(name)
                if not norm:
                    problems.add(f"{source}:{line}: header: empty column name", line)
                elif norm in seen:
                    problems.add(f"{source}:{line}: header: duplicate column {name!r}", line)
                seen.add(norm)
            continue
        if len(row) > len(header):
            problems.add(
                f"{source}:{line}: row has {len(row)} cells but the header has {len(header)}",
                line,
            )
            continue
        entry = dict(zip(header, row, strict=False))  # missing trailing cells are empty
        records.append(_record(f"{source}:{line}", line, entry, csv_style=True))
    return records


def _records(data: list[Any] | str, source: str, problems: _Problems) -> list[_Record]:
    if isinstance(data, list):
        return _records_from_json_list(data, source, problems)
    if not isinstance(data, str):
        raise TypeError(f"data must be a list or a str, got {type(data).__name__}")
    text = data.lstrip("\ufeff").strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.whole(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
            return []
        return _records_from_json_list(parsed, source, problems)
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None  # several objects: JSONL
        if isinstance(parsed, Mapping) and isinstance(parsed.get("log_history"), list):
            # A whole trainer_state.json: locations index into its log_history.
            return _records_from_json_list(parsed["log_history"], f"{source}.log_history", problems)
        return _records_from_jsonl(text, source, problems)
    return _records_from_csv(text, source, problems)


def _choose_axis(records: list[_Record], problems: _Problems) -> tuple[Axis, list[float]] | None:
    """Pick the x axis of the records carrying a loss; return it and each record's x.

    Returns ``None`` (after reporting why) when some record has no usable x.
    """
    steps: dict[int, float | None] = {}
    epochs: dict[int, float | None] = {}
    for i, record in enumerate(records):
        for keys, values in ((_STEP_KEYS, steps), (_EPOCH_KEYS, epochs)):
            found = _first_present(record, keys)
            if found is not None:
                values[i] = _check_x(record, found[0], found[1], problems)
    axis: Axis
    if len(steps) == len(records):
        axis, chosen = "step", steps
    elif len(epochs) == len(records):
        axis, chosen = "epoch", epochs
    else:
        axis, chosen = ("step", steps) if steps else ("epoch", epochs)
        for i, record in enumerate(records):
            if i in chosen:
                continue
            if i in epochs:
                problems.add(
                    f"{record.at('step')}: missing step: other entries have a step but this one "
                    "only an epoch, and steps and epochs cannot share one axis",
                    record.ordinal,
                )
            else:
                problems.add(f"{record.at('step')}: missing step or epoch", record.ordinal)
        return None
    xs = [chosen[i] for i in range(len(records))]
    if any(x is None for x in xs):
        return None  # a bad value, already reported
    return axis, [x for x in xs if x is not None]


def _series(
    candidates: list[tuple[_Candidate, float]], problems: _Problems
) -> tuple[LossPoint, ...]:
    """Sort points by x, drop exact repeats, report a repeated x with a different loss."""
    ordered = sorted(candidates, key=lambda item: item[1])  # stable: ties keep input order
    points: list[LossPoint] = []
    first_at: dict[float, _Candidate] = {}
    for candidate, x in ordered:
        earlier = first_at.get(x)
        if earlier is None:
            first_at[x] = candidate
            points.append(LossPoint(step=x, loss=candidate.loss))
        elif earlier.loss != candidate.loss:
            other = earlier.record.where
            if candidate.record.csv_style:
                other = f"line {earlier.record.ordinal}"
            problems.add(
                f"{candidate.record.at(candidate.key)}: duplicate step {x:g} with a different "
                f"value ({candidate.loss:g}) than {other} ({earlier.loss:g})",
                candidate.record.ordinal,
            )
    return tuple(points)


def parse_training_log(data: list[Any] | str, *, source: str = "training_log") -> TrainingLog:
    """Parse a fine-tuning log into train and validation loss curves.

    Args:
        data: a Hugging Face ``log_history`` list of dicts; or text: a JSON list, a
            ``trainer_state.json``, JSONL (one object per line) or CSV with a header row.
        source: name used in problem locations (e.g. the uploaded file's name).

    Returns:
        The curves, each sorted by step (or by epoch when the log has no steps). Losses are in
        the log's own units (nats per token for the Trainer).

    Raises:
        TrainingLogError: (a ``ValueError``) listing every problem, up to :data:`MAX_PROBLEMS`:
            a NaN, infinite, negative or non-numeric loss; a non-numeric, non-finite, negative
            or missing step/epoch; a repeated step with a different loss; an entry that is not
            an object, invalid JSON or a malformed CSV row; no train points; no validation
            points.
        TypeError: ``data`` is neither a list nor a str.
    """
    problems = _Problems(source)
    records = _records(data, source, problems)

    candidates: list[_Candidate] = []
    loss_records: list[_Record] = []
    seen_keys = {"train": False, "validation": False}
    for record in records:
        if any(not _is_absent(record.fields.get(k, (k, None))[1]) for k in _SUMMARY_KEYS):
            continue  # the Trainer's end-of-training summary, not a point on the curve
        carries_loss = False
        for series, keys in (("train", _TRAIN_KEYS), ("validation", _VALIDATION_KEYS)):
            found = _first_present(record, keys)
            if found is None:
                continue
            carries_loss = seen_keys[series] = True
            loss = _check_loss(record, found[0], found[1], problems)
            if loss is not None:
                candidates.append(_Candidate(record, series, found[0], loss))
        if carries_loss:
            loss_records.append(record)

    chosen = _choose_axis(loss_records, problems)
    axis: Axis = "step"
    train: tuple[LossPoint, ...] = ()
    validation: tuple[LossPoint, ...] = ()
    if chosen is not None:
        axis, xs = chosen
        x_of = {id(record): x for record, x in zip(loss_records, xs, strict=True)}
        by_series: dict[str, list[tuple[_Candidate, float]]] = {"train": [], "validation": []}
        for candidate in candidates:
            by_series[candidate.series].append((candidate, x_of[id(candidate.record)]))
        train = _series(by_series["train"], problems)
        validation = _series(by_series["validation"], problems)

    if not seen_keys["train"]:
        problems.whole(
            "no train loss: expected a loss, train_loss or training_loss field in some entry"
        )
    if not seen_keys["validation"]:
        problems.whole("no validation loss: cannot detect overfitting")
    problems.raise_if_any()
    return TrainingLog(train=train, validation=validation, axis=axis)


# --------------------------------------------------------------------------------------------
# Overfitting
# --------------------------------------------------------------------------------------------


def _check_thresholds(patience: int, max_gap_ratio: float, min_rise: float) -> None:
    if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 1:
        raise ValueError(f"patience must be an integer >= 1, got {patience!r}")
    if not (isinstance(max_gap_ratio, int | float) and max_gap_ratio > 0):
        raise ValueError(f"max_gap_ratio must be a number > 0, got {max_gap_ratio!r}")
    if not (isinstance(min_rise, int | float) and 0 <= min_rise < math.inf):
        raise ValueError(f"min_rise must be a finite number >= 0, got {min_rise!r}")


def detect_overfitting(
    log: TrainingLog, *, patience: int = 3, max_gap_ratio: float = 1.5, min_rise: float = 0.0
) -> OverfittingReport:
    """Diagnose overfitting from train and validation loss curves.

    Args:
        log: parsed curves (see :func:`parse_training_log`).
        patience: trailing evaluations of rising validation loss under a non-rising train loss
            that flag the run (as in early stopping).
        max_gap_ratio: flag when last validation loss / train loss at that step exceeds it.
        min_rise: a validation loss "rises" only when it grows by more than this (loss units).

    Returns:
        An :class:`OverfittingReport`; the module docstring lists the documented choices.

    Raises:
        ValueError: an empty train or validation curve, ``patience < 1`` or not an integer,
            ``max_gap_ratio <= 0`` or ``min_rise`` negative or not finite.
    """
    _check_thresholds(patience, max_gap_ratio, min_rise)
    if not log.train:
        raise ValueError("log.train: no train points")
    if not log.validation:
        raise ValueError("log.validation: no validation points: cannot detect overfitting")

    train_x = np.array([p.step for p in log.train])
    train_y = np.array([p.loss for p in log.train])
    val_x = np.array([p.step for p in log.validation])
    val_y = np.array([p.loss for p in log.validation])
    train_at_val = np.interp(val_x, train_x, train_y)

    final_val = float(val_y[-1])
    final_train_at = float(train_at_val[-1])
    final_gap = final_val - final_train_at
    if final_train_at > 0:
        gap_ratio = final_val / final_train_at
    else:
        gap_ratio = math.inf if final_val > 0 else 1.0

    best = int(np.argmin(val_y))  # first minimum on a tie
    rising = 0
    for k in range(len(val_y) - 1, 0, -1):
        val_rose = val_y[k] - val_y[k - 1] > min_rise
        train_did_not_rise = train_at_val[k] <= train_at_val[k - 1]
        if not (val_rose and train_did_not_rise):
            break
        rising += 1

    reasons = []
    if rising >= patience:
        plural = "" if rising == 1 else "s"
        reasons.append(
            f"validation loss rose for {rising} evaluation{plural} while train loss fell "
            f"(patience {patience})"
        )
    if gap_ratio > max_gap_ratio:
        reasons.append(f"gap ratio {gap_ratio:.2f} above {max_gap_ratio:g}")

    return OverfittingReport(
        final_train_loss=float(train_y[-1]),
        final_validation_loss=final_val,
        final_gap=final_gap,
        gap_ratio=gap_ratio,
        best_validation_step=float(val_x[best]),
        best_validation_loss=float(val_y[best]),
        steps_after_best=float(val_x[-1] - val_x[best]),
        evaluations_after_best=len(val_y) - 1 - best,
        rising_evaluations=rising,
        flagged=bool(reasons),
        reasons=tuple(reasons),
        curves=log.curves(),
        axis=log.axis,
        patience=int(patience),
        max_gap_ratio=float(max_gap_ratio),
        min_rise=float(min_rise),
    )


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------

_PLOT_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "training-curves",
    "font.size": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_SVG_METADATA = {"Creator": None, "Date": None, "Format": None, "Type": None}


def plot_curves_svg(log: TrainingLog, report: OverfittingReport) -> str:
    """Draw both loss curves with the best validation step marked, as SVG text.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot state, no backend switch); the output
    is deterministic (fixed hash salt, no date metadata) and starts at ``<svg``.

    Raises:
        ValueError: ``log`` has an empty train or validation curve.
    """
    import matplotlib as mpl  # imported here so that parsing never pays for matplotlib
    from matplotlib.figure import Figure

    if not log.train or not log.validation:
        raise ValueError("log: plotting needs train and validation points")
    with mpl.rc_context(_PLOT_RC):
        fig = Figure(figsize=(6.0, 3.2), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(
            [p.step for p in log.train],
            [p.loss for p in log.train],
            color="#2b6cb0",
            linewidth=1.2,
            label="train loss",
        )
        ax.plot(
            [p.step for p in log.validation],
            [p.loss for p in log.validation],
            color="#d69e2e",
            linewidth=1.4,
            marker="o",
            markersize=3,
            label="validation loss",
        )
        ax.axvline(report.best_validation_step, color="#2f855a", linestyle="--", linewidth=1)
        ax.plot(
            [report.best_validation_step],
            [report.best_validation_loss],
            linestyle="none",
            marker="*",
            markersize=10,
            color="#2f855a",
            label=f"best validation ({log.axis} {report.best_validation_step:g})",
        )
        ax.set_xlabel(log.axis)
        ax.set_ylabel("loss")
        status = "overfitting flagged" if report.flagged else "no overfitting flagged"
        ax.set_title(f"Training curves ({status})")
        ax.grid(True, color="#e2e8f0", linewidth=0.6)
        ax.legend(frameon=False)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    svg = buffer.getvalue()
    return svg[svg.find("<svg") :]
