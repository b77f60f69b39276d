"""TrainConfig's bounds: every way in (YAML, a space, flags) refuses values the trainer
cannot use, in one line that quotes at most a short piece of the value."""

from __future__ import annotations

import pytest

from collatz_ray.errors import SHOWN_CHARS, UsageError
from collatz_ray.syracuse.arith import MAX_BITS
from collatz_ray.trainer.config import MAX_INT, MAX_SEED, TrainConfig

HUGE = "9" * 5000  # past Python's 4300-digit limit for int()


def refused(values: dict, *fragments: str) -> str:
    with pytest.raises(UsageError) as info:
        TrainConfig.from_dict(values, source="flags")
    message = str(info.value)
    assert "\n" not in message and len(message) < 600, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


@pytest.mark.parametrize(
    "values, fragments",
    [
        ({"seed": -1}, ["seed", f"from 0 to {MAX_SEED}"]),
        ({"seed": MAX_SEED + 1}, ["seed"]),
        ({"max_bits": MAX_BITS + 1}, ["max_bits", str(MAX_BITS)]),
        ({"test_seeds": [27, 2**MAX_BITS]}, ["test_seeds"]),
        ({"test_seeds": "27,0"}, ["test_seeds"]),
        ({"batch_size": MAX_INT + 1}, ["batch_size", f"at most {MAX_INT}"]),
        ({"layers": [8, 2**40]}, ["layers", f"at most {MAX_INT}"]),
        ({"epochs": "1e400"}, ["epochs", "an integer, got '1e400'"]),
        ({"batch_size": ""}, ["batch_size", "an integer, got ''"]),
        ({"lr": "fast"}, ["lr", "a number, got 'fast'"]),
        ({"lr": 10**400}, ["lr", "a number"]),
        ({"test_seeds": f"27,{HUGE}"}, ["test_seeds", "a list of integers"]),
        ({"test_seeds": "27,²"}, ["test_seeds", "a list of integers"]),
        ({"seed": HUGE}, ["seed", "an integer"]),
        ({"lookahead": [[1] * 1000] * 1000}, ["lookahead", "an integer"]),
        ({"target_type": "x" * 100_000}, ["target_type"]),
        ({"x" * 100_000: 1}, ["unknown key"]),
    ],
)
def test_out_of_range_values_are_refused_in_one_short_line(values, fragments):
    message = refused(values, *fragments)
    assert "x" * (SHOWN_CHARS + 1) not in message and "9" * (SHOWN_CHARS + 1) not in message


def test_the_bounds_themselves_are_accepted():
    config = TrainConfig.from_dict(
        {
            "seed": MAX_SEED,
            "max_bits": MAX_BITS,
            "batch_size": MAX_INT,
            "test_seeds": [2**MAX_BITS - 1],
            "epochs": "20000000",
        }
    )
    assert config.seed == MAX_SEED and config.epochs == 20_000_000
    # an exact integer, not one rounded through a float
    assert TrainConfig.from_dict({"seed": "4294967295"}).seed == 4294967295
