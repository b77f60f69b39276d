"""The command-line tools `python -m collatz_ray.train`, `.evaluate` and `.evalset`: real
runs in real processes, and bad input (in this process, through main) that must end with
status 2 and exactly one line on stderr, never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from support.clitools import run_command
from support.runs import read_metrics

from collatz_ray.trainer.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    # The working tree under test, and the session's cache (set in conftest), never ~/.cache.
    assert os.environ.get("COLLATZ_RAY_CACHE")
    return {**os.environ, "PYTHONPATH": str(REPO)}


def cli(tool: str, *args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"collatz_ray.{tool}", *map(str, args)],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_usage_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip("\n").splitlines()
    assert len(lines) == 1, proc.stderr
    assert "error" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, eval_csv) -> Path:
    """One `train --smoke` run shared by the checks that only read it."""
    root = tmp_path_factory.mktemp("smoke")
    run_dir = root / "run"
    proc = cli("train", "--smoke", "--eval-csv", eval_csv, "--out", run_dir, "--quiet", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""  # --quiet, and no warnings
    return run_dir


# -- train ----------------------------------------------------------------------------------


def test_smoke_run_writes_the_run_directory(smoke_run, eval_csv):
    assert sorted(p.name for p in smoke_run.iterdir()) == [
        "checkpoints",
        "config.yaml",
        "metrics.jsonl",
        "model.pth",
    ]
    config = TrainConfig.from_yaml(smoke_run / "config.yaml")
    assert config.layers == (32, 32) and config.epochs == 300 and config.batch_size == 256
    assert config.eval_csv == str(eval_csv)
    rows = read_metrics(smoke_run)
    assert [m["epoch"] for m in rows] == [100, 200, 300]
    assert rows[-1]["traj_total_steps"] == 429 and rows[-1]["n_total"] == 500
    ckpts = sorted(p.name for p in (smoke_run / "checkpoints").iterdir())
    assert ckpts == ["epoch_00000200", "epoch_00000300"]
    for name in ckpts:
        assert (smoke_run / "checkpoints" / name / "state.pt").is_file()
        assert (smoke_run / "checkpoints" / name / "model.pth").is_file()
    weights = torch.load(smoke_run / "model.pth", weights_only=True)
    assert list(weights)[:3] == ["drift_param", "net.0.weight", "net.0.bias"]
    assert tuple(weights["net.0.weight"].shape) == (32, 16)


def test_config_file_then_flags_take_precedence(tmp_path, eval_csv):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "lookahead": 12,
                "epochs": 20,
                "eval_interval": 10,
                "layers": [8],
                "batch_size": 64,
                "target_type": "adaptive",
            }
        )
    )
    out = tmp_path / "run"
    proc = cli(
        "train",
        "--smoke",
        "--config",
        cfg,
        "--lookahead",
        "7",
        "--epochs",
        "10",
        "--eval-csv",
        eval_csv,
        "--out",
        out,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    config = TrainConfig.from_yaml(out / "config.yaml")
    assert config.lookahead == 7 and config.epochs == 10  # flags beat the file
    assert (
        config.layers == (8,) and config.batch_size == 64 and config.eval_interval == 10
    )  # file beats --smoke
    assert config.target_type == "adaptive"
    assert config.decay_start == 50 and config.mine_pool == 512  # --smoke beats the defaults
    assert config.lr == 1e-3  # the method's default beneath them all
    assert [m["epoch"] for m in read_metrics(out)] == [10]
    # without --quiet: the log header, one line per evaluation and where the run went
    assert "Epoch" in proc.stdout and "Traj Viol" in proc.stdout and f"run directory: {out}" in proc.stdout


def test_resume_continues_a_run(tmp_path, eval_csv):
    run = tmp_path / "run"
    proc = cli(
        "train",
        "--smoke",
        "--eval-csv",
        eval_csv,
        "--eval-interval",
        "50",
        "--mine-interval",
        "30",
        "--mine",
        "--quiet",
        "--epochs",
        "100",
        "--out",
        run,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    before = read_metrics(run)
    proc = cli("train", "--resume", run, "--epochs", "150", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    after = read_metrics(run)
    assert [m["epoch"] for m in after] == [50, 100, 150]
    assert after[:2] == before  # the earlier evaluations are kept as they were
    assert after[-1]["mined"] > 0  # the resumed run kept the checkpoint's settings (mining on)
    config = TrainConfig.from_yaml(run / "config.yaml")
    assert config.epochs == 150 and config.mine_negatives and config.layers == (32, 32)
    assert (run / "checkpoints" / "epoch_00000150").is_dir()


def test_resume_without_epochs_finishes_the_run_as_configured(tmp_path, eval_csv):
    run = tmp_path / "run"
    proc = cli(
        "train",
        "--smoke",
        "--eval-csv",
        eval_csv,
        "--epochs",
        "100",
        "--eval-interval",
        "50",
        "--out",
        run,
        "--quiet",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    shutil.rmtree(run / "checkpoints" / "epoch_00000100")  # interrupted before its last checkpoint
    child = subprocess.Popen(
        [sys.executable, "-m", "collatz_ray.train", "--resume", str(run), "--quiet"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while child.poll() is None and time.monotonic() < deadline:
            if max(m["epoch"] for m in read_metrics(run)) > 100:
                break  # it went past the run's own budget: no need to wait any longer
            time.sleep(0.2)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stderr.close()
    assert [m["epoch"] for m in read_metrics(run)] == [50, 100]
    assert child.returncode == 0


def test_divergence_exits_1_with_one_line(tmp_path, eval_csv):
    proc = cli(
        "train",
        "--smoke",
        "--eval-csv",
        eval_csv,
        "--lr",
        "1e30",
        "--eval-interval",
        "1",
        "--epochs",
        "5",
        "--out",
        tmp_path / "run",
        "--quiet",
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    # lr 1e30 overflows V within the first epoch: nothing good was ever checkpointed.
    assert len(lines) == 1 and "epoch 1" in lines[0] and "no checkpoint was written yet" in lines[0]


# -- evaluate --------------------------------------------------------------------------------


def _metric_view(metrics: dict) -> dict:
    return {
        k: v
        for k, v in metrics.items()
        if k.startswith(("traj_", "pass", "weighted", "growth", "margin", "n_"))
    }


def test_evaluate_a_checkpoint_directory_as_json(smoke_run, tmp_path):
    ckpt = smoke_run / "checkpoints" / "epoch_00000300"
    proc = cli("evaluate", "--checkpoint", ckpt, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    got = json.loads(lines[0])
    assert isinstance(got, dict)
    assert got["checkpoint"] == str(ckpt) and got["checkpoint_epoch"] == 300
    assert _metric_view(got) == _metric_view(read_metrics(smoke_run)[-1])  # same numbers as the trainer's


def test_evaluate_a_seed_format_model_with_matching_flags(smoke_run, tmp_path, eval_csv):
    expected = _metric_view(read_metrics(smoke_run)[-1])
    proc = cli(
        "evaluate",
        "--checkpoint",
        smoke_run / "model.pth",
        "--layers",
        "32,32",
        "--lookahead",
        "10",
        "--eval-csv",
        eval_csv,
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["checkpoint"] == str(smoke_run / "model.pth") and got["checkpoint_epoch"] is None
    assert _metric_view(got) == expected
    report = cli(
        "evaluate",
        "--checkpoint",
        smoke_run / "model.pth",
        "--layers",
        "32,32",
        "--eval-csv",
        eval_csv,
        cwd=tmp_path,
    )
    assert report.returncode == 0, report.stderr
    assert "total" in report.stdout and " 429" in report.stdout and "626331" in report.stdout
    assert report.stdout.splitlines()[0] == (
        f"checkpoint {smoke_run / 'model.pth'}: seed format, no epoch "
        "recorded; shape from the flags: lookahead 10, layers 32,32"
    )
    with pytest.raises(json.JSONDecodeError):
        json.loads(report.stdout)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, eval_csv) -> Path:
    """A run of a shape other than the defaults (8 wide, lookahead 12), made by `train`."""
    run_dir = tmp_path_factory.mktemp("tiny") / "run7"
    outcome = run_command(
        "train",
        "--smoke",
        "--layers",
        "8",
        "--lookahead",
        "12",
        "--epochs",
        "20",
        "--eval-csv",
        eval_csv,
        "--out",
        run_dir,
        "--quiet",
    )
    assert outcome.status == 0, outcome.stderr
    return run_dir


def test_evaluate_a_run_directory_without_shape_flags(tiny_run, eval_csv):
    # The run's newest checkpoint, read with the run's own config: no --layers, no --lookahead.
    newest = tiny_run / "checkpoints" / "epoch_00000020"
    report = run_command("evaluate", "--checkpoint", tiny_run)
    assert report.status == 0, report.stderr
    first, *rest = report.stdout.splitlines()
    assert first == (
        f"checkpoint {newest}: epoch 20, the newest of run {tiny_run}; "
        "its saved config: lookahead 12, layers 8"
    )
    assert rest[0].split() == ["seed", "violations", "steps", "worst", "margin"]
    as_json = run_command("evaluate", "--checkpoint", tiny_run, "--json")
    assert as_json.status == 0, as_json.stderr
    got = json.loads(as_json.stdout)
    assert got["checkpoint"] == str(newest) and got["checkpoint_epoch"] == 20
    assert _metric_view(got) == _metric_view(read_metrics(tiny_run)[-1])
    # Flags still override the saved config: other held-out seeds, and a shape that cannot fit.
    fewer = json.loads(
        run_command("evaluate", "--checkpoint", tiny_run, "--test-seeds", "27", "--json").stdout
    )
    assert fewer["traj_total_steps"] == 41
    run_command("evaluate", "--checkpoint", tiny_run, "--lookahead", "10").one_error_line("net.0.weight")
    # The run's model.pth alone is seed format: it still needs the shape flags.
    run_command("evaluate", "--checkpoint", tiny_run / "model.pth", "--eval-csv", eval_csv).one_error_line(
        "model.pth"
    )
    seed = run_command(
        "evaluate",
        "--checkpoint",
        tiny_run / "model.pth",
        "--layers",
        "8",
        "--lookahead",
        "12",
        "--eval-csv",
        eval_csv,
        "--json",
    )
    assert _metric_view(json.loads(seed.stdout)) == _metric_view(got)


def test_evaluate_a_run_without_a_finished_checkpoint_is_one_line(tmp_path):
    (tmp_path / "run" / "checkpoints" / ".partial_00000100").mkdir(parents=True)
    (tmp_path / "run" / "config.yaml").write_text("lookahead: 12\n")
    run_command("evaluate", "--checkpoint", tmp_path / "run").one_error_line("no finished checkpoint")


def test_resume_says_where_it_continues_and_prints_the_header_once(tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run7"))
    before = (run / "metrics.jsonl").read_text()
    # At its own budget: one line, exit 0, nothing rewritten.
    at_budget = run_command("train", "--resume", run)
    assert at_budget.status == 0 and at_budget.stderr == ""
    assert at_budget.stdout == (
        f"run {run} is already at epoch 20 of 20: nothing to train; --epochs N (more than 20) continues it\n"
    )
    assert (run / "metrics.jsonl").read_text() == before
    assert run_command("train", "--resume", run, "--quiet").stdout == ""
    # Extended: where it starts, the log's header once, the new evaluation, the directory.
    longer = run_command("train", "--resume", run, "--epochs", "30")
    assert longer.status == 0, longer.stderr
    lines = longer.stdout.splitlines()
    assert lines[0] == f"resuming run {run} at epoch 20 of 30 on cpu"
    assert lines[1].split("|")[0].strip() == "Epoch" and longer.stdout.count("Traj Viol") == 1
    assert [line.split("|")[0].strip() for line in lines[2:-1]] == ["30"]
    assert lines[-1] == f"run directory: {run}"
    # Interrupted before its next checkpoint: a plain --resume goes on to the 30 epochs
    # config.yaml now records, and says they are the run's own.
    shutil.rmtree(run / "checkpoints" / "epoch_00000030")
    again = run_command("train", "--resume", run)
    assert again.status == 0, again.stderr
    assert again.stdout.splitlines()[0] == (
        f"resuming run {run} at epoch 20 of 30 (the run's own epochs; --epochs N for more) on cpu"
    )
    assert [m["epoch"] for m in read_metrics(run)] == [20, 30]


def _resumed(run: Path, *flags: str) -> TrainConfig:
    from collatz_ray import train as train_command
    from collatz_ray.trainer.checkpoints import latest_checkpoint, load_checkpoint

    args = train_command.parser().parse_args(["--resume", str(run), *flags])
    newest = latest_checkpoint(run)
    return train_command.resumed_config(args, load_checkpoint(newest), run, newest)


def test_resume_takes_its_device_from_the_flag_then_config_yaml_then_the_checkpoint(tiny_run, tmp_path):
    run = Path(shutil.copytree(tiny_run, tmp_path / "run"))
    assert _resumed(run).device == "auto"  # config.yaml and checkpoint agree: auto
    config_yaml = run / "config.yaml"
    text = config_yaml.read_text()
    config_yaml.write_text(text.replace("device: auto", "device: cpu"))
    assert _resumed(run).device == "cpu"  # config.yaml, edited, moves the run
    assert _resumed(run, "--device", "auto").device == "auto"  # the flag beats config.yaml
    config_yaml.unlink()
    assert _resumed(run).device == "auto" and _resumed(run).epochs == 20  # the checkpoint's


def test_evaluate_a_checkpoint_from_the_original_experiment(tmp_path, eval_csv):
    # The seed format written by hand, with the published stack's key names.
    torch.manual_seed(0)
    state = {"drift_param": torch.tensor(0.35)}
    widths = [6 + 20, 12, 6, 1]
    for i, (a, b) in enumerate(zip(widths, widths[1:])):
        layer = torch.nn.Linear(a, b)
        state[f"net.{2 * i}.weight"] = layer.weight.detach().clone()
        state[f"net.{2 * i}.bias"] = layer.bias.detach().clone()
    torch.save(state, tmp_path / "model.pth")
    proc = cli(
        "evaluate",
        "--checkpoint",
        tmp_path / "model.pth",
        "--layers",
        "12,6",
        "--lookahead",
        "20",
        "--eval-csv",
        eval_csv,
        "--json",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["traj_total_steps"] == 429 and got["n_total"] == 500


# -- bad input: status 2, one line --------------------------------------------------------------


def _bad_csvs(eval_csv: Path, root: Path) -> None:
    lines = eval_csv.read_text().splitlines()
    header, first = lines[0], lines[1].split(",")
    drop_t1 = [",".join(row.split(",")[:1] + row.split(",")[2:]) for row in lines]
    wrong_t1 = first.copy()
    wrong_t1[1] = str(int(first[1]) + 2)
    texts = {
        "missing-column": drop_t1,
        "non-integer-n": [header, ",".join(["12x"] + first[1:])] + lines[2:],
        "t1-not-T": [header, ",".join(wrong_t1)] + lines[2:],
    }
    for name, rows in texts.items():
        (root / f"{name}.csv").write_text("\n".join(rows) + "\n")


BAD_YAML = {
    "malformed.yaml": "lookahead: [1, 2\nepochs: 3\n",
    "unknown-key.yaml": "lookahead: 12\nbogus_key: 1\n",
    "not-a-mapping.yaml": "- 1\n- 2\n",
    "bad-value.yaml": "lookahead: twelve\n",
}

SMOKE_TRAIN = ["--smoke", "--eval-csv", "{csv}", "--out", "{root}/run_{case}"]
CKPT = "{smoke}/checkpoints/epoch_00000300"

#: case -> (tool, arguments, fragments the one stderr line must contain)
USAGE_ERRORS: dict[str, tuple[str, list[str], list[str]]] = {
    "train-lookahead-0": ("train", SMOKE_TRAIN + ["--lookahead", "0"], ["lookahead"]),
    "train-empty-layers": ("train", SMOKE_TRAIN + ["--layers", ""], ["layers"]),
    "train-target-type": ("train", SMOKE_TRAIN + ["--target-type", "bogus"], ["target_type", "bogus"]),
    "train-unknown-flag": ("train", SMOKE_TRAIN + ["--no-such-flag"], ["--no-such-flag"]),
    "train-non-integer": ("train", SMOKE_TRAIN + ["--epochs", "many"], ["epochs"]),
    "train-yaml-malformed": (
        "train",
        SMOKE_TRAIN + ["--config", "{root}/malformed.yaml"],
        ["malformed.yaml", "not valid YAML"],
    ),
    "train-yaml-unknown-key": (
        "train",
        SMOKE_TRAIN + ["--config", "{root}/unknown-key.yaml"],
        ["unknown-key.yaml", "bogus_key"],
    ),
    "train-yaml-not-a-mapping": (
        "train",
        SMOKE_TRAIN + ["--config", "{root}/not-a-mapping.yaml"],
        ["not-a-mapping.yaml", "mapping"],
    ),
    "train-yaml-bad-value": (
        "train",
        SMOKE_TRAIN + ["--config", "{root}/bad-value.yaml"],
        ["bad-value.yaml", "lookahead"],
    ),
    "train-yaml-missing": ("train", SMOKE_TRAIN + ["--config", "{root}/nope.yaml"], ["nope.yaml"]),
    "train-csv-missing-column": (
        "train",
        ["--smoke", "--eval-csv", "{root}/missing-column.csv", "--out", "{root}/run_{case}"],
        ["missing-column.csv", "missing column"],
    ),
    "train-csv-non-integer-n": (
        "train",
        ["--smoke", "--eval-csv", "{root}/non-integer-n.csv", "--out", "{root}/run_{case}"],
        ["non-integer-n.csv", "line 2", "integer"],
    ),
    "train-csv-t1-not-T": (
        "train",
        ["--smoke", "--eval-csv", "{root}/t1-not-T.csv", "--out", "{root}/run_{case}"],
        ["t1-not-T.csv", "line 2", "T(n)"],
    ),
    "train-csv-missing-file": (
        "train",
        ["--smoke", "--eval-csv", "{root}/absent.csv", "--out", "{root}/run_{case}"],
        ["absent.csv"],
    ),
    "train-resume-no-checkpoint": ("train", ["--resume", "{root}/no_ckpt_run"], ["no checkpoint"]),
    "train-resume-missing-dir": ("train", ["--resume", "{root}/absent_run"], ["absent_run"]),
    "evaluate-csv-missing-column": (
        "evaluate",
        ["--checkpoint", CKPT, "--eval-csv", "{root}/missing-column.csv"],
        ["missing-column.csv", "missing column"],
    ),
    "evaluate-missing-checkpoint": ("evaluate", ["--checkpoint", "{root}/nothing.pth"], ["nothing.pth"]),
    "evaluate-empty-dir": ("evaluate", ["--checkpoint", "{root}/empty_dir"], ["empty_dir"]),
    "evaluate-not-a-checkpoint": ("evaluate", ["--checkpoint", "{root}/junk.pth"], ["junk.pth"]),
    "evaluate-no-checkpoint-flag": ("evaluate", [], ["--checkpoint"]),
    # seed format read with the default (published) stack, and checkpoints against flags
    "evaluate-shape-default-stack": (
        "evaluate",
        ["--checkpoint", "{smoke}/model.pth", "--eval-csv", "{csv}"],
        ["--checkpoint", "model.pth"],
    ),
    "evaluate-shape-lookahead": (
        "evaluate",
        ["--checkpoint", CKPT, "--lookahead", "20"],
        ["--checkpoint", "net.0.weight"],
    ),
    "evaluate-shape-linear": ("evaluate", ["--checkpoint", CKPT, "--linear"], ["--checkpoint"]),
    "evalset-zero-samples": ("evalset", ["--samples", "0", "--out", "{root}/zero.csv"], ["samples"]),
}


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, eval_csv) -> Path:
    """The bad files the cases name: CSVs, YAML configs, a junk .pth, empty run dirs."""
    root = tmp_path_factory.mktemp("usage_errors")
    _bad_csvs(eval_csv, root)
    for name, text in BAD_YAML.items():
        (root / name).write_text(text)
    (root / "junk.pth").write_bytes(b"not a torch file at all")
    (root / "empty_dir").mkdir()
    (root / "no_ckpt_run").mkdir()
    (root / "no_ckpt_run" / "config.yaml").write_text("lookahead: 10\n")
    return root


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_bad_input_exits_2_with_one_line(bad_files, smoke_run, eval_csv, case):
    tool, args, fragments = USAGE_ERRORS[case]
    filled = [a.format(csv=eval_csv, root=bad_files, smoke=smoke_run, case=case) for a in args]
    outcome = run_command(tool, *filled)
    line = outcome.one_error_line(*fragments)
    assert line.startswith(f"collatz_ray.{tool}: error: ")
    assert outcome.stdout == ""
    assert not (bad_files / f"run_{case}" / "metrics.jsonl").exists()


def test_empty_layers_are_fine_with_linear(tmp_path, eval_csv):
    proc = cli(
        "train",
        "--smoke",
        "--eval-csv",
        eval_csv,
        "--out",
        tmp_path / "run",
        "--layers",
        "",
        "--linear",
        "--epochs",
        "5",
        "--quiet",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    weights = torch.load(tmp_path / "run" / "model.pth", weights_only=True)
    assert sorted(weights) == ["drift_param", "net.0.bias", "net.0.weight"]


# -- evalset ---------------------------------------------------------------------------------


def test_evalset_cli_makes_a_file_the_trainer_accepts(tmp_path):
    out = tmp_path / "mine.csv"
    proc = cli("evalset", "--samples", "60", "--seed", "3", "--max-bits", "40", "--out", out, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    check = cli("evalset", "--check", out, cwd=tmp_path)
    assert check.returncode == 0 and "60 rows OK" in check.stdout
    run = tmp_path / "run"
    proc = cli("train", "--smoke", "--eval-csv", out, "--epochs", "5", "--out", run, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_metrics(run)[-1]["n_total"] == 60
