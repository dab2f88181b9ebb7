"""Progress lines: the ETA's rate and format, and which phase logs what at which level."""

import logging

import pytest

from augloss import train
from augloss.config import TrainConfig
from augloss.progress import Progress, format_eta
from augloss.search import Search
from tests.helpers import FITNESS, TINY, FakeEvaluator


@pytest.mark.parametrize("seconds, text", [
    (0, "00:00:00"), (59.4, "00:00:59"), (3599, "00:59:59"), (86399, "23:59:59"),
    (86400, "1d 00:00:00"), (3 * 86400 + 4 * 3600 + 5 * 60 + 6, "3d 04:05:06"),
    (400 * 86400 + 1, "400d 00:00:01"), (-5, "00:00:00"),
])
def test_eta_format_never_wraps_at_a_day(seconds, text):
    assert format_eta(seconds) == text


def test_the_rate_counts_only_this_runs_work():
    p = Progress(total=100, done_at_start=40, started=0.0)
    assert p.rate(40, now=10.0) is None and p.eta_text(40, now=10.0) == "?"
    # 10 units in 20 s since the (resumed) start: 0.5 per second, 50 left.
    assert p.rate(50, now=20.0) == pytest.approx(0.5)
    assert p.eta(50, now=20.0) == pytest.approx(100.0)
    # The rate does not decay as work goes on at a steady pace (the old ETA grew).
    assert p.eta(90, now=100.0) == pytest.approx(20.0)
    assert p.eta(100, now=120.0) == 0.0
    assert Progress(total=3, started=0.0).eta_text(1, now=2 * 86400) == "4d 00:00:00"


def test_every_search_phase_logs_a_line_per_log_every_evaluations(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="augloss")
    Search("cutout", TINY, FITNESS, seed=0, out_dir=tmp_path / "a",
           evaluator=FakeEvaluator()).run()
    lines = [r.getMessage() for r in caplog.records if r.name == "augloss.search"]
    pool = [m for m in lines if m.startswith("[cutout] pool ")]
    rescore = [m for m in lines if m.startswith("[cutout] rescore ")]
    children = [m for m in lines if m.startswith("[cutout] child ")]
    # TINY: a pool of 6 and 6 children, log_every 2; a population of 4 re-scored.
    assert [m.split()[2] for m in pool] == ["2/6", "4/6", "6/6"]
    assert [m.split()[2] for m in rescore] == ["2/4", "4/4"]
    assert [m.split()[2] for m in children] == ["2/6", "4/6", "6/6"]
    assert all("ETA " in m for m in pool + rescore + children)


def test_training_logs_an_epoch_line_with_eta_and_the_surrogate_only_at_debug(caplog):
    from augloss import augment, data, losses, models
    from augloss.config import AugmentConfig

    caplog.set_level(logging.INFO, logger="augloss")
    d = data.load("digits", split="train")
    val = d.subset(range(64), "val")
    cfg = TrainConfig(epochs=2, steps_per_epoch=1, batch_size=16, eval_batch_size=64,
                            evaluate_test=False)
    for level in (logging.INFO, logging.DEBUG):
        caplog.clear()
        train.fit(models.create("surrogate", 10), losses.get("ce"), d, val, None,
                  augment.build("base", AugmentConfig(image_size=8)), cfg, 0,
                  epoch_log_level=level)
        epochs = [r for r in caplog.records if r.getMessage().startswith("epoch ")]
        if level == logging.INFO:
            assert [r.getMessage().split()[1] for r in epochs] == ["1/2", "2/2"]
            assert all(" ETA " in r.getMessage() for r in epochs)
        else:
            assert epochs == []
