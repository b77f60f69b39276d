"""Every command the README and docs/*.md show works as written.

The command lines of every shell code block (4-space indented blocks, and fenced blocks
in bash/sh/shell/console or no language) are extracted; a line continued with `\\` or
an open quote is one command, `&&` and `;` separate commands, and what follows a `|`
(`| jq ...`) is left off. Then each command is either

- run: `python -m collatz_ray.<tool> ...`, in this process through `main([...])`, in a
  fresh working directory where the docs' placeholders (DIR, results/A, model.pth, ...)
  are real fixtures, shrunk to a test's size (SHRINK below says how, per tool), and it
  must exit 0 (or the status the docs give it, DOCUMENTED_STATUS); or
- exempt, by a rule of NOT_RUN_HERE that says why (a cloud, a cluster, an installer).

A new command line in the docs that no rule covers fails
`test_every_command_line_is_run_or_exempt`: add a fixture or a rule. Python blocks are
executed; fenced blocks in other languages (text, yaml) are not commands.

Nothing here starts Ray: the README's first command is the session's `smoke_experiment`
(tests/conftest.py), and every other search (or replication) is a `--dry-run`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml
from support.clitools import run_command

from collatz_ray.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SHELL_LANGS = {"", "bash", "sh", "shell", "console"}
#: Fenced blocks in these languages show no command.
NOT_COMMAND_LANGS = {"text": "output, file trees and formulas shown, not typed", "yaml": "file contents"}


# -- extraction -------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Block:
    where: str  # file:line of the block's first line
    lang: str  # "" for an indented block
    lines: tuple[tuple[int, str], ...]  # (line number, text without the indentation)


def code_blocks(path: Path) -> list[Block]:
    """Fenced blocks, and indented blocks that start after a blank line (an indented line
    right under a list item continues the item, as in Markdown)."""
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    blocks: list[Block] = []
    fence: tuple[str, str, int] | None = None  # (marker, lang, first line)
    body: list[tuple[int, str]] = []
    indented: list[tuple[int, str]] = []
    previous_blank = True
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if fence is not None:
            if line.strip().startswith(fence[0]):
                blocks.append(Block(f"{name}:{fence[2]}", fence[1], tuple(body)))
                fence, body, previous_blank = None, [], False
            else:
                body.append((number, line))
            continue
        opening = re.match(r"\s*(```|~~~)\s*([\w+-]*)", line)
        if opening:
            if indented:
                blocks.append(Block(f"{name}:{indented[0][0]}", "", tuple(indented)))
                indented = []
            fence = (opening.group(1), opening.group(2).lower(), number + 1)
            continue
        if line.startswith("    ") and line.strip() and (indented or previous_blank):
            indented.append((number, line[4:]))
        elif line.strip() and indented:
            blocks.append(Block(f"{name}:{indented[0][0]}", "", tuple(indented)))
            indented = []
        previous_blank = not line.strip()
    if indented:
        blocks.append(Block(f"{name}:{indented[0][0]}", "", tuple(indented)))
    return blocks


@dataclasses.dataclass(frozen=True)
class Command:
    where: str  # file:line
    text: str  # the command as the docs write it (one segment of a logical line)
    piped_into: str  # what followed `|`, left off


def _split_top_level(text: str) -> tuple[list[tuple[str, str]], bool]:
    """([(separator before it, segment)], unterminated quote) for one logical line, with
    its comment removed. Quotes and $(...) are respected."""
    segments, current, quote, depth, i = [], "", None, 0, 0
    separator = ""
    while i < len(text):
        ch = text[i]
        if quote:
            current += ch
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                current += text[i + 1]
                i += 1
            elif ch == quote:
                quote = None
        elif ch in "'\"":
            quote, current = ch, current + ch
        elif text.startswith("$(", i):
            depth, current, i = depth + 1, current + "$(", i + 1
        elif ch == ")" and depth:
            depth, current = depth - 1, current + ch
        elif depth:
            current += ch
        elif ch == "#" and (not current or current[-1].isspace()):
            break
        elif text.startswith(("&&", "||"), i):
            segments.append((separator, current))
            separator, current, i = text[i : i + 2], "", i + 1
        elif ch in ";|":
            segments.append((separator, current))
            separator, current = ch, ""
        else:
            current += ch
        i += 1
    segments.append((separator, current))
    return [(sep, seg.strip()) for sep, seg in segments if seg.strip()], quote is not None


def commands(block: Block) -> list[Command]:
    out: list[Command] = []
    pending, start = "", 0
    for number, raw in block.lines:
        if not pending:
            start = number
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        pending += raw
        segments, open_quote = _split_top_level(pending)
        if open_quote:
            pending += "\n"
            continue
        where = f"{block.where.split(':')[0]}:{start}"
        kept: list[list] = []
        for separator, segment in segments:
            if separator == "|" and kept:
                kept[-1][1] = (kept[-1][1] + " | " + segment).strip(" |")
            else:
                kept.append([segment, ""])
        out += [Command(where, text, piped) for text, piped in kept]
        pending = ""
    assert not pending, f"{block.where}: a command continues past the end of its block"
    return out


def all_blocks() -> list[Block]:
    return [block for path in DOCS for block in code_blocks(path)]


def all_commands() -> list[Command]:
    return [c for block in all_blocks() if block.lang in SHELL_LANGS for c in commands(block)]


# -- what is not run here, and why --------------------------------------------------------------
#: (rule, reason): a rule is the command's first words, or a regular expression (re:...).
NOT_RUN_HERE: list[tuple[str, str]] = [
    ("python3 -m venv", "the README's install line: CI (.ci/run) and the session's installed_python run it"),
    (". .venv/bin/activate", "activates the venv the tests already run in"),
    ("pip install", "installing: CI does it; tests never download"),
    ("python -m pytest", "the test suite itself (.ci/run)"),
    ("ray up", "starts a cloud cluster"),
    ("ray exec", "runs on a cloud cluster"),
    ("ray down", "stops a cloud cluster"),
    ("ray rsync-down", "copies from a cloud cluster"),
    ("ray dashboard", "tunnels to a cloud cluster"),
    ("ray attach", "opens a shell on a cloud cluster"),
    (
        "optuna-dashboard",
        "a server that runs until stopped: tests/e2e/test_study_db.py starts it against a "
        "running search and reads its API",
    ),
    ("ray start", "starts a Ray node (tests/e2e/test_cluster.py does, under its own control)"),
    ("ray get-auth-token", "writes ~/.ray/auth_token, the user's own token"),
    ("ray job", "submits to or reads a running Ray cluster"),
    ("aws", "needs AWS credentials (JSON policy text included)"),
    ("kubectl", "needs a Kubernetes cluster"),
    ("docker", "needs a Docker daemon and registry"),
    ("eksctl", "needs an EKS cluster"),
    ("ssh", "needs a remote machine"),
    # A whole line that only sets a variable (not `VAR=1 python -m ...`, a command).
    (
        "re:^(export\\s+)?[A-Za-z_][A-Za-z0-9_]*=(\\$\\(.*\\)|\"[^\"]*\"|'[^']*'|\\S*)$",
        "a shell variable for the cloud commands after it",
    ),
    ("chmod 600 ~/.ray/auth_token", "the user's own token file"),
    ("echo", "prints a value the user pastes into a cluster config"),
    ("sed -i", "fills the user's own values into cluster/k8s/*.yaml"),
    ("grep -n REPLACE_ME", "checks the user's filled-in cluster/k8s/*.yaml"),
    (
        "tensorboard --logdir",
        "a web server: tests/e2e/test_trackers.py runs docs/trackers.md's line on "
        "the smoke search and reads the epochs it serves",
    ),
    (
        "mlflow ui",
        "MLflow's web server (the full mlflow package); tests/e2e/test_trackers.py reads "
        "the same store with MLflow's client",
    ),
    ("wandb sync", "uploads to W&B's servers; tests/e2e/test_trackers.py reads the offline runs"),
]


#: `VAR=value ` before a command: set for that command alone.
_ASSIGNMENT = r"[A-Za-z_][A-Za-z0-9_]*=\S*"


def exemption(command: Command) -> str | None:
    """Why `command` is not run here, or None. Variables set for one command
    (`RAY_AUTH_MODE=token ray start ...`) do not hide the command from the rules."""
    words = command.text.split()
    while len(words) > 1 and re.fullmatch(_ASSIGNMENT, words[0]):
        words = words[1:]
    for rule, reason in NOT_RUN_HERE:
        if rule.startswith("re:"):
            if re.match(rule[3:], command.text):
                return reason
        elif words[: len(rule.split())] == rule.split():
            return reason
    return None


def tool_of(command: Command) -> str | None:
    found = re.match(rf"(?:{_ASSIGNMENT}\s+)*python -m collatz_ray\.(\w+)\b", command.text)
    return found.group(1) if found else None


def split_assignments(words: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """({VAR: value} set for the command, the command's words)."""
    env, words = {}, list(words)
    while words and re.fullmatch(_ASSIGNMENT, words[0]):
        key, value = words.pop(0).split("=", 1)
        env[key] = value
    return env, words


# -- placeholders --------------------------------------------------------------------------------
#: Text the docs use for a name the user picks, replaced before the line is split.
TEXT_SUBSTITUTIONS = {
    "<experiment name>": "an-experiment",
    "s3://bucket/collatz": "storage",
    "s3://BUCKET/collatz-ray": "storage",
}
#: Paths in the docs (a whole argument, or the start of one: DIR/config.yaml) and the
#: fixture made there in the command's working directory. A value of --out or
#: --export-best is where the command writes, never a fixture.
PLACEHOLDERS = {
    "DIR": "export",
    "results/runs/run7": "run",
    "results/A": "experiment",
    "results/B": "experiment",
    "results/lookahead-20261125-101500": "experiment",
    "results/cluster/an-experiment": "experiment",
    "results/k8s/an-experiment": "experiment",
    "results/model-size-small": "experiment",
    "results/model-size-small-seeds": "experiment",
    "results/model-size-small-bank": "experiment",
    "my.yaml": "train_config",
    "my_space.yaml": "space",
    "model.pth": "seed_model",
}
OUTPUT_FLAGS = {"--out", "--export-best"}
#: Commands the docs show failing on purpose: command text -> exit status.
DOCUMENTED_STATUS: dict[str, int] = {}
#: The README's first command, as tests/conftest.py's smoke_experiment runs it.
SMOKE_SEARCH = ["--space", "lookahead", "--smoke"]
#: Epochs a resumed fixture trains past its checkpoint.
RESUME_EPOCHS = 20


class Fixtures:
    """The fixtures placeholders become, each made on first use: the experiment (and the
    export of its best trial) only for the commands that name one, so the others run
    without the session's smoke search."""

    def __init__(self, request, root: Path) -> None:
        self.request, self.root = request, root
        self.eval_csv: Path = request.getfixturevalue("eval_csv")
        self._made: dict[str, Path] = {}

    @property
    def experiment(self) -> Path:
        if "experiment" not in self._made:
            smoke = self.request.getfixturevalue("smoke_experiment")
            self._made["experiment"] = Path(shutil.copytree(smoke, self.root / "experiment"))
        return self._made["experiment"]

    @property
    def export(self) -> Path:
        if "export" not in self._made:
            export = self.root / "export"
            outcome = run_command("results", self.experiment, "--export-best", export)
            assert outcome.status == 0, outcome.stderr
            self._made["export"] = export
        return self._made["export"]

    @property
    def run(self) -> Path:
        """A tiny run made by `train`: 8 wide, lookahead 12, 20 epochs."""
        if "run" not in self._made:
            run = self.root / "run7"
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
                self.eval_csv,
                "--out",
                run,
                "--quiet",
            )
            assert outcome.status == 0, outcome.stderr
            self._made["run"] = run
        return self._made["run"]

    def make(self, kind: str, at: Path, args: list[str], tool: str = "evaluate") -> None:
        at.parent.mkdir(parents=True, exist_ok=True)
        if kind in ("export", "run", "experiment"):
            shutil.copytree(getattr(self, kind), at)
        elif kind == "train_config":
            at.write_text(yaml.safe_dump({"lookahead": 12, "layers": [8], "target_type": "adaptive"}))
        elif kind == "space":
            shutil.copy(REPO / "search_spaces" / "lookahead.yaml", at)
        elif kind == "seed_model":
            seed_model_of_the_documented_shape(tool, args, at)
        else:
            raise AssertionError(kind)


