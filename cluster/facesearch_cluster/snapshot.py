"""A rebuild's copy travels file by file in bounded chunks (docs/scale.md, "Rebuilding a replica
from a snapshot"). No Ray here: the rules are unit-tested on their own.

The sibling makes its checked copy in a folder beside its corpus and lists it (manifest: each
file's relative path, size and SHA-256). The replica pulls every file chunk by chunk (at most
CHUNK_BYTES at a time, so no process holds more than a few chunks of a 16 GB shard in memory, and
Ray's object store a chunk or two rather than one 16 GB object) into its staging folder, and refuses a file whose size or SHA-256 is not the manifest's, or a path
that would leave the staging folder.
"""

import hashlib
import os

CHUNK_BYTES = 8 << 20
MAX_CHUNK_BYTES = 64 << 20  # what one call may ask for


class SnapshotError(RuntimeError):
    """A copy that cannot be trusted or read; the message says which file and why."""


def manifest(folder):
    """[{"path", "size", "sha256"}] of every file under `folder`, sorted by path. A copy holds
    regular files and folders only: anything else (a link) is refused."""
    out = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            full = os.path.join(root, name)
            if os.path.islink(full) or not os.path.isfile(full):
                raise SnapshotError(f"{full} is not a regular file: a snapshot holds only files")
            digest, size = hashlib.sha256(), 0
            with open(full, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
            out.append({"path": os.path.relpath(full, folder), "size": size, "sha256": digest.hexdigest()})
    return out


def _checked_path(path):
    """`path` when it is relative and stays inside its folder; SnapshotError otherwise."""
    parts = path.split("/")
    if not path or os.path.isabs(path) or any(p in ("", ".", "..") for p in parts):
        raise SnapshotError(f"the snapshot names the path {path!r}, which would leave its folder")
    return path


def read_chunk(folder, files, path, offset, size):
    """Up to `size` bytes (at most MAX_CHUNK_BYTES) of manifest file `path` from `offset`."""
    if path not in files:
        raise SnapshotError(f"{path!r} is not in the snapshot")
    with open(os.path.join(folder, _checked_path(path)), "rb") as f:
        f.seek(offset)
        return f.read(min(size, MAX_CHUNK_BYTES))


def pull(files, fetch, dest, chunk_bytes=CHUNK_BYTES):
    """Writes every manifest file under `dest` (an existing, empty folder) from fetch(path, offset,
    size) -> bytes, one chunk at a time, and checks its size and SHA-256; each file is synced.
    Raises SnapshotError at the first file that does not match (the caller removes `dest`)."""
    for entry in files:
        path = _checked_path(entry["path"])
        target = os.path.join(dest, path)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        digest, offset = hashlib.sha256(), 0
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            while offset < entry["size"]:
                chunk = fetch(path, offset, min(chunk_bytes, entry["size"] - offset))
                if not chunk:
                    raise SnapshotError(f"{path} ended at byte {offset} of {entry['size']}: the source's copy changed")
                out.write(chunk)
                digest.update(chunk)
                offset += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if offset != entry["size"] or digest.hexdigest() != entry["sha256"]:
            raise SnapshotError(f"{path} arrived with {offset} bytes and SHA-256 {digest.hexdigest()[:12]}..., "
                                f"the source listed {entry['size']} and {entry['sha256'][:12]}...")
