"""Training-log parsing, overfitting detection and the loss-curve plot."""

from __future__ import annotations

import copy
import json
import math
import pickle

import pytest

from scoring.stats.training import (
    MAX_PROBLEMS,
    LossPoint,
    TrainingLog,
    TrainingLogError,
    detect_overfitting,
    parse_training_log,
    plot_curves_svg,
)

# Train loss logged every 10 steps, evaluation every 50 steps, 100 steps per epoch.
TRAIN_LOSS = {10 * k: round(2.4 - 0.006 * 10 * k, 4) for k in range(1, 31)}  # 2.34 ... 0.6
# Validation U-shape: best at step 150, then four rising evaluations.
VAL_U = {50: 1.40, 100: 1.20, 150: 1.10, 200: 1.13, 250: 1.18, 300: 1.25, 350: 1.31}


def hf_log_history(val: dict[int, float], train: dict[int, float] | None = None) -> list[dict]:
    """A log_history as the Hugging Face Trainer writes it (trainer_state.json)."""
    train = TRAIN_LOSS if train is None else train
    last = max([*train, *val])
    entries: list[dict] = []
    for step in range(10, last + 1, 10):
        epoch = round(step / 100, 4)
        if step in train:
            entries.append(
                {
                    "epoch": epoch,
                    "grad_norm": 1.3,
                    "learning_rate": 5e-05 * (1 - step / (last + 10)),
                    "loss": train[step],
                    "step": step,
                }
            )
        if step in val:
            entries.append(
                {
                    "epoch": epoch,
                    "eval_loss": val[step],
                    "eval_runtime": 2.81,
                    "eval_samples_per_second": 71.2,
                    "eval_steps_per_second": 8.9,
                    "step": step,
                }
            )
    entries.append(
        {
            "epoch": round(last / 100, 4),
            "step": last,
            "total_flos": 1.2e15,
            "train_loss": 1.234,
            "train_runtime": 301.5,
            "train_samples_per_second": 10.6,
            "train_steps_per_second": 1.0,
        }
    )
    return entries


def problems_of(data: list | str, **kwargs: str) -> list[str]:
    with pytest.raises(TrainingLogError) as info:
        parse_training_log(data, **kwargs)
    return info.value.problems


# ------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------


def test_hf_log_history_parsed() -> None:
    history = hf_log_history(VAL_U, {**TRAIN_LOSS, 310: 0.55, 320: 0.5, 330: 0.45, 340: 0.4})
    before = copy.deepcopy(history)
    log = parse_training_log(history)
    assert history == before  # not mutated
    assert log.axis == "step"
    assert [p.step for p in log.validation] == [50, 100, 150, 200, 250, 300, 350]
    assert [p.loss for p in log.validation] == list(VAL_U.values())
    assert len(log.train) == 34
    assert log.train[0] == LossPoint(10.0, 2.34)
    # The summary entry (train_loss 1.234 at the last step) is not a point on the curve.
    assert log.train[-1] == LossPoint(340.0, 0.4)
    assert all(p.loss != 1.234 for p in log.train)


def test_hf_log_history_as_json_text_and_trainer_state() -> None:
    history = hf_log_history(VAL_U)
    expected = parse_training_log(history)
    assert parse_training_log(json.dumps(history, indent=2)) == expected
    state = {"best_metric": None, "global_step": 350, "log_history": history}
    assert parse_training_log(json.dumps(state)) == expected
    history[3]["loss"] = float("nan")  # json.dumps writes NaN, as the Trainer does
    assert problems_of(json.dumps(state)) == [
        "training_log.log_history[3].loss: loss is NaN: training diverged?"
    ]


def test_csv_with_empty_cells() -> None:
    text = "step,train_loss,val_loss\n10,2.0,\n20,1.8,1.9\n\n30,1.6,\n40,1.5,1.7\n"
    log = parse_training_log(text)
    assert log.train == tuple(
        LossPoint(s, v) for s, v in [(10, 2.0), (20, 1.8), (30, 1.6), (40, 1.5)]
    )
    assert log.validation == (LossPoint(20, 1.9), LossPoint(40, 1.7))


def test_csv_epoch_axis_and_short_rows() -> None:
    text = "\ufeffEpoch, Loss, Eval Loss\n1,2.0,2.1\n2,1.5\n3,1.2,1.6\n"
    log = parse_training_log(text)
    assert log.axis == "epoch"
    assert log.train == (LossPoint(1, 2.0), LossPoint(2, 1.5), LossPoint(3, 1.2))
    assert log.validation == (LossPoint(1, 2.1), LossPoint(3, 1.6))


def test_tab_separated_csv() -> None:
    log = parse_training_log("iteration\tloss\tvalid_loss\n1\t1.0\t1.1\n2\t0.9\t1.0\n")
    assert log.validation == (LossPoint(1, 1.1), LossPoint(2, 1.0))


