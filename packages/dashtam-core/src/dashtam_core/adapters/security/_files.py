"""Private helpers: write secret files atomically with mode 0600."""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path


def ensure_secret_dir(directory: Path) -> Path:
    """Create ``directory`` (mode 0700) if needed and return it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory


def write_secret_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``; the file is created with mode 0600."""
    ensure_secret_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def b64u_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Decode base64url with or without padding."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
