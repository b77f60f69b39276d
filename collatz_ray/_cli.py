"""What every `python -m collatz_ray.<command>` shares: its argument parser, the rule
that bad input is one line and exit status 2, and the flag value parsers.

The library never imports this module; only the command modules do.
"""

from __future__ import annotations

import argparse
import functools
import math
import re
import shlex
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, ParamSpec, TypeVar

from collatz_ray._interrupt import Interrupted, raising_on_signals
from collatz_ray.errors import SHOWN_CHARS, UsageError, shown
from collatz_ray.syracuse.arith import DECIMAL_MAX_BITS
from collatz_ray.trainer.config import MAX_SEED
from collatz_ray.trainer.text import TEXT_WIDTH, fitted

P = ParamSpec("P")
R = TypeVar("R")

USAGE_EXIT_STATUS = 2
#: The longest error line printed. Messages quote values through errors.shown; this
#: bounds what a path or a list of names adds, whatever the input.
MAX_LINE_CHARS = 1000


def exit_on_usage_error(main: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command's main(): UsageError -> '<prog>: error: <line>' on stderr and
    exit status 2, never a traceback."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return main(*args, **kwargs)
        except UsageError as err:
            print(f"{_prog(main)}: error: {one_line(str(err))}", file=sys.stderr)
            raise SystemExit(USAGE_EXIT_STATUS) from None

    return wrapper


def exit_on_interrupt(main: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command's main() (outside exit_on_usage_error): Ctrl-C or SIGTERM ->
    '<prog>: interrupted by SIGINT; <what was kept>' on stderr and exit status 130 (143
    for SIGTERM), never a traceback. See collatz_ray._interrupt."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with raising_on_signals():
            try:
                return main(*args, **kwargs)
            except KeyboardInterrupt as stop:
                stopped = stop if isinstance(stop, Interrupted) else Interrupted.of(stop, kept="")
                kept = stopped.kept or "nothing was kept: run the command again"
                print(
                    f"{_prog(main)}: interrupted by {stopped.signum.name}; {one_line(kept)}",
                    file=sys.stderr,
                    flush=True,
                )
                raise SystemExit(stopped.exit_status) from None

    return wrapper


def resume_command(main: Callable[..., object], argv: Sequence[str] | None) -> str:
    """The command line that ran `main` with `argv` (None: this process's arguments),
    quoted for a POSIX shell, as a line that says how to go on names it."""
    args = sys.argv[1:] if argv is None else [str(a) for a in argv]
    return shlex.join(["python", "-m", _prog(main), *args])


def one_line(message: str) -> str:
    """The message as one line (a file name or key may hold a line break of any kind)
    of at most MAX_LINE_CHARS characters."""
    line = " ".join(message.splitlines())
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 3] + "..."


def _prog(main: Callable[..., object]) -> str:
    """The command's module name as the user typed it after `python -m`."""
    module = sys.modules.get(main.__module__)
    spec = getattr(module, "__spec__", None)
    name = spec.name if spec is not None else main.__module__
    return name.removesuffix(".__main__")


#: A quoted value longer than errors.shown would print.
_LONG_QUOTE = re.compile(rf"'[^'\n]{{{SHOWN_CHARS},}}'|\"[^\"\n]{{{SHOWN_CHARS},}}\"")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """--help at the terminal's width, at most TEXT_WIDTH columns (argparse would take a
    wide terminal's whole width). The description keeps its own lines, as written in the
    command's docstring; one longer than TEXT_WIDTH continues under its text."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("width", min(shutil.get_terminal_size().columns - 2, TEXT_WIDTH))
        super().__init__(prog, **kwargs)

    def _split_lines(self, text: str, width: int) -> list[str]:
        # A flag in the help (--no-k-shifted) is not broken at its hyphens.
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "".join(piece + "\n" for line in text.splitlines() for piece in fitted(indent + line))


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors (unknown flag, bad value) become a UsageError: one line and
    exit status 2 through exit_on_usage_error, like every other bad input."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        # argparse quotes a bad value whole ("invalid int value: '1111...'"): cut it short.
        raise UsageError(_LONG_QUOTE.sub(lambda m: shown(m.group(0)[1:-1]), message))


def number(kind: Callable[[str], Any], check: Callable[[Any], bool], what: str) -> Callable[[str], Any]:
    """A flag's type: `kind(text)` that must pass `check`, else '... expected <what>'."""

    def parse(text: str) -> Any:
        try:  # int() refuses more than 4300 digits with a ValueError too
            value = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown(text)}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"expected {what}, got {shown(text)}")
        return value

    return parse