def test_jsonl_variant_keys_unsorted_and_nulls() -> None:
    text = "\n".join(
        [
            '{"global_step": 30, "train_loss": 1.2, "val_loss": null}',
            "",
            '{"global_step": 10, "train_loss": 2.0}',
            '{"global_step": 20, "train_loss": 1.5, "validation_loss": 1.6}',
            '{"global_step": 20, "train_loss": 1.5}',
            '{"global_step": 30, "val_loss": 1.4, "lr": 1e-5}',
            '{"learning_rate": 1e-5}',
        ]
    )
    log = parse_training_log(text)
    assert log.train == (LossPoint(10, 2.0), LossPoint(20, 1.5), LossPoint(30, 1.2))
    assert log.validation == (LossPoint(20, 1.6), LossPoint(30, 1.4))


def test_jsonl_single_line() -> None:
    log = parse_training_log('{"step": 1, "loss": 1.0, "eval_loss": 1.2}')
    assert log.train == (LossPoint(1, 1.0),) and log.validation == (LossPoint(1, 1.2),)


def test_json_errors_name_their_entry() -> None:
    data = [
        {"step": 1, "loss": float("nan")},
        {"step": 2, "loss": float("inf")},
        {"step": 3, "loss": -0.5},
        {"step": 4, "loss": "abc"},
        {"step": "five", "loss": 1.0},
        {"epoch": 0.5, "eval_loss": 1.0},
        {"loss": 1.0},
        "not a dict",
        {"step": True, "loss": 1.0},
        {"step": -1, "loss": 1.0},
    ]
    assert problems_of(data, source="run.json") == [
        "run.json[0].loss: loss is NaN: training diverged?",
        "run.json[1].loss: loss is infinite: training diverged?",
        "run.json[2].loss: loss is negative (-0.5): a loss cannot be below 0",
        "run.json[3].loss: not a number: 'abc'",
        "run.json[4].step: not a number: 'five'",
        "run.json[5].step: missing step: other entries have a step but this one only an epoch, "
        "and steps and epochs cannot share one axis",
        "run.json[6].step: missing step or epoch",
        "run.json[7]: entry is not an object (got str)",
        "run.json[8].step: not a number: True",
        "run.json[9].step: is negative (-1)",
    ]


def test_no_validation_and_no_train() -> None:
    assert problems_of([{"step": 1, "loss": 1.0}]) == [
        "training_log: no validation loss: cannot detect overfitting"
    ]
    assert problems_of([{"step": 1, "eval_loss": 1.0}]) == [
        "training_log: no train loss: expected a loss, train_loss or training_loss field in "
        "some entry"
    ]
    assert problems_of([]) == problems_of("") == problems_of("step,loss,eval_loss\n")
    assert len(problems_of([])) == 2


def test_duplicate_steps() -> None:
    # The same value twice is kept once; a different value is an error naming both places.
    log = parse_training_log([{"step": 1, "loss": 1.0}, {"step": 1, "loss": 1.0, "eval_loss": 2}])
    assert log.train == (LossPoint(1, 1.0),)
    assert problems_of(
        [{"step": 1, "loss": 1.0}, {"step": 2, "eval_loss": 1}, {"step": 1, "loss": 0.9}]
    ) == [
        "training_log[2].loss: duplicate step 1 with a different value (0.9) than "
        "training_log[0] (1)"
    ]
    assert problems_of("step,loss,val_loss\n5,1.0,2.0\n6,0.9,\n5,1.0,2.5\n") == [
        "training_log:4: val_loss: duplicate step 5 with a different value (2.5) than line 2 (2)"
    ]


def test_csv_errors_name_their_line() -> None:
    text = "step,train_loss,val_loss\n1,nan,\n2,inf,1.0\n3,-1,x\n,1.0,\n5,1.0,1.0,9\nsix,1.0,\n"
    assert problems_of(text, source="curves.csv") == [
        "curves.csv:2: train_loss: loss is NaN: training diverged?",
        "curves.csv:3: train_loss: loss is infinite: training diverged?",
        "curves.csv:4: train_loss: loss is negative (-1): a loss cannot be below 0",
        "curves.csv:4: val_loss: not a number: 'x'",
        "curves.csv:5: step: missing step or epoch",
        "curves.csv:6: row has 4 cells but the header has 3",
        "curves.csv:7: step: not a number: 'six'",
    ]
    assert problems_of("step,loss,Loss\n1,1,1\n") == [
        "training_log:1: header: duplicate column 'Loss'",
        "training_log: no validation loss: cannot detect overfitting",
    ]


