"""Training loss curves: parsing a fine-tuning log and judging the shipped checkpoint.

Recipe: compare the shipped checkpoint's validation loss with the best evaluation, against the
evaluation noise estimated from the curve itself; look for train and validation curves that
part (early stopping's patience, Prechelt 1998, "Early Stopping -- But When?", in "Neural
Networks: Tricks of the Trade"); tell unstable training from overfitting by the train curve.

Parsing (:func:`parse_training_log`) accepts

* the Hugging Face ``Trainer``'s ``state.log_history`` (a list of dicts, or its JSON text, or the
  whole ``trainer_state.json`` as an object or as text, whose ``best_global_step``,
  ``best_metric``, ``best_model_checkpoint`` and our own ``checkpoint_step`` are kept): training
  entries carry ``loss``, evaluation entries ``eval_loss``, both with ``step`` and ``epoch``;
  every other key
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

Overfitting (:func:`detect_overfitting`) judges the checkpoint that ships, not the run's last
numbers, and compares changes with the noise of the evaluation itself:

* **Which checkpoint.** The one named by the caller (``checkpoint_step``), else the log's own
  ``checkpoint_step``, else the Trainer's ``best_global_step``, else the step in its
  ``best_model_checkpoint`` path (``.../checkpoint-4000``), else the last evaluation. A named
  checkpoint without a validation loss in the log cannot be judged.
* **Evaluation noise.** Validation losses are compared on the log scale (a difference is a
  relative change; a logged 0 counts as 1e-12). The noise ``sigma`` of one evaluation is the
  robust scale of Gasser, Sroka & Jennen-Steinmetz (1986, "Residual variance and residual pattern
  in nonlinear regression", Biometrika 73(3)) pseudo-residuals of the validation curve (see
  :func:`evaluation_noise`), floored at ``min_noise`` (0.5 %: repeated evaluations on one fixed
  set are never noiseless, and a perfectly smooth curve would otherwise make every wiggle
  "significant"). A change counts when it exceeds ``noise_multiplier * sqrt(2) * sigma`` (a
  difference of two evaluations has ``sqrt(2)`` times the noise; the multiplier 3, not 2,
  allows for the best being the minimum of several noisy evaluations and for a noise estimate
  from few points).
* **Train loss at an evaluation** is the median of the train losses logged since the previous
  evaluation (the interpolated train curve where none were logged), so one noisy batch does not
  decide.
* **Flags.** (1) The shipped checkpoint's validation loss is above the best evaluation up to it
  by more than the noise; (2) over the last ``window`` evaluations up to it the validation loss
  did not fall by more than the noise while the train loss fell by more than the validation
  loss did, again by more than the noise (the curves diverge: early stopping's patience,
  Prechelt 1998, "Early Stopping -- But When?", with the noise as ``min_delta``).
* **Unstable training, not overfitting.** When (1) holds but the train loss also rose after the
  best evaluation (its highest level up to the shipped checkpoint exceeds its level at the best
  by more than ``train_rise_tolerance``, 10 %), the status is ``unstable_training``: the model
  did not memorise its training set, the optimisation went wrong (a learning rate too high, a
  loss spike).
* **Evidence, never a flag.** The gap (validation minus train loss) and the ratio at the shipped
  checkpoint are reported only: with a train loss near zero the ratio explodes on healthy runs.
* **Insufficient data** (``flagged`` false, with the reason): fewer than ``min_evaluations`` (3)
  validation evaluations, no train loss, or a named checkpoint that was never evaluated.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "INSUFFICIENT_DATA",
    "MAX_PROBLEMS",
    "OK",
    "OVERFITTING",
    "STATUSES",
    "UNSTABLE_TRAINING",
    "LossPoint",
    "OverfittingReport",
    "TrainingLog",
    "TrainingLogError",
    "detect_overfitting",
    "evaluation_noise",
    "parse_training_log",
    "plot_curves_svg",
]

MAX_PROBLEMS = 50

OK = "ok"
OVERFITTING = "overfitting"
UNSTABLE_TRAINING = "unstable_training"
INSUFFICIENT_DATA = "insufficient_data"
STATUSES: tuple[str, ...] = (OK, OVERFITTING, UNSTABLE_TRAINING, INSUFFICIENT_DATA)

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
        checkpoint_step: the step of the checkpoint that ships, when the log names it (a
            ``checkpoint_step`` key next to ``log_history``); ``None`` otherwise.
        best_global_step, best_model_checkpoint, best_metric: the Hugging Face Trainer's record
            of its best checkpoint (``trainer_state.json``); ``None`` when absent. With
            ``load_best_model_at_end`` that checkpoint is the model the Trainer leaves behind.

    Raises:
        ValueError: (on construction) a point that is not a :class:`LossPoint`, a non-finite or
            negative value, or steps that are not strictly increasing.
    """

    train: tuple[LossPoint, ...]
    validation: tuple[LossPoint, ...]
    axis: Axis = "step"
    checkpoint_step: float | None = None
    best_global_step: float | None = None
    best_model_checkpoint: str | None = None
    best_metric: float | None = None

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
        for name in ("checkpoint_step", "best_global_step", "best_metric"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and math.isfinite(value)
            ):
                raise ValueError(f"{name}: must be a finite number or None, got {value!r}")
            if value is not None and name != "best_metric" and value < 0:
                raise ValueError(f"{name}: must be >= 0, got {value!r}")

    def curves(self) -> dict[str, list[list[float]]]:
        """Both curves as JSON-ready ``{"train": [[step, loss], ...], "validation": [...]}``."""
        return {
            "train": [[p.step, p.loss] for p in self.train],
            "validation": [[p.step, p.loss] for p in self.validation],
        }