def seed_model_of_the_documented_shape(tool: str, args: list[str], at: Path) -> None:
    """A seed-format model.pth of the shape the line's own flags give (evaluate, verify)."""
    import importlib

    import torch

    from collatz_ray.trainer.checkpoints import seed_format
    from collatz_ray.trainer.config import TrainConfig, flag_overrides
    from collatz_ray.trainer.model import build_model

    parsed = importlib.import_module(f"collatz_ray.{tool}").parser().parse_args(args)
    torch.manual_seed(0)
    torch.save(seed_format(build_model(TrainConfig.from_dict(flag_overrides(parsed)))), at)


def prepare(tool: str, args: list[str], fixtures: Fixtures, cwd: Path) -> list[str]:
    """Make the fixtures the arguments name in `cwd`, then shrink the command (SHRINK)."""
    made: set[str] = set()
    for before, arg in zip(["", *args], args):
        if before in OUTPUT_FLAGS:
            continue
        for key, kind in PLACEHOLDERS.items():
            if (arg == key or arg.startswith(key + "/")) and key not in made:
                made.add(key)
                fixtures.make(kind, cwd / key, args, tool)
        if before == "--checkpoint" and arg.endswith("/model.pth"):
            seed_model_of_the_documented_shape(tool, args, cwd / arg)  # DIR/model.pth: of the shape shown
    return SHRINK[tool](args, fixtures, cwd)


