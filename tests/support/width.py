"""What a person reads from a command (docs/layout.md, issue 17): lines of at most
TEXT_WIDTH columns once the paths in them are taken out, and no Python repr."""

from __future__ import annotations

import re

from collatz_ray.trainer.text import TEXT_WIDTH

#: A run of characters with a slash and a letter in it: a file path or a URI (164/429 has no letter).
_PATH = re.compile(r"[^\s(),'\"`]*/[^\s(),'\"`]*")
#: Python's own spelling of a value, where a person should read words and numbers.
REPRS = {
    "dict": re.compile(r"\{(?:'[^']*'|\"[^\"]*\"|-?\d[\d.]*): "),
    "list of strings": re.compile(r"\[(?:'[^']*'|\"[^\"]*\")(?:, |\])"),
    "list of numbers": re.compile(r"\[-?\d[\d.e+-]*(?:, -?\d[\d.e+-]*)+\]"),
    "tuple of strings": re.compile(r"\('[^']*', "),
    "None": re.compile(r"\bNone\b"),
    "True or False": re.compile(r"\b(?:True|False)\b"),
    "a Path object": re.compile(r"\b\w*Path\("),
    "an object": re.compile(r"<[\w.]+ object at 0x|<class '"),
}


def without_paths(line: str) -> str:
    return _PATH.sub(lambda m: "" if re.search(r"[A-Za-z]", m.group(0)) else m.group(0), line)


def overlong(text: str, *, skip: str | None = None) -> list[str]:
    """The lines of `text` wider than TEXT_WIDTH once their paths are taken out (and,
    with `skip`, but those starting with it: a markdown table's rows)."""
    return [
        line
        for line in text.splitlines()
        if len(without_paths(line)) > TEXT_WIDTH and not (skip and line.startswith(skip))
    ]


def python_reprs(text: str) -> list[str]:
    """'<kind>: <line>' for each line where a Python repr shows."""
    return [f"{kind}: {line}" for line in text.splitlines() for kind, r in REPRS.items() if r.search(line)]


def unwrapped(text: str) -> str:
    """`text` with its lines joined and its spaces collapsed: a sentence or a table cell
    reads whole however the output wrapped it."""
    return " ".join(text.split())
