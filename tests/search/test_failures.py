"""One line out of Ray's pages about a failed trial."""

from __future__ import annotations

from collatz_ray.search.failures import MAX_REASON_CHARS, error_line, failure_reason

TRAIN_FAILURE = """\
Training failed due to worker errors:
[Rank 0]
Traceback (most recent call last):
  File "loop.py", line 150, in train
    raise _diverged(...)
collatz_ray.trainer.loop.TrainingDiverged: loss became nan at epoch 3 (lr 10); no checkpoint was written yet
ray.train.WorkerGroupError: Training failed due to worker errors
"""


def test_the_trainer_s_own_exception_wins_over_ray_s_wrappers():
    assert (
        failure_reason(TRAIN_FAILURE)
        == "TrainingDiverged: loss became nan at epoch 3 (lr 10); no checkpoint was written yet"
    )


def test_otherwise_the_last_error_line():
    text = "something happened\nValueError: first\n  context\nray.exceptions.RayTaskError: second\n"
    assert failure_reason(text) == "ray.exceptions.RayTaskError: second"


def test_otherwise_the_first_line_or_the_fallback():
    assert failure_reason("\n  plain words  \nmore\n") == "plain words"
    assert failure_reason("", fallback="TrainingFailedError") == "TrainingFailedError"


def test_a_reason_is_bounded():
    assert len(failure_reason("UsageError: " + "x" * 5000)) == MAX_REASON_CHARS


def test_error_line_reads_the_last_failure_of_error_txt_without_colours():
    text = (
        "Failure # 1 (occurred at 2026-11-25_20-57-11)\n"
        "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\n"
        '  File "trial.py", line 9, in collatz_trial\n'
        "ray.train.ControllerError: startup timed out\n"
        "after 120.0 seconds\n"
        "Failure # 2 (occurred at 2026-11-25_21-00-00)\n"
        "collatz_ray.search.ray.trial.TrialFailed: TrainingDiverged: loss became inf\n"
    )
    assert error_line(text) == "collatz_ray.search.ray.trial.TrialFailed: TrainingDiverged: loss became inf"
    assert (
        error_line(text.split("Failure # 2")[0])
        == "ray.train.ControllerError: startup timed out after 120.0 seconds"
    )
    assert error_line("") == "(error.txt holds no message)"