def _value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _shrink_train(args, fixtures, cwd):
    resumed = _value(args, "--resume")
    if resumed is None:  # a new run: the smoke model, 20 epochs, the small evaluation set
        return [*args, "--smoke", "--epochs", "20", "--eval-csv", str(fixtures.eval_csv)]
    if "--epochs" in args:  # continue the fixture a little, not to the epochs shown
        from collatz_ray.trainer.checkpoints import latest_checkpoint

        epoch = int(latest_checkpoint(cwd / resumed).name.removeprefix("epoch_"))
        args = [*args]
        args[args.index("--epochs") + 1] = str(epoch + RESUME_EPOCHS)
    return args


def _shrink_tune(args, fixtures, cwd):
    if args[:2] == ["--resume", "--name"]:
        fixtures.make("experiment", cwd / "results" / args[2], args)
    if args[:1] == ["--extend"]:
        fixtures.make("experiment", cwd / "results" / args[1], args)
    return [*args, "--dry-run", "--eval-csv", str(fixtures.eval_csv)]


def _shrink_results(args, fixtures, cwd):
    from collatz_ray.results.__main__ import DEFAULT_ROOT, parser

    if not parser().parse_args(args).experiments:  # the newest under ./results/
        fixtures.make("experiment", cwd / DEFAULT_ROOT / "the-newest", args)
    return args


