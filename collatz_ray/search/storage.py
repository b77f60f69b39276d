"""Where experiments may be stored: checked before any trial starts, and watched while
the search runs.

A multi-node search needs storage every node reaches: trials on other nodes
write their checkpoints there and Tune reads them back. A local directory is refused on
a multi-node cluster unless it sits on a network filesystem (NFS, EFS, Lustre, ...).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from collatz_ray.errors import UsageError
from collatz_ray.search.failures import SearchHalted

#: URI schemes Ray's storage layer (pyarrow filesystems) can write experiments to.
REMOTE_SCHEMES = ("s3", "gs", "gcs", "abfs", "abfss", "hdfs", "viewfs")
#: An experiment name is one directory under --storage: nothing that climbs out of it.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def is_remote(storage: str) -> bool:
    """Whether `storage` (resolved: resolve_storage) is a URI such as s3://bucket/prefix
    rather than a local directory: the one test of it, so that every place that treats
    remote storage apart (no lock, no bank, no study file inside) agrees."""
    return "://" in storage


def resolve_storage(storage: str) -> str:
    """--storage as the search uses it: a URI of a known scheme, or an absolute local
    path (a file:// URI is a local path)."""
    scheme, sep, rest = storage.partition("://")
    if sep:
        if scheme == "file":
            storage = rest
        elif scheme.lower() not in REMOTE_SCHEMES:
            raise UsageError(
                f"--storage {storage}: unknown scheme {scheme[:20]!r}; expected a local "
                f"directory or one of {', '.join(s + '://' for s in REMOTE_SCHEMES)}"
            )
        else:
            return storage
    try:
        return str(Path(storage).expanduser().resolve())
    except (OSError, RuntimeError) as err:  # RuntimeError: a symlink loop
        raise UsageError(f"--storage {storage}: cannot be resolved ({err})") from None


def check_name(name: str) -> str:
    """An experiment name: one path component made of letters, digits, '.', '_', '-'."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        raise UsageError(
            f"--name {name[:60]!r}: expected one directory name of letters, digits, "
            "'.', '_' and '-' (not a path), starting with a letter or digit"
        )
    return name


#: Filesystem types (from /proc/mounts) that several machines can share.
SHARED_FS_TYPES = (
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "lustre",
    "gpfs",
    "ceph",
    "glusterfs",
    "beegfs",
    "efs",
    "9p",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.juicefs",
    "fuse.sshfs",
    "fuse.ceph",
)


def filesystem_type(path: Path) -> str:
    """Type of the filesystem holding `path` (longest matching mount point)."""
    path = path.resolve()
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        if (str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind


def check_storage(
    storage: str, *, creating: bool, nodes: int = 1, declared_shared: bool = False, dry_run: bool = False
) -> None:
    """Refuse, in one line, storage that cannot hold this experiment. `declared_shared`
    is the user's word (--shared-storage) that every node sees this directory. With
    `dry_run` nothing is created: a directory still to be made must be makeable."""
    if is_remote(storage):
        return  # a URI (s3://, gs://, ...): Ray's pyarrow filesystem checks it on use
    path = Path(storage)
    if nodes > 1 and not declared_shared and filesystem_type(path) not in SHARED_FS_TYPES:
        raise UsageError(
            f"--storage {storage}: a local directory on a {nodes}-node cluster; trials on other "
            "nodes cannot reach it. Use s3://bucket/prefix or a shared mount (NFS, EFS, ...), or "
            "--shared-storage if every node does see it"
        )
    if creating and dry_run:
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UsageError(f"--storage {storage}: not writable ({existing} cannot hold it)")
        return
    if creating:
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
                pass
        except OSError as err:
            raise UsageError(f"--storage {storage}: not writable ({err.strerror or err})") from None
    elif not path.is_dir():
        raise UsageError(f"--storage {storage}: no such directory")
    if not os.access(path, os.W_OK):
        raise UsageError(f"--storage {storage}: not writable")


class StorageFailed(SearchHalted):
    """The experiment's storage stopped taking writes (full, read-only, gone)."""


#: Large enough that a nearly full disk refuses it before it refuses Ray's own files.
_PROBE_BYTES = 64 * 1024


def storage_write_problem(path: str) -> str | None:
    """Why `path` (a local experiment directory) cannot take a small write, or None."""
    if is_remote(path):
        return None  # remote storage: Ray's pyarrow filesystem reports its own errors
    try:
        with tempfile.NamedTemporaryFile(dir=path, prefix=".storage-probe-") as probe:
            probe.write(b"\0" * _PROBE_BYTES)
            probe.flush()
    except OSError as err:
        return err.strerror or str(err)
    return None


def storage_failure_line(storage: str, experiment: str, path: str, problem: str) -> str:
    return (
        f"--storage {storage}: cannot write to experiment {experiment} "
        f"({problem}); the search stopped. Trials already written are kept in {path}"
    )