def test_jsonl_errors_use_one_based_lines() -> None:
    text = '{"step": 1, "loss": 1.0}\n\n{"step": 2, "loss": NaN}\n{"step": 3,\n[1, 2]\n'
    assert problems_of(text) == [
        "training_log[line 3].loss: loss is NaN: training diverged?",
        "training_log[line 4]: invalid JSON: Expecting property name enclosed in double quotes "
        "(column 12)",
        "training_log[line 5]: entry is not an object (got list)",
        "training_log: no validation loss: cannot detect overfitting",
    ]


def test_invalid_json_text() -> None:
    assert problems_of('[{"step": 1,') == [
        "training_log: invalid JSON at line 1 column 13: Expecting property name enclosed in "
        "double quotes",
        "training_log: no train loss: expected a loss, train_loss or training_loss field in "
        "some entry",
        "training_log: no validation loss: cannot detect overfitting",
    ]


def test_problems_are_capped_and_the_error_pickles() -> None:
    data = [{"step": i, "loss": float("nan"), "eval_loss": 1.0} for i in range(60)]
    with pytest.raises(TrainingLogError) as info:
        parse_training_log(data)
    error = info.value
    assert isinstance(error, ValueError)
    assert len(error.problems) == MAX_PROBLEMS and error.n_problems == 60
    assert str(error).startswith("60 problems in training log:\ntraining_log[0].loss: loss is NaN")
    assert str(error).endswith("\n(and 10 more)")
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (again.problems, again.n_problems, str(again)) == (
        error.problems,
        error.n_problems,
        str(error),
    )


def test_wrong_input_type() -> None:
    with pytest.raises(TypeError, match="list or a str"):
        parse_training_log({"log_history": []})  # type: ignore[arg-type]


def test_training_log_validates_points() -> None:
    with pytest.raises(ValueError, match=r"train\[1\]: steps must be strictly increasing"):
        TrainingLog(train=(LossPoint(2, 1.0), LossPoint(1, 1.0)), validation=())
    with pytest.raises(ValueError, match=r"validation\[0\]: loss must be >= 0"):
        TrainingLog(train=(), validation=(LossPoint(1, -1.0),))
    with pytest.raises(ValueError, match=r"validation\[0\]: step and loss must be finite"):
        TrainingLog(train=(), validation=(LossPoint(1, math.nan),))
    log = TrainingLog(train=[LossPoint(1, 1.0)], validation=[])  # type: ignore[arg-type]
    assert log.train == (LossPoint(1, 1.0),)


# ------------------------------------------------------------------------------------------
# Overfitting
# ------------------------------------------------------------------------------------------


def test_classic_overfitting_flagged() -> None:
    log = parse_training_log(hf_log_history(VAL_U))
    report = detect_overfitting(log, max_gap_ratio=math.inf)
    assert report.best_validation_step == 150
    assert report.best_validation_loss == 1.10
    assert report.rising_evaluations == 4
    assert report.steps_after_best == 200 and report.evaluations_after_best == 4
    assert report.flagged
    assert report.reasons == (
        "validation loss rose for 4 evaluations while train loss fell (patience 3)",
    )
    # Train is logged up to step 300; at step 350 it is the nearest (last) point.
    assert report.final_train_loss == pytest.approx(0.6)
    assert report.final_validation_loss == 1.31
    assert report.final_gap == pytest.approx(1.31 - 0.6)
    assert report.gap_ratio == pytest.approx(1.31 / 0.6)
    assert report.curves["validation"][2] == [150.0, 1.10]
    assert len(report.curves["train"]) == 30
    # Not enough rises for a patience of 5.
    assert not detect_overfitting(log, patience=5, max_gap_ratio=math.inf).flagged


def test_rises_below_min_rise_do_not_count() -> None:
    log = parse_training_log(hf_log_history(VAL_U))
    report = detect_overfitting(log, min_rise=0.06, max_gap_ratio=math.inf)
    assert report.rising_evaluations == 2  # only 1.18 -> 1.25 -> 1.31 rise by more than 0.06
    assert not report.flagged and report.reasons == ()


def test_healthy_curve_not_flagged() -> None:
    val = {50: 2.2, 100: 1.9, 150: 1.7, 200: 1.5, 250: 1.4, 300: 1.35}
    report = detect_overfitting(parse_training_log(hf_log_history(val)), max_gap_ratio=3.0)
    assert not report.flagged and report.reasons == ()
    assert report.rising_evaluations == 0
    assert (report.best_validation_step, report.steps_after_best) == (300, 0)
    assert report.evaluations_after_best == 0