def _shrink_evalset(args, fixtures, cwd):
    """1000 rows instead of 50000 (tests/trainer/test_evalset.py makes the canonical file
    and checks its sha256)."""
    return [*args, "--samples", "1000"]


def _shrink_scan(args, fixtures, cwd):
    """verify's and scan_trials' scans: a few thousand odd n instead of billions: --range
    A..A+2**12 and --random BITS:COUNT of at most 64 numbers, and the scan in this process
    rather than on the Ray cluster --address names (tests/e2e/test_verify_ray.py runs
    that path)."""
    out, skip = [], False
    for before, arg in zip(["", *args], args):
        if skip:
            skip = False
        elif arg == "--address":
            skip = True
        elif before == "--range":
            out.append(f"{arg.split('..')[0]}..{arg.split('..')[0]}+2**12")
        elif before == "--random":
            bits, count = arg.split(":")
            out.append(f"{bits}:{min(int(count), 64)}")
        else:
            out.append(arg)
    return out


#: tool -> how its documented command is made test-sized (fixtures made, flags added).
SHRINK = {
    "train": _shrink_train,
    "tune": _shrink_tune,  # --dry-run: the plan and a time estimate, no Ray, no trial
    "replicate": lambda args, fixtures, cwd: [*args, "--dry-run"],  # its plan: no Ray, no trial
    "evaluate": lambda args, fixtures, cwd: [*args, "--eval-csv", str(fixtures.eval_csv)],
    "results": _shrink_results,
    "evalset": _shrink_evalset,
    "verify": _shrink_scan,
    "scan_trials": _shrink_scan,
}


# -- the tests ----------------------------------------------------------------------------------
def _runnable() -> dict[tuple[str, ...], list[Command]]:
    """Each distinct runnable command (its words, placeholders substituted) and where the docs show it."""
    found: dict[tuple[str, ...], list[Command]] = {}
    for command in all_commands():
        if tool_of(command) is not None and exemption(command) is None:
            text = command.text
            for old, new in TEXT_SUBSTITUTIONS.items():
                text = text.replace(old, new)
            found.setdefault(tuple(shlex.split(text)), []).append(command)
    return found


