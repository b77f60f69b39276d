"""The one exception type for bad input.

Every validation failure anywhere in the package raises `UsageError` with a single line
that names the file, key or flag and what was expected. The command-line tools turn it
into that line on stderr and exit status 2 (see `collatz_ray._cli`), never a traceback.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from a user: a flag, a config key, a file. The message is one line."""
