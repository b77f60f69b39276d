"""Fuzzing the commands' input: random flags and values, and valid files (a train config,
an evaluation CSV, a search space, a result.json) cut short, re-encoded and given odd
values. Whatever comes in, a command either accepts it (exit 0) or refuses it with
exit status 2 and exactly one line on stderr: never a traceback, never a hang.

Files read from storage are fuzzed the same way, with now and then a hostile line in
them (nested 100000 deep, longer than any line limit, terminal control characters): the
counterexample bank, collatz_search.json and a trial's params.json, result.json and
train_config.json as `results` reads them, and a checkpoint's reports.jsonl.

Run in this process (tests/clitools.py). So that an accepted input costs nothing,
`train` stops where its model would be built, after every check and before it writes
anything, and `tune` where it would connect to Ray (that is the whole pre-Ray part of
tools/tune.py); `evaluate`, `evalset` (with small sizes) and `results` run for real.
Examples are few and derandomised: the module takes about half a minute on two cores.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.clitools import Outcome, run_command
from support.hostile import billion_laughs, snapshot

# Imported before the stubs stand in for collatz_ray.search.ray (it imports Ray).
from collatz_ray.search.ray.worker import read_reports

OLD_LAYOUT = Path(__file__).resolve().parents[1] / "data" / "old_layout" / "old-layout"
TRIAL = "collatz_trial_3a711499"
#: No accepted or refused input may take longer (the slowest is a real evaluation).
SECONDS = 5

FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

HUGE = "9" * 5000  # past Python's 4300-digit limit for int()
NUMBER_TEXTS = [
    "0",
    "-1",
    "1",
    "2",
    "3",
    "7",
    "12",
    "1e3",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "0x10",
    "1_0",
    "²",
    "",
    " ",
    "abc",
    "3.5",
    "-0",
    str(2**31),
    str(2**32),
    str(2**63),
    HUGE,
    "9" * 4000,
    "1,2",
    "27,-3",
    "a\nb",
]
#: Flag values: half of them plausible, the rest anything.
numbers = st.one_of(
    st.integers(1, 40).map(str), st.one_of(st.sampled_from(NUMBER_TEXTS), st.text(max_size=6))
)

YAML_VALUES = [
    "1",
    "-1",
    "0",
    "1e400",
    HUGE,
    "[1, [2]]",
    "{a: 1}",
    "null",
    "~",
    "2024-13-45",
    "'x'",
    "!!python/object/apply:os.system ['true']",
    "&a [*a]",
    "[" * 40,
    "yes",
    "*nope",
    '"\\x00"',
]


class Accepted(Exception):
    """Raised where a stub stops an accepted command: past its checks, before its work."""


@pytest.fixture(scope="module")
def finished(tmp_path_factory, eval_csv) -> Path:
    """A finished tiny run that commands target; it must come out byte for byte intact."""
    run_dir = tmp_path_factory.mktemp("fuzz") / "run"
    outcome = run_command(
        "train",
        "--smoke",
        "--eval-csv",
        eval_csv,
        "--epochs",
        "20",
        "--eval-interval",
        "10",
        "--quiet",
        "--out",
        run_dir,
    )
    assert outcome.status == 0, outcome.stderr
    return run_dir


@pytest.fixture(scope="module")
def stubs(finished):
    """train stops at build_model, tune where it would start Ray (stand-ins for collatz_ray.search.ray)."""

    def stop(*_args, **_kwargs):
        raise Accepted()

    fake_ray = types.ModuleType("collatz_ray.search.ray")
    fake_ray.cluster = types.SimpleNamespace(connect=stop, shutdown=lambda: None)
    fake_ray.tuner = types.SimpleNamespace()
    fake_session = types.ModuleType("collatz_ray.search.ray.session")
    fake_session.on_ray = stop
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch("collatz_ray.trainer.loop.build_model", stop))
        stack.enter_context(
            mock.patch.dict(
                sys.modules,
                {"collatz_ray.search.ray": fake_ray, "collatz_ray.search.ray.session": fake_session},
            )
        )
        yield


def outcome_of(tool: str, *args: object) -> Outcome | None:
    """The command's outcome, None if a stub stopped it; fails on anything but exit 0 or
    exit 2 with one line, on a traceback, and on a command that takes too long."""
    start = time.monotonic()
    try:
        outcome = run_command(tool, *args)
    except Accepted:
        return None
    finally:
        assert time.monotonic() - start < SECONDS, (tool, [str(a)[:80] for a in args])
    assert "Traceback" not in outcome.stderr, outcome.stderr
    if outcome.status != 0:
        outcome.one_error_line()
    return outcome


# -- files, cut and mangled ------------------------------------------------------------------


@st.composite
def mangled(draw, text: str, *, yaml_values: bool = False) -> bytes:
    """`text` with some of: a value replaced, cut short, an odd byte, another encoding
    (each about one time in three, so that a good share stays accepted)."""

    def sometimes() -> bool:
        return draw(st.integers(0, 2)) == 0

    if yaml_values and sometimes():
        lines = text.splitlines()
        i = draw(st.integers(0, len(lines) - 1))
        if ":" in lines[i]:
            key = lines[i].split(":")[0]
            lines[i] = f"{key}: {draw(st.sampled_from(YAML_VALUES + NUMBER_TEXTS[:12]))}"
        text = "\n".join(lines) + "\n"
    encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "latin-1"])) if sometimes() else "utf-8"
    data = (text + ("# déjà vu\n" if encoding == "latin-1" else "")).encode(encoding)
    if sometimes():
        data = data[: draw(st.integers(0, len(data)))]
    if data and sometimes():
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


CONFIG = yaml.safe_dump(
    {
        "lookahead": 8,
        "layers": [8, 8],
        "epochs": 20,
        "eval_interval": 10,
        "seed": 3,
        "test_seeds": [27, 97],
        "lr": 0.001,
        "batch_size": 64,
        "max_bits": 40,
    },
    sort_keys=False,
)
BANK = "".join(
    json.dumps(
        {
            "n": n,
            "margin": m,
            "source": src,
            "trial": "t1",
            "epoch": 10,
            "sha256": None,
            "time": "2026-11-29T15:01:49Z",
        }
    )
    + "\n"
    for n, m, src in (("1161", -0.02, "mining"), (str(2**90 + 1), None, "verify"), ("97", -0.001, "mining"))
)
SPACE = """description: fuzz
budget: {epochs: 40, eval_interval: 20, grace_epochs: 20, reduction_factor: 2, num_samples: 2}
fixed:
  layers: [8, 8]
  seed: 1