RUNNABLE = _runnable()


def test_every_command_line_is_run_or_exempt():
    unexplained = [
        f"{c.where}: {c.text}" for c in all_commands() if exemption(c) is None and tool_of(c) not in SHRINK
    ]
    assert not unexplained, (
        "command lines in the docs that this test neither runs nor exempts "
        "(add a rule to NOT_RUN_HERE, or a tool to SHRINK):\n" + "\n".join(unexplained)
    )
    languages = {b.lang for b in all_blocks()} - SHELL_LANGS - set(NOT_COMMAND_LANGS) - {"python"}
    assert not languages, f"code blocks in languages this test does not know: {sorted(languages)}"
    assert len(RUNNABLE) >= 15  # the extraction found the docs' commands at all


SAMPLE_DOC = """\
Text, then an indented block:

    python -m collatz_ray.train --smoke        # a comment; not a command
    python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[test]'
    ray exec cluster/gpu.yaml --tmux "cd ~/collatz-ray && python -m collatz_ray.tune \\
        --space lookahead"
    python -m collatz_ray.results results/A --format json | jq .best.config_diff

- a list item
    that continues, indented: not code
- another

```bash
aws iam put-role-policy --policy-document \\
  "{\\"Statement\\":[
     {\\"Effect\\":\\"Allow\\"}]}"
OIDC=$(aws eks describe-cluster --query 'a.b' --output text | sed 's|^https://||')
```

```text
   Epoch |      Loss
```
"""


def test_extraction_reads_blocks_as_a_shell_would(tmp_path):
    doc = tmp_path / "sample.md"
    doc.write_text(SAMPLE_DOC)
    blocks = code_blocks(doc)
    assert [(b.where, b.lang) for b in blocks] == [
        ("sample.md:3", ""),
        ("sample.md:14", "bash"),
        ("sample.md:21", "text"),
    ]
    found = [(c.where, " ".join(c.text.split()), c.piped_into) for b in blocks[:2] for c in commands(b)]
    assert found == [
        ("sample.md:3", "python -m collatz_ray.train --smoke", ""),
        ("sample.md:4", "python3 -m venv .venv", ""),
        ("sample.md:4", ". .venv/bin/activate", ""),
        ("sample.md:4", "pip install -e '.[test]'", ""),
        (
            "sample.md:5",
            'ray exec cluster/gpu.yaml --tmux "cd ~/collatz-ray && python -m collatz_ray.tune '
            '--space lookahead"',
            "",
        ),
        ("sample.md:7", "python -m collatz_ray.results results/A --format json", "jq .best.config_diff"),
        ("sample.md:14", found[6][1], ""),
        (
            "sample.md:17",
            "OIDC=$(aws eks describe-cluster --query 'a.b' --output text | sed 's|^https://||')",
            "",
        ),
    ]
    assert found[6][1].startswith("aws iam put-role-policy") and found[6][1].endswith('"Allow\\"}]}"')
    assert [exemption(c) is not None for b in blocks[:2] for c in commands(b)] == [
        False,
        True,
        True,
        True,
        True,
        False,
        True,
        True,
    ]
    assert exemption(Command("x", "OMP_NUM_THREADS=1 python -m collatz_ray.train --smoke", "")) is None
    assert exemption(Command("x", "RAY_AUTH_MODE=token ray start --head", "")) is not None
    assert tool_of(Command("x", "WANDB_MODE=offline python -m collatz_ray.tune --smoke", "")) == "tune"
    assert split_assignments(("WANDB_MODE=offline", "python", "-m")) == (
        {"WANDB_MODE": "offline"},
        ["python", "-m"],
    )