@dataclass(frozen=True)
class OverfittingReport:
    """Overfitting diagnosis of the checkpoint that ships (see the module docstring).

    Attributes:
        status: :data:`OK`, :data:`OVERFITTING`, :data:`UNSTABLE_TRAINING` or
            :data:`INSUFFICIENT_DATA`.
        flagged: ``status`` is overfitting or unstable training.
        reasons: one sentence per finding that flags the run, or why it could not be judged
            (empty when the status is ok).
        notes: informational sentences (which checkpoint was judged and why, a later better
            evaluation, a criterion that could not be applied, ...).
        checkpoint_step: the judged checkpoint's step (epoch on an epoch axis); ``None`` when
            no evaluation could be chosen.
        checkpoint_source: where it came from: ``"argument"``, ``"checkpoint_step"`` (the log's
            own field), ``"best_global_step"``, ``"best_model_checkpoint"`` or
            ``"last_evaluation"``.
        checkpoint_validation_loss: validation loss of the judged checkpoint.
        checkpoint_train_loss: train loss at it (median of the train losses logged since the
            previous evaluation).
        best_validation_step, best_validation_loss: the lowest validation loss among the
            evaluations up to the judged checkpoint (the earliest on a tie).
        evaluations_after_best: evaluations after the best one, up to the judged checkpoint.
        validation_rise: judged minus best validation loss (loss units).
        validation_rise_relative: judged / best validation loss - 1.
        noise_relative: estimated evaluation noise, the standard deviation of one evaluation's
            log loss (about a relative error), floored at ``min_noise``.
        noise_from_floor: the floor, not the curve, set ``noise_relative``.
        rise_threshold_relative: the relative rise that counts as more than noise,
            ``exp(noise_multiplier * sqrt(2) * noise_relative) - 1``.
        train_rise_relative: highest train loss after the best evaluation (up to the judged
            one) over the train loss at the best, minus 1 (``None`` when the judged checkpoint
            is the best).
        window_evaluations: evaluations in the divergence window (0 when too few to apply it).
        window_validation_change_relative, window_train_change_relative: relative change of
            the validation and train loss across that window (``None`` when not applied).
        gap: validation minus train loss at the judged checkpoint (evidence only).
        gap_ratio: validation / train loss there (``inf`` for a zero train loss; evidence only).
        n_evaluations: validation evaluations in the whole log.
        curves: ``{"train": [[step, loss], ...], "validation": [[step, loss], ...]}``.
        axis: ``"step"`` or ``"epoch"``.
        noise_multiplier, min_noise, window, train_rise_tolerance, min_evaluations: settings.
    """

    status: str
    flagged: bool
    reasons: tuple[str, ...]
    notes: tuple[str, ...]
    checkpoint_step: float | None
    checkpoint_source: str
    checkpoint_validation_loss: float | None
    checkpoint_train_loss: float | None
    best_validation_step: float | None
    best_validation_loss: float | None
    evaluations_after_best: int | None
    validation_rise: float | None
    validation_rise_relative: float | None
    noise_relative: float | None
    noise_from_floor: bool
    rise_threshold_relative: float | None
    train_rise_relative: float | None
    window_evaluations: int
    window_validation_change_relative: float | None
    window_train_change_relative: float | None
    gap: float | None
    gap_ratio: float | None
    n_evaluations: int
    curves: dict[str, list[list[float]]] = field(compare=False)
    axis: str
    noise_multiplier: float
    min_noise: float
    window: int
    train_rise_tolerance: float
    min_evaluations: int


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