def test_gap_ratio_flag() -> None:
    # Validation keeps falling, but ends far above the train loss.
    val = {50: 2.2, 100: 1.9, 150: 1.7, 200: 1.5, 250: 1.4, 300: 1.35}
    report = detect_overfitting(parse_training_log(hf_log_history(val)))
    assert report.rising_evaluations == 0
    assert report.gap_ratio == pytest.approx(1.35 / 0.6)
    assert report.flagged
    assert report.reasons == ("gap ratio 2.25 above 1.5",)


def test_both_reasons() -> None:
    report = detect_overfitting(parse_training_log(hf_log_history(VAL_U)))
    assert report.reasons == (
        "validation loss rose for 4 evaluations while train loss fell (patience 3)",
        "gap ratio 2.18 above 1.5",
    )


def test_rising_train_loss_is_not_overfitting() -> None:
    # Both curves rise at the end (e.g. a learning rate too high): not the overfitting pattern.
    train = {10: 1.0, 20: 0.9, 30: 0.8, 40: 0.85, 50: 0.9, 60: 0.95}
    val = {10: 1.1, 20: 1.0, 30: 0.9, 40: 0.95, 50: 1.0, 60: 1.05}
    report = detect_overfitting(parse_training_log(hf_log_history(val, train)))
    assert report.rising_evaluations == 0 and not report.flagged
    assert report.best_validation_step == 30


def test_only_the_trailing_run_counts() -> None:
    val = {50: 1.4, 100: 1.2, 150: 1.25, 200: 1.3, 250: 1.35, 300: 1.15}
    report = detect_overfitting(parse_training_log(hf_log_history(val)), max_gap_ratio=9)
    assert report.rising_evaluations == 0 and not report.flagged
    assert report.best_validation_step == 300


def test_train_loss_interpolated_at_validation_steps() -> None:
    log = TrainingLog(
        train=(LossPoint(10, 2.0), LossPoint(20, 1.0)),
        validation=(LossPoint(5, 2.5), LossPoint(15, 1.8)),
    )
    report = detect_overfitting(log)
    assert report.final_gap == pytest.approx(1.8 - 1.5)
    assert report.gap_ratio == pytest.approx(1.2)
    assert report.final_train_loss == 1.0
    # Train at step 5 is the nearest end point (2.0), at 15 it is 1.5: the val drop is no rise.
    assert report.rising_evaluations == 0


def test_zero_train_loss_gap_ratio() -> None:
    log = TrainingLog(train=(LossPoint(1, 0.0),), validation=(LossPoint(1, 0.3),))
    report = detect_overfitting(log)
    assert report.gap_ratio == math.inf and report.flagged
    assert report.reasons == ("gap ratio inf above 1.5",)
    flat = TrainingLog(train=(LossPoint(1, 0.0),), validation=(LossPoint(1, 0.0),))
    assert detect_overfitting(flat).gap_ratio == 1.0


def test_single_rise_with_patience_one() -> None:
    log = TrainingLog(
        train=(LossPoint(1, 1.0), LossPoint(2, 0.9)),
        validation=(LossPoint(1, 1.0), LossPoint(2, 1.1)),
    )
    report = detect_overfitting(log, patience=1)
    assert report.reasons == (
        "validation loss rose for 1 evaluation while train loss fell (patience 1)",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patience": 0}, "patience must be an integer >= 1"),
        ({"patience": 2.5}, "patience must be an integer >= 1"),
        ({"max_gap_ratio": 0}, "max_gap_ratio must be a number > 0"),
        ({"max_gap_ratio": math.nan}, "max_gap_ratio must be a number > 0"),
        ({"min_rise": -0.1}, "min_rise must be a finite number >= 0"),
    ],
)
def test_detect_overfitting_rejects_bad_settings(kwargs: dict, message: str) -> None:
    log = TrainingLog(train=(LossPoint(1, 1.0),), validation=(LossPoint(1, 1.0),))
    with pytest.raises(ValueError, match=message):
        detect_overfitting(log, **kwargs)


def test_detect_overfitting_needs_both_curves() -> None:
    with pytest.raises(ValueError, match=r"log\.validation: no validation points"):
        detect_overfitting(TrainingLog(train=(LossPoint(1, 1.0),), validation=()))
    with pytest.raises(ValueError, match=r"log\.train: no train points"):
        detect_overfitting(TrainingLog(train=(), validation=(LossPoint(1, 1.0),)))


# ------------------------------------------------------------------------------------------
# Plot
# ------------------------------------------------------------------------------------------


def test_plot_curves_svg() -> None:
    log = parse_training_log(hf_log_history(VAL_U))
    report = detect_overfitting(log)
    svg = plot_curves_svg(log, report)
    assert svg.startswith("<svg")
    assert svg.rstrip().endswith("</svg>")
    assert "best validation (step 150)" in svg
    assert "overfitting flagged" in svg
    assert plot_curves_svg(log, report) == svg  # deterministic