def test_commands_inside_exempt_lines_still_parse():
    """`ray exec ... "python -m collatz_ray.tune ..."` is not run here, but the flags of the
    command it carries must still be the tool's."""
    import importlib

    seen = 0
    for command in all_commands():
        if exemption(command) is None or "python -m collatz_ray." not in command.text:
            continue
        words = shlex.split(command.text)
        for i, word in enumerate(words):
            if words[i : i + 2] == ["python", "-m"] and words[i + 2].startswith("collatz_ray."):
                inner = words[i + 2 :]  # `ray job submit -- python -m collatz_ray.tune ...`
            elif "python -m collatz_ray." in word:  # `ray exec ... "cd ... && python -m ..."`
                inner = shlex.split(word.split("python -m ", 1)[1])
            else:
                continue
            module = importlib.import_module(inner[0])
            try:
                module.parser().parse_args(inner[1:])
            except UsageError as err:
                raise AssertionError(f"{command.where}: {' '.join(inner)}: {err}") from None
            seen += 1
    assert seen >= 5


def test_python_blocks_run():
    blocks = [b for b in all_blocks() if b.lang == "python"]
    assert blocks
    for block in blocks:
        exec(compile("\n".join(text for _, text in block.lines), block.where, "exec"), {})


@pytest.fixture(scope="module")
def fixtures(request, tmp_path_factory) -> Fixtures:
    return Fixtures(request, tmp_path_factory.mktemp("doc_fixtures"))


@pytest.mark.parametrize(
    "words", list(RUNNABLE), ids=[" ".join(w).split("python -m collatz_ray.", 1)[1][:80] for w in RUNNABLE]
)
def test_documented_command_works(words, fixtures, tmp_path, monkeypatch):
    shown = RUNNABLE[words]
    env, command = split_assignments(words)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    tool, args = command[2].removeprefix("collatz_ray."), list(command[3:])
    where = ", ".join(c.where for c in shown)
    if tool == "tune" and args == SMOKE_SEARCH:
        # Run once per session by conftest's smoke_experiment, exactly so (plus where it
        # stores, a name, the small evaluation set, a seed and two trials at once).
        smoke_experiment = fixtures.request.getfixturevalue("smoke_experiment")
        out = (smoke_experiment.parent / "tune.out").read_text()
        assert "Best trial" in out and f"Experiment: {smoke_experiment}" in out, where
        return
    cwd = tmp_path / "work"
    cwd.mkdir()
    # Commands are typed at the repository's root: the paths they name under docs/ (a
    # study's space file) are the repository's.
    (cwd / "docs").symlink_to(REPO / "docs")
    monkeypatch.chdir(cwd)
    args = prepare(tool, args, fixtures, cwd)
    if tool == "tune":
        _time_each_config_once(monkeypatch)
    outcome = run_command(tool, *args)
    expected = DOCUMENTED_STATUS.get(shown[0].text, 0)
    assert outcome.status == expected, (
        f"{where}: python -m collatz_ray.{tool} {' '.join(args)} exited "
        f"{outcome.status}\n{outcome.stdout[-1500:]}\n{outcome.stderr[-1500:]}"
    )
    assert "Traceback" not in outcome.stderr, outcome.stderr
    for command in shown:
        _check_pipe(command, outcome.stdout)


#: The dry runs' timings, by the config timed: the documented searches of one space share one.
_TIMED: dict = {}


def _time_each_config_once(monkeypatch) -> None:
    """A dry run times a few epochs of the costliest config its space samples (the log's
    4.6M-parameter model at lookahead 300) for about 4 s. Here the shortest timing does,
    once per config: the plan it prints is the same."""
    from collatz_ray.search import calibrate

    real = calibrate.calibrate

    def once(space, *args, **kwargs):
        # An epoch costs the same whatever the budget (--epochs) around it.
        key = (
            calibrate.costliest_config(space).replace(epochs=1, eval_interval=1),
            args,
            tuple(sorted(kwargs.items())),
        )
        if key not in _TIMED:
            _TIMED[key] = real(space, *args, **kwargs)
        return _TIMED[key]

    monkeypatch.setattr(calibrate, "CALIBRATION_SECONDS", 0.1)
    monkeypatch.setattr(calibrate, "calibrate", once)


def _check_pipe(command: Command, stdout: str) -> None:
    """`| jq .a.b`: the JSON has that path."""
    found = re.fullmatch(r"jq (\.[\w.]+)", command.piped_into)
    if command.piped_into and not found:
        raise AssertionError(f"{command.where}: no check for the pipe into {command.piped_into!r}")
    if found:
        value = json.loads(stdout)
        for key in found.group(1).strip(".").split("."):
            assert isinstance(value, dict) and key in value, (
                f"{command.where}: {found.group(1)} not in the output"
            )
            value = value[key]