parameters:
  lr: {distribution: log_uniform, min: 0.0001, max: 0.01}
  mine_negatives: {values: [true, false]}
  mine_interval: {values: [10, 20], when: {mine_negatives: true}}
"""


def write(directory: Path, name: str, data: bytes | str) -> Path:
    path = directory / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


@pytest.fixture(scope="module")
def csv_text(eval_csv) -> str:
    return "".join(eval_csv.read_text().splitlines(keepends=True)[:80])


def csv_choice(draw, csv_text: str, directory: Path, good: Path) -> Path:
    """The good evaluation CSV, or (one time in three) a mangled copy of its first rows."""
    if draw(st.integers(0, 2)):
        return good
    return write(directory, "eval.csv", draw(mangled(csv_text)))


def flags(draw, names: list[str]) -> list[str]:
    out = []
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        out += [name, draw(numbers)]
    return out


# -- the commands ------------------------------------------------------------------------------


@FUZZ
@given(data=st.data())
def test_train(stubs, finished, eval_csv, csv_text, data):
    draw = data.draw
    before = snapshot(finished)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        target = draw(st.sampled_from(["new", "new", "finished", "resume"]))
        if target == "resume":  # the flags --resume takes, and now and then one it refuses
            args = ["--resume", finished, *flags(draw, ["--epochs", "--device", "--lr"])]
        else:
            args = flags(
                draw,
                [
                    "--epochs",
                    "--seed",
                    "--test-seeds",
                    "--max-bits",
                    "--lr",
                    "--layers",
                    "--lookahead",
                    "--batch-size",
                    "--eval-interval",
                    "--mine-pool",
                    "--device",
                    "--target-type",
                ],
            )
            if draw(st.booleans()):
                config = draw(
                    st.one_of(mangled(CONFIG, yaml_values=True), st.just(billion_laughs().encode()))
                )
                args += ["--config", write(tmp, "config.yaml", config)]
            if not draw(st.integers(0, 3)):  # a counterexample bank, as written or mangled
                args += ["--hard-seed-bank", write(tmp, "counterexamples.jsonl", draw(mangled(BANK)))]
            args += ["--eval-csv", csv_choice(draw, csv_text, tmp, eval_csv)]
            args += ["--out", tmp / "run" if target == "new" else finished]
        args += draw(
            st.lists(
                st.sampled_from(["--overwrite", "--smoke", "--quiet", "--mine"]), max_size=2, unique=True
            )
        )
        outcome_of("train", *args)
    assert snapshot(finished) == before  # refused or stopped before its first write


@FUZZ
@given(data=st.data())
def test_evaluate(stubs, finished, eval_csv, csv_text, data):
    draw = data.draw
    checkpoint = finished / "checkpoints" / "epoch_00000020"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        target = draw(st.sampled_from(["dir", "state", "model", "mangled", "missing"]))
        path = {
            "dir": checkpoint,
            "state": checkpoint / "state.pt",
            "model": finished / "model.pth",
            "missing": tmp / "absent.pth",
        }.get(target)
        if path is None:
            path = write(
                tmp, "state.pt", draw(mangled((checkpoint / "state.pt").read_bytes().decode("latin-1")))
            )
        args = ["--checkpoint", path, "--eval-csv", csv_choice(draw, csv_text, tmp, eval_csv)]
        if draw(st.integers(0, 2)) == 0:  # shape flags, which mostly do not fit the weights
            args += flags(draw, ["--lookahead", "--layers"])
            args += draw(st.lists(st.sampled_from(["--linear", "--k-only"]), max_size=1))
        elif target == "model":  # the seed format's shape, not the published one
            args += ["--layers", "32,32"]
        if draw(st.booleans()):
            args += [
                "--test-seeds",
                draw(
                    st.sampled_from(["27", "27,97", "111,703", "0", "-3", "", "x", HUGE, str(2**40), "27,²"])
                ),
            ]
        args += ["--json"] if draw(st.booleans()) else []
        outcome = outcome_of("evaluate", *args)
    if outcome is not None and outcome.status == 0 and "--json" in args:
        json.loads(outcome.stdout, parse_constant=lambda name: pytest.fail(f"bare {name}"))


@FUZZ
@given(data=st.data())
def test_evalset(stubs, csv_text, data):
    draw = data.draw
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if draw(st.booleans()):
            args = ["--check", write(tmp, "eval.csv", draw(mangled(csv_text)))]
            args += flags(draw, ["--samples"]) if draw(st.integers(0, 4)) == 0 else []
        else:
            # Sizes that are accepted stay small (a real file is written), the rest are refused.
            samples = draw(
                st.sampled_from(["0", "-1", "1", "5", "40", "1000001", "1" + "0" * 30, "1e3", HUGE, "x"])
            )
            bits = draw(
                st.sampled_from(["-5", "0", "1", "2", "3", "10", "64", "32001", "1" + "0" * 40, HUGE, "x"])
            )
            args = ["--samples", samples, "--max-bits", bits, "--out", tmp / "out.csv"]
            args += ["--seed", draw(numbers)] if draw(st.booleans()) else []
        outcome_of("evalset", *args)


@FUZZ
@given(data=st.data())
def test_tune_before_ray(stubs, eval_csv, csv_text, data):
    draw = data.draw
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        space = draw(st.one_of(mangled(SPACE, yaml_values=True), st.just(billion_laughs().encode())))
        args = ["--space", write(tmp, "space.yaml", space), "--storage", tmp / "store", "--name", "fuzz"]
        args += flags(
            draw,
            ["--num-samples", "--epochs", "--grace-epochs", "--seed", "--cpus-per-trial", "--max-concurrent"],
        )
        if draw(st.booleans()):
            args += ["--eval-csv", csv_choice(draw, csv_text, tmp, eval_csv)]
        args += ["--smoke"] if draw(st.booleans()) else []
        outcome_of("tune", *args)


JSON_VALUES = [None, [], [1], "x", "40", -1, 2**70, 1.5, float("nan"), {"a": 1}, True, "9" * 5000]


@FUZZ
@given(data=st.data())
def test_results(stubs, data):
    draw = data.draw
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Path(shutil.copytree(OLD_LAYOUT, Path(tmp) / "exp"))
        result = experiment / TRIAL / "result.json"
        lines = result.read_text().splitlines()
        if draw(st.booleans()):
            row = json.loads(lines[-1])
            for key in draw(st.lists(st.sampled_from(sorted(row)), min_size=1, max_size=3)):
                row[key] = draw(st.sampled_from(JSON_VALUES))
            lines[-1] = json.dumps(row)
        result.write_bytes(draw(mangled("\n".join(lines) + "\n")))
        fmt = draw(st.sampled_from(["table", "md", "json", "csv"]))
        outcome = outcome_of(
            "results", experiment, "--format", fmt, "--top", draw(st.sampled_from(["1", "20"]))
        )
    if outcome is not None and outcome.status == 0 and fmt == "json":
        json.loads(outcome.stdout, parse_constant=lambda name: pytest.fail(f"bare {name}"))


# -- files from storage: the bank, the search's settings, a trial's files, a checkpoint's reports ---------

#: Lines nobody should have written: nesting past any parser's recursion, a line past
#: every per-line limit, terminal control characters, NUL bytes, numbers JSON cannot hold.
HOSTILE_LINES = [
    "[" * 100_000 + "]" * 100_000,
    '{"n": "27", "margin": ' + "[" * 5000,
    '{"n": "27", "margin": -1, "source": "verify", "trial": "' + "x" * 70_000 + '"}',
    '{"n": "27", "margin": -1, "source": "verify", "trial": "\u001b[2J\u001b]0;t\u0007"}',
    "\x00" * 20,
    '{"epoch": NaN, "loss": Infinity}',
    "{}",
]
STORAGE_FUZZ = settings(FUZZ, max_examples=12)


@st.composite
def hostile(draw, text: str) -> bytes:
    """`text` mangled, and now and then with a hostile line put in among its lines."""
    data = draw(mangled(text))
    if draw(st.booleans()):
        lines = data.split(b"\n")
        at = draw(st.integers(0, len(lines)))
        lines.insert(at, draw(st.sampled_from(HOSTILE_LINES)).encode())
        data = b"\n".join(lines)
    return data


@STORAGE_FUZZ
@given(data=st.data())
def test_the_bank_as_training_and_results_read_it(stubs, data):
    from collatz_ray.errors import UsageError
    from collatz_ray.trainer import bank

    with tempfile.TemporaryDirectory() as tmp:
        experiment = Path(shutil.copytree(OLD_LAYOUT, Path(tmp) / "exp"))
        path = write(experiment, bank.BANK_FILE, data.draw(hostile(BANK)))
        lenient = bank.read_bank(path, strict=False)  # never raises: damage is a note
        assert all("\n" not in note for note in lenient.notes)
        try:
            strict = bank.read_bank(path, strict=True)
        except UsageError as err:
            assert "\n" not in str(err) and len(str(err)) < 1000
        else:
            assert strict.records == lenient.records
        outcome = outcome_of("results", experiment, "--format", data.draw(st.sampled_from(["table", "md"])))
    assert outcome is not None and "\x1b" not in outcome.stdout


@STORAGE_FUZZ
@given(data=st.data())
def test_results_on_hostile_trial_and_search_files(stubs, data):
    draw = data.draw
    with tempfile.TemporaryDirectory() as tmp:
        experiment = Path(shutil.copytree(OLD_LAYOUT, Path(tmp) / "exp"))
        names = [
            "collatz_search.json",
            f"{TRIAL}/params.json",
            f"{TRIAL}/result.json",
            f"{TRIAL}/train_config.json",
        ]
        for name in draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)):
            path = experiment / name
            text = path.read_text()
            if name.endswith("params.json") and draw(st.booleans()):
                text = json.dumps({**json.loads(text), "lr": draw(st.sampled_from(JSON_VALUES))})
            path.write_bytes(draw(hostile(text)))
        fmt = draw(st.sampled_from(["table", "md", "json", "csv"]))
        outcome = outcome_of("results", experiment, "--format", fmt)
    if outcome is not None and outcome.status == 0 and fmt == "json":
        json.loads(outcome.stdout, parse_constant=lambda name: pytest.fail(f"bare {name}"))


@STORAGE_FUZZ
@given(data=st.data())
def test_a_checkpoints_reports_read_back_or_dropped_whole(data):
    reports = [{"epoch": e, "loss": 1.0 / e, "traj_total_violations": e} for e in (10, 20, 30)]
    text = json.dumps({"search_run": "run-1"}) + "\n" + "".join(json.dumps(r) + "\n" for r in reports)
    with tempfile.TemporaryDirectory() as tmp:
        path = write(Path(tmp), "reports.jsonl", data.draw(hostile(text)))
        made_by, got = read_reports(path)
    assert (made_by, got) == ("run-1", reports) or all(isinstance(r, dict) for r in got)
    assert made_by is None or isinstance(made_by, str)


# -- a finished run survives refused commands ------------------------------------------------------


def test_refused_commands_leave_a_finished_run_byte_identical(finished, eval_csv, tmp_path):
    before = snapshot(finished)
    checkpoint = finished / "checkpoints" / "epoch_00000020"
    bomb = write(tmp_path, "bomb.yaml", billion_laughs())
    refused = [
        ("train", "--smoke", "--eval-csv", eval_csv, "--out", finished),
        ("train", "--resume", finished, "--lr", "0.5"),
        ("train", "--resume", finished, "--overwrite"),
        ("train", "--resume", finished, "--epochs", "5"),
        ("train", "--out", finished, "--overwrite", "--config", bomb),
        ("train", "--out", finished, "--overwrite", "--eval-csv", tmp_path / "absent.csv"),
        ("train", "--out", finished, "--overwrite", "--seed", "-1"),
        ("evaluate", "--checkpoint", checkpoint, "--lookahead", "3"),
        ("evalset", "--samples", "0", "--out", finished / "metrics.jsonl"),
        ("results", finished),
    ]
    for command in refused:
        outcome = run_command(*command)
        outcome.one_error_line()
        assert snapshot(finished) == before, command