positive_int = number(int, lambda v: v >= 1, "an integer >= 1")
nonnegative_float = number(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
#: A seed, as torch and numpy take it (TrainConfig checks its own the same way).
seed_int = number(int, lambda v: 0 <= v <= MAX_SEED, f"an integer from 0 to {MAX_SEED}")


#: The largest power `integer_expression` builds, in bits (exact arithmetic goes to 2^32000).
MAX_POWER_BITS = 30000
_TERM = re.compile(r"\s*([+-]?)\s*(\d+)(?:\s*\*\*\s*(\d+))?\s*")


def integer_expression(text: str) -> int:
    """An integer written as terms like 3, 2**32 or 2**40+2**20-1, parsed (never eval'd);
    ValueError when it is not one, or when a power has more than MAX_POWER_BITS bits."""
    total, pos = 0, 0
    while pos < len(text):
        match = _TERM.match(text, pos)
        if match is None or match.end() == pos or (pos > 0 and not match.group(1)):
            raise ValueError(text)
        sign, base, exponent = match.groups()
        if exponent is not None and int(base) > 1 and int(exponent) * math.log2(int(base)) > MAX_POWER_BITS:
            raise ValueError(text)
        term = int(base) ** int(exponent) if exponent is not None else int(base)
        total += -term if sign == "-" else term
        pos = match.end()
    if not text.strip():
        raise ValueError(text)
    return total


# -- the scan's numbers (verify, scan_trials) ------------------------------------------
# Numbers up to DECIMAL_MAX_BITS bits: the reports write them in decimal.


def add_scan_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *, range_example: str) -> None:
    """--range A..B and --random BITS:COUNT (parse_range and parse_random read them)."""
    parser.add_argument("--range", metavar="A..B", help=f"every odd n with A <= n < B, e.g. {range_example}")
    parser.add_argument(
        "--random",
        metavar="BITS:COUNT",
        action="append",
        help="COUNT random odd numbers of BITS bits (repeatable)",
    )


def parse_range(text: str) -> tuple[int, int]:
    parts = text.split("..")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        start, stop = (integer_expression(part) for part in parts)
    except ValueError:
        raise UsageError(f"--range {text}: expected A..B with integers or powers, e.g. 3..2**32") from None
    if start < 2:
        raise UsageError(
            f"--range {text}: starts below 2; n = 1 is excluded (T(1) = 1 always ties), start at 3"
        )
    if stop <= (start | 1):
        raise UsageError(f"--range {text}: holds no odd n (A <= n < B)")
    if stop.bit_length() > DECIMAL_MAX_BITS:
        raise UsageError(f"--range {text}: numbers beyond 2**{DECIMAL_MAX_BITS} are not supported")
    return start, stop


def parse_random(texts: Sequence[str]) -> tuple[tuple[int, int], ...]:
    out = []
    for text in texts:
        try:
            bits_text, count_text = text.split(":")
            bits, count = int(bits_text), integer_expression(count_text)
        except ValueError:
            raise UsageError(f"--random {text}: expected BITS:COUNT, e.g. 256:100000") from None
        if not 2 <= bits <= DECIMAL_MAX_BITS or count < 1:
            raise UsageError(f"--random {text}: expected 2 <= BITS <= {DECIMAL_MAX_BITS} and COUNT >= 1")
        out.append((bits, count))
    if len({bits for bits, _ in out}) != len(out):
        raise UsageError("--random: each bit length once")
    return tuple(out)