_CHECKPOINT_DIR = re.compile(r"checkpoint-(\d+)$")


def _trainer_state(
    state: Mapping[Any, Any], source: str, problems: _Problems
) -> tuple[list[_Record], dict[str, Any]]:
    """Records of a ``trainer_state.json`` object's ``log_history`` and its checkpoint fields."""
    records = _records_from_json_list(state["log_history"], f"{source}.log_history", problems)
    fields: dict[str, Any] = {}
    for key in ("checkpoint_step", "best_global_step", "best_metric"):
        value = state.get(key)
        if value is None:
            continue
        number = _number(value) if not isinstance(value, str) else None
        if number is None or not math.isfinite(number) or (key != "best_metric" and number < 0):
            problems.whole(f"{key}: not a finite number >= 0: {_short(value)}")
            continue
        fields[key] = number
    path = state.get("best_model_checkpoint")
    if path is not None:
        if not isinstance(path, str):
            problems.whole(f"best_model_checkpoint: not a string: {_short(path)}")
        else:
            fields["best_model_checkpoint"] = path
    return records, fields


def _records(
    data: list[Any] | str | Mapping[str, Any], source: str, problems: _Problems
) -> tuple[list[_Record], dict[str, Any]]:
    """The raw records of any input format, and the checkpoint fields of a trainer state."""
    if isinstance(data, Mapping):
        if not isinstance(data.get("log_history"), list):
            problems.whole("an object must carry a log_history list (a trainer_state.json)")
            return [], {}
        return _trainer_state(data, source, problems)
    if isinstance(data, list):
        return _records_from_json_list(data, source, problems), {}
    if not isinstance(data, str):
        raise TypeError(f"data must be a list, a dict or a str, got {type(data).__name__}")
    text = data.lstrip("\ufeff").strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError as exc:
            problems.whole(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
            return [], {}
        return _records_from_json_list(parsed, source, problems), {}
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None  # several objects: JSONL
        if isinstance(parsed, Mapping) and isinstance(parsed.get("log_history"), list):
            # A whole trainer_state.json: locations index into its log_history.
            return _trainer_state(parsed, source, problems)
        return _records_from_jsonl(text, source, problems), {}
    return _records_from_csv(text, source, problems), {}


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


def parse_training_log(
    data: list[Any] | str | Mapping[str, Any], *, source: str = "training_log"
) -> TrainingLog:
    """Parse a fine-tuning log into train and validation loss curves.

    Args:
        data: a Hugging Face ``log_history`` list of dicts; a whole ``trainer_state.json``
            object (a dict with ``log_history`` and, optionally, ``best_global_step``,
            ``best_metric``, ``best_model_checkpoint`` and our ``checkpoint_step``); or text:
            a JSON list, a ``trainer_state.json``, JSONL (one object per line) or CSV with a
            header row.
        source: name used in problem locations (e.g. the uploaded file's name).

    Returns:
        The curves, each sorted by step (or by epoch when the log has no steps), and the
        trainer state's checkpoint fields. Losses are in the log's own units (nats per token
        for the Trainer).

    Raises:
        TrainingLogError: (a ``ValueError``) listing every problem, up to :data:`MAX_PROBLEMS`:
            a NaN, infinite, negative or non-numeric loss; a non-numeric, non-finite, negative
            or missing step/epoch; a repeated step with a different loss; an entry that is not
            an object, invalid JSON or a malformed CSV row; no train points; no validation
            points; a dict without a ``log_history`` list; a checkpoint field that is not a
            number >= 0 (``best_model_checkpoint``: not a string).
        TypeError: ``data`` is neither a list, a mapping nor a str.
    """
    problems = _Problems(source)
    records, checkpoint_fields = _records(data, source, problems)

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
    return TrainingLog(train=train, validation=validation, axis=axis, **checkpoint_fields)


# --------------------------------------------------------------------------------------------
# Overfitting
# --------------------------------------------------------------------------------------------

# Losses enter logarithms; a logged loss of exactly 0 is taken as this (nats).
_LOG_FLOOR = 1e-12
# Normal consistency of the median absolute deviation: sigma = 1.4826 * MAD.
_MAD_TO_SIGMA = 1.482602218505602


def _check_settings(
    noise_multiplier: float,
    min_noise: float,
    window: int,
    train_rise_tolerance: float,
    min_evaluations: int,
) -> None:
    def real(value: Any) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool)

    if not (real(noise_multiplier) and 0 < noise_multiplier < math.inf):
        raise ValueError(f"noise_multiplier must be a finite number > 0, got {noise_multiplier!r}")
    if not (real(min_noise) and 0 < min_noise < math.inf):
        raise ValueError(f"min_noise must be a finite number > 0, got {min_noise!r}")
    if not (real(train_rise_tolerance) and 0 <= train_rise_tolerance < math.inf):
        raise ValueError(
            f"train_rise_tolerance must be a finite number >= 0, got {train_rise_tolerance!r}"
        )
    for name, value, low in (("window", window, 2), ("min_evaluations", min_evaluations, 3)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _named_checkpoint(
    log: TrainingLog, checkpoint_step: float | None
) -> tuple[float | None, str, str | None]:
    """The named checkpoint step, where the name came from, and a problem with it (if any)."""
    if checkpoint_step is not None:
        if isinstance(checkpoint_step, bool) or not isinstance(checkpoint_step, int | float):
            raise ValueError(f"checkpoint_step must be a number or None, got {checkpoint_step!r}")
        if not (math.isfinite(checkpoint_step) and checkpoint_step >= 0):
            raise ValueError(f"checkpoint_step must be finite and >= 0, got {checkpoint_step!r}")
        return float(checkpoint_step), "argument", None
    if log.checkpoint_step is not None:
        return log.checkpoint_step, "checkpoint_step", None
    if log.best_global_step is not None:
        return log.best_global_step, "best_global_step", None
    if log.best_model_checkpoint is not None:
        match = _CHECKPOINT_DIR.search(log.best_model_checkpoint.rstrip("/\\"))
        if match is None:
            return (
                None,
                "best_model_checkpoint",
                f"best_model_checkpoint {log.best_model_checkpoint!r} does not end in "
                "checkpoint-<step>",
            )
        return float(match.group(1)), "best_model_checkpoint", None
    return None, "last_evaluation", None


def _train_at_evaluations(log: TrainingLog, val_x: np.ndarray) -> np.ndarray:
    """Train loss at each evaluation: the median of the train losses logged since the previous
    evaluation (up to and including this one); the linearly interpolated train curve where
    none were logged (its nearest end outside its range)."""
    train_x = np.array([p.step for p in log.train])
    train_y = np.array([p.loss for p in log.train])
    out = np.interp(val_x, train_x, train_y)
    previous = -math.inf
    for k, x in enumerate(val_x):
        inside = (train_x > previous) & (train_x <= x)
        if inside.any():
            out[k] = float(np.median(train_y[inside]))
        previous = x
    return out


def evaluation_noise(steps: Sequence[float], log_losses: Sequence[float]) -> float:
    """Robust standard deviation of one evaluation's log validation loss around a smooth
    curve, from Gasser, Sroka & Jennen-Steinmetz (1986) pseudo-residuals.

    Each interior point is compared with the straight line through its two neighbours:
    ``e_i = a_i y_(i-1) + b_i y_(i+1) - y_i`` with ``a_i = (x_(i+1) - x_i) / (x_(i+1) -
    x_(i-1))`` and ``b_i = 1 - a_i``; for independent noise of standard deviation ``sigma``,
    ``e_i / sqrt(a_i^2 + b_i^2 + 1)`` has standard deviation ``sigma``. The scale is
    ``1.4826 * median |e_i / sqrt(a_i^2 + b_i^2 + 1)|`` (a median, so that the kink at the best
    checkpoint or one bad evaluation does not dominate). A curved trend adds to the
    pseudo-residuals, so on strongly curved curves this overstates the noise: the detector
    then flags less, never more. ``nan`` below three points.
    """
    x = np.asarray(steps, dtype=np.float64)
    y = np.asarray(log_losses, dtype=np.float64)
    if x.size < 3:
        return math.nan
    span = x[2:] - x[:-2]
    a = (x[2:] - x[1:-1]) / span
    b = 1.0 - a
    residuals = (a * y[:-2] + b * y[2:] - y[1:-1]) / np.sqrt(a * a + b * b + 1.0)
    return float(_MAD_TO_SIGMA * np.median(np.abs(residuals)))


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` for losses: ``inf`` over a zero, 1.0 for zero over zero."""
    if denominator > 0:
        return numerator / denominator
    return math.inf if numerator > 0 else 1.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def detect_overfitting(
    log: TrainingLog,
    *,
    checkpoint_step: float | None = None,
    noise_multiplier: float = 3.0,
    min_noise: float = 0.005,
    window: int = 4,
    train_rise_tolerance: float = 0.10,
    min_evaluations: int = 3,
) -> OverfittingReport:
    """Judge the checkpoint that ships for overfitting, from its train and validation curves.

    Args:
        log: parsed curves (see :func:`parse_training_log`).
        checkpoint_step: the step of the checkpoint that ships; by default the log's own
            ``checkpoint_step``, else the Trainer's ``best_global_step``, else the step in its
            ``best_model_checkpoint`` path, else the last evaluation.
        noise_multiplier: how many standard deviations of a difference of two evaluations
            (``sqrt(2)`` times the evaluation noise) a change must exceed to count.
        min_noise: floor of the evaluation noise, as a standard deviation of the log loss
            (0.005: half a percent).
        window: evaluations (ending at the judged checkpoint) over which a divergence of the
            curves is looked for.
        train_rise_tolerance: relative rise of the train loss after the best evaluation that
            makes a worse validation loss "unstable training" rather than overfitting.
        min_evaluations: fewest validation evaluations for any verdict.

    Returns:
        An :class:`OverfittingReport`; the module docstring lists the rules.

    Raises:
        ValueError: a setting out of range, or a ``checkpoint_step`` that is not a finite
            number >= 0.
    """
    _check_settings(noise_multiplier, min_noise, window, train_rise_tolerance, min_evaluations)
    named_step, source, name_problem = _named_checkpoint(log, checkpoint_step)
    settings = {
        "curves": log.curves(),
        "axis": log.axis,
        "noise_multiplier": float(noise_multiplier),
        "min_noise": float(min_noise),
        "window": int(window),
        "train_rise_tolerance": float(train_rise_tolerance),
        "min_evaluations": int(min_evaluations),
    }
    n_evaluations = len(log.validation)
    empty: dict[str, Any] = {
        "checkpoint_step": named_step,
        "checkpoint_source": source,
        "checkpoint_validation_loss": None,
        "checkpoint_train_loss": None,
        "best_validation_step": None,
        "best_validation_loss": None,
        "evaluations_after_best": None,
        "validation_rise": None,
        "validation_rise_relative": None,
        "noise_relative": None,
        "noise_from_floor": False,
        "rise_threshold_relative": None,
        "train_rise_relative": None,
        "window_evaluations": 0,
        "window_validation_change_relative": None,
        "window_train_change_relative": None,
        "gap": None,
        "gap_ratio": None,
        "n_evaluations": n_evaluations,
    }

    def insufficient(reason: str) -> OverfittingReport:
        return OverfittingReport(
            status=INSUFFICIENT_DATA,
            flagged=False,
            reasons=(reason,),
            notes=(),
            **empty,
            **settings,
        )

    if name_problem is not None:
        return insufficient(f"cannot tell which checkpoint ships: {name_problem}")
    if not log.validation:
        return insufficient("no validation loss in the log")
    if not log.train:
        return insufficient("no train loss in the log")
    if n_evaluations < min_evaluations:
        return insufficient(
            f"only {_plural(n_evaluations, 'validation evaluation')}: at least "
            f"{min_evaluations} are needed to tell a change from the evaluation noise"
        )
    axis = log.axis
    val_x = np.array([p.step for p in log.validation])
    val_y = np.array([p.loss for p in log.validation])
    if named_step is None:
        c = n_evaluations - 1
    else:
        if axis == "epoch":
            return insufficient(
                f"the shipped checkpoint is named by step ({source} {named_step:g}) but the log "
                "has epochs only"
            )
        at = np.flatnonzero(np.abs(val_x - named_step) <= 1e-9 * max(1.0, abs(named_step)))
        if at.size == 0:
            return insufficient(
                f"the shipped checkpoint ({source} {named_step:g}) has no validation loss in "
                f"the log (evaluated {axis}s: {', '.join(f'{x:g}' for x in val_x)})"
            )
        c = int(at[0])

    train_y = _train_at_evaluations(log, val_x)
    log_val = np.log(np.maximum(val_y, _LOG_FLOOR))
    log_train = np.log(np.maximum(train_y, _LOG_FLOOR))
    estimated = evaluation_noise(val_x, log_val)
    noise = max(estimated, float(min_noise))
    threshold = noise_multiplier * math.sqrt(2.0) * noise  # on a difference of log losses

    best = int(np.argmin(val_y[: c + 1]))  # the earliest minimum
    rise_log = float(log_val[c] - log_val[best])
    worse = rise_log > threshold
    train_rise = None
    if c > best:
        train_rise = float(np.exp(np.max(log_train[best + 1 : c + 1]) - log_train[best]) - 1.0)

    notes: list[str] = []
    where = f"{axis} {val_x[c]:g}"
    if source == "last_evaluation":
        notes.append(f"judged the last evaluated checkpoint ({where}); no checkpoint was named")
    else:
        notes.append(f"judged the checkpoint named by {source} ({where})")
    if estimated < min_noise:
        notes.append(f"evaluation noise set by its floor ({min_noise:.2%})")
    later_best = c + 1 + int(np.argmin(val_y[c + 1 :])) if c + 1 < n_evaluations else None
    if later_best is not None and log_val[c] - log_val[later_best] > threshold:
        notes.append(
            f"a later evaluation ({axis} {val_x[later_best]:g}) had a lower validation loss "
            f"({val_y[later_best]:.4g}) than the judged checkpoint ({val_y[c]:.4g})"
        )
    if c > best:
        train_x = np.array([p.step for p in log.train])
        if not ((train_x > val_x[best]) & (train_x <= val_x[c])).any():
            notes.append(
                f"no train loss was logged between the best ({axis} {val_x[best]:g}) and the "
                "judged checkpoint; the train loss there is extrapolated"
            )

    window_used = 0
    window_val_change = window_train_change = None
    diverging = False
    if c + 1 >= window:
        window_used = int(window)
        start = c - window + 1
        val_change = float(log_val[c] - log_val[start])
        train_change = float(log_train[c] - log_train[start])
        window_val_change = float(np.expm1(val_change))
        window_train_change = float(np.expm1(train_change))
        # Validation did not improve by more than the noise, and the train loss fell by more
        # than the validation loss did, again by more than the noise: the curves part.
        diverging = val_change > -threshold and train_change - val_change < -threshold
    else:
        notes.append(
            f"divergence not checked: {_plural(c + 1, 'evaluation')} up to the judged "
            f"checkpoint, fewer than the window of {window}"
        )

    threshold_relative = float(np.expm1(threshold))
    reasons: list[str] = []
    status = OK
    if worse:
        unstable = train_rise is not None and train_rise > train_rise_tolerance
        status = UNSTABLE_TRAINING if unstable else OVERFITTING
        sentence = (
            f"validation loss rose to {val_y[c]:.4g} at the shipped checkpoint ({where}), "
            f"{np.expm1(rise_log):.1%} above the best {val_y[best]:.4g} at {axis} "
            f"{val_x[best]:g}: more than the evaluation noise allows (threshold "
            f"{threshold_relative:.1%})"
        )
        if unstable:
            sentence += (
                f", while the training loss rose too (up to {train_rise:.0%} above its level at "
                "the best evaluation): unstable training (e.g. a learning rate too high), not "
                "overfitting"
            )
        else:
            train_change = float(np.expm1(log_train[c] - log_train[best]))
            sentence += f", while the training loss did not rise ({train_change:+.1%})"
        reasons.append(sentence)
    if diverging:
        divergence = (
            f"validation loss stopped improving over the last {window} evaluations "
            f"({window_val_change:+.1%}) while the training loss fell {-window_train_change:.1%}: "
            f"the curves diverge by more than the evaluation noise (threshold "
            f"{threshold_relative:.1%})"
        )
        if status == UNSTABLE_TRAINING:
            notes.append(divergence)  # the train loss fell back after rising: not memorisation
        else:
            status = OVERFITTING
            reasons.append(divergence)

    train_at = float(train_y[c])
    # Evidence only: near a zero train loss the ratio explodes on healthy runs.
    gap_ratio = _ratio(float(val_y[c]), train_at)
    return OverfittingReport(
        status=status,
        flagged=status in (OVERFITTING, UNSTABLE_TRAINING),
        reasons=tuple(reasons),
        notes=tuple(notes),
        checkpoint_step=float(val_x[c]),
        checkpoint_source=source,
        checkpoint_validation_loss=float(val_y[c]),
        checkpoint_train_loss=train_at,
        best_validation_step=float(val_x[best]),
        best_validation_loss=float(val_y[best]),
        evaluations_after_best=c - best,
        validation_rise=float(val_y[c] - val_y[best]),
        validation_rise_relative=float(np.expm1(rise_log)),
        noise_relative=noise,
        noise_from_floor=estimated < min_noise,
        rise_threshold_relative=threshold_relative,
        train_rise_relative=train_rise,
        window_evaluations=window_used,
        window_validation_change_relative=window_val_change,
        window_train_change_relative=window_train_change,
        gap=float(val_y[c] - train_at),
        gap_ratio=gap_ratio,
        n_evaluations=n_evaluations,
        **settings,
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


_STATUS_TITLES = {
    OK: "no overfitting flagged",
    OVERFITTING: "overfitting flagged",
    UNSTABLE_TRAINING: "unstable training flagged",
    INSUFFICIENT_DATA: "insufficient data",
}


def plot_curves_svg(log: TrainingLog, report: OverfittingReport) -> str:
    """Draw both loss curves with the best validation step and the shipped checkpoint marked,
    as SVG text.

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
        if report.best_validation_step is not None and report.best_validation_loss is not None:
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
        if (
            report.checkpoint_step is not None
            and report.checkpoint_validation_loss is not None
            and report.checkpoint_step != report.best_validation_step
        ):
            ax.plot(
                [report.checkpoint_step],
                [report.checkpoint_validation_loss],
                linestyle="none",
                marker="D",
                markersize=6,
                color="#c53030",
                label=f"shipped checkpoint ({log.axis} {report.checkpoint_step:g})",
            )
        ax.set_xlabel(log.axis)
        ax.set_ylabel("loss")
        ax.set_title(f"Training curves ({_STATUS_TITLES.get(report.status, report.status)})")
        ax.grid(True, color="#e2e8f0", linewidth=0.6)
        ax.legend(frameon=False)
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    svg = buffer.getvalue()
    return svg[svg.find("<svg") :]
