"""Reading YAML that a user wrote: config files (`train --config`) and search spaces.

Both are small files of settings, so whatever does not look like one is refused in one
line before it costs anything: a file over MAX_BYTES (PyYAML's pure-Python loader, the
one whose steps can be checked, reads about 50 KB a second), anything but a regular
file (a FIFO would wait for a writer forever, a device never ends), text that is not UTF-8, a
directory, nesting deeper than MAX_DEPTH (PyYAML's scanner slows down quadratically with
it, and its composer recurses), a key given twice in one mapping (PyYAML would keep the
last one silently), and aliases that expand past MAX_NODES values. The last is the
"billion laughs" file:
500 bytes of nested aliases stand for 10^9 values, which PyYAML builds as shared
objects in no time but every later walk over them (validation, printing a value in an
error) expands, with memory growing until the machine gives out. A recursive alias
(`&a [*a]`) has no end at all and is refused the same way.
"""

from __future__ import annotations

import collections.abc
from pathlib import Path
from typing import Any

import yaml

from collatz_ray._bounded import Unreadable, read_bytes
from collatz_ray.errors import UsageError, shown

#: The largest YAML file read: settings files are a few kilobytes.
MAX_BYTES = 64 * 1024
#: The deepest nesting of lists and mappings: settings nest three or four levels.
MAX_DEPTH = 32
#: The most values (scalars, lists, mappings) a file may stand for with its aliases expanded.
MAX_NODES = 10_000


def load_yaml(path: Path) -> Any:
    """The one YAML document in `path`, loaded safely; any problem is a UsageError whose
    line names the file (and the line and column, where YAML knows them)."""
    if Path(path).is_dir():
        raise UsageError(f"{path}: is a directory; expected a YAML file")
    try:
        raw = read_bytes(path, limit=MAX_BYTES)
    except FileNotFoundError:
        raise UsageError(f"{path}: file not found") from None
    except Unreadable as err:
        raise UsageError(f"{path}: {err.why}; expected a small YAML file of settings") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror or err})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(f"{path}: not UTF-8 text (byte {err.start}); expected a YAML file") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise UsageError(f"{path}: {where}not valid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise UsageError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting, duplicate keys, alias bombs, recursive
    aliases, and integers and dates Python cannot make, each as a YAML error with its
    position."""

    def fetch_flow_collection_start(self, TokenClass: type) -> None:
        if self.flow_level >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        if len(self.indents) >= MAX_DEPTH:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark()
            )
        return super().add_indent(column)

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, collections.abc.Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {shown(key)}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # past Python's 4300-digit limit for int()
            raise yaml.constructor.ConstructorError(
                None, None, f"integer too long ({len(node.value)} characters)", node.start_mark
            ) from None

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:  # 2024-13-45 matches the pattern and is no date
            raise yaml.constructor.ConstructorError(
                None, None, f"not a date: {shown(node.value)}", node.start_mark
            ) from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_timestamp)


def _check_expansion(root: yaml.Node | None) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES values, or that
    contains itself. Each distinct node is sized once (aliases share the node object)."""
    if root is None:
        return
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise yaml.composer.ComposerError(
                None, None, "a recursive alias (a value that contains itself)", node.start_mark
            )
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k) + size(v) for k, v in node.value)
        if total > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_NODES} values; refused", node.start_mark
            )
        open_nodes.discard(key)
        sizes[key] = total
        return total

    size(root)
