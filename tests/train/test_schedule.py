import json
import math

import pytest

from gaatool.errors import ConfigError
from gaatool.train.schedule import PlateauSchedule


def _run(schedule, losses):
    """Per epoch: (improved, lr_scale after the step, should_stop)."""
    return [(schedule.step(loss), schedule.lr_scale, schedule.should_stop) for loss in losses]


def test_paper_defaults():
    schedule = PlateauSchedule()
    assert (schedule.factor, schedule.patience, schedule.stop_patience, schedule.min_delta) == (0.75, 20, 50, 0.0)


def test_reductions_restart_the_count_and_stop_counts_from_the_best():
    schedule = PlateauSchedule(factor=0.5, patience=2, stop_patience=5)
    steps = _run(schedule, [3.0, 2.0, 2.5, 2.0, 9.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert [improved for improved, _, _ in steps] == [True, True, False, False, False, True] + [False] * 5
    # 2 bad epochs -> x0.5 after epoch 4; the best at epoch 6 resets both counts;
    # then x0.5 every 2 bad epochs (after epochs 8 and 10) and stop after 5 (epoch 11).
    assert [scale for _, scale, _ in steps] == [1, 1, 1, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]
    assert [stop for _, _, stop in steps] == [False] * 10 + [True]
    assert schedule.best == 1.0 and schedule.n_reductions == 3


def test_improvement_resets_the_reduction_count():
    schedule = PlateauSchedule(factor=0.75, patience=3, stop_patience=10)
    _run(schedule, [1.0, 2.0, 2.0, 0.5, 2.0, 2.0])  # two bad epochs, a best, two bad epochs
    assert schedule.n_reductions == 0
    schedule.step(2.0)
    assert schedule.n_reductions == 1 and schedule.lr_scale == 0.75


def test_min_delta():
    schedule = PlateauSchedule(patience=5, stop_patience=5, min_delta=0.1)
    assert schedule.step(1.0) is True
    assert schedule.step(0.95) is False  # not better by more than 0.1
    assert schedule.best == 1.0
    assert schedule.step(0.85) is True


def test_nan_never_improves():
    schedule = PlateauSchedule(patience=1, stop_patience=2)
    assert schedule.step(1.0) is True
    assert schedule.step(math.nan) is False
    assert schedule.best == 1.0


def test_state_dict_roundtrip_is_json_and_continues_identically():
    losses = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0, 3.5, 3.6, 3.7, 3.8]
    straight = PlateauSchedule(factor=0.5, patience=2, stop_patience=4)
    first = PlateauSchedule(factor=0.5, patience=2, stop_patience=4)
    assert first.state_dict()["best"] is None
    expected = _run(straight, losses)
    got = _run(first, losses[:4])
    resumed = PlateauSchedule(factor=0.5, patience=2, stop_patience=4)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    got += _run(resumed, losses[4:])
    assert got == expected
    assert resumed.state_dict() == straight.state_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"factor": 0.0}, "lr_factor"),
        ({"factor": 1.5}, "lr_factor"),
        ({"patience": 0}, "lr_patience"),
        ({"stop_patience": 0}, "stop_patience"),
        ({"min_delta": -1.0}, "min_delta"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PlateauSchedule(**kwargs)
