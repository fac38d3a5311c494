"""One run at a time per output folder: an advisory `flock` on `<out>/.expscore.lock`.

The kernel releases a flock when its process dies, even by SIGKILL, so a crashed run never leaves
a stale lock behind; a second run refuses at once with a clear message instead of waiting.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipelines.errors import ExpscoreError, InputError
from pipelines.layout import lock_path


class LockedError(ExpscoreError):
    """Another run holds the output folder. Exit 4: retry later, nothing was changed."""

    exit_code = 4


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold `<out>/.expscore.lock` for one run; an --out that cannot be written is exit 2."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(out), os.O_RDWR | os.O_CREAT, 0o644)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InputError(f"--out {out}: not a folder ({exc.strerror})") from exc
    except PermissionError as exc:
        raise InputError(f"--out {out}: cannot be written ({exc.strerror})") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            raise LockedError(
                f"{out}: another expscore run holds the output lock ({holder}); "
                "nothing was changed, try again when it has finished"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the flock
