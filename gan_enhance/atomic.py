"""Atomic file writes: a file appears complete under its name, or not at all.

Every output of the toolkit (audio, checkpoints, manifests, shards, reports) is written to a temporary
file beside its target and renamed over it only once complete, so a crash, a kill or a full disk leaves
either the previous file or nothing, never a truncated one. Out-of-space errors become
:class:`~gan_enhance.errors.OutOfSpaceError`, naming the file and saying what was kept.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator

from gan_enhance.errors import OutOfSpaceError

# ENOSPC: disk full; EDQUOT: quota; EFBIG: file-size limit (ulimit -f, some file systems).
SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def current_umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux ``/proc``).

    Elsewhere it is read by setting and restoring it, which is only safe while no other thread creates files.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def give_default_permissions(path: str | os.PathLike, folder: bool = False) -> None:
    """Give ``path`` the permissions a plain ``open()`` (``mkdir()`` with ``folder``) would have given it.

    ``tempfile.mkstemp``/``mkdtemp`` and some writers (safetensors) create private (``0600``/``0700``)
    entries; files renamed into place from them should be readable like any other file the user makes.
    """
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def _fsync_folder(folder: str) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened, e.g. Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = False) -> Iterator[str]:
    """Yield a temporary path beside ``path``; rename it over ``path`` when the block succeeds.

    The temporary file is hidden (``.<name>.<random><ext>``, same extension, so writers that choose a
    format by extension still work) and in the same folder, so the rename is atomic. On any error it is
    removed and ``path`` keeps its previous content. The folder is created if missing.

    A link to a file is followed (the file is replaced, the link stays). A pipe, device or socket
    (``/dev/stdout``, a FIFO) is written in place: it holds no content to keep, and a rename would replace
    it with a regular file.

    Parameters
    ----------
    path : str or PathLike
        The final file.
    durable : bool
        fsync the file and its folder, so the new content survives a power loss (checkpoints).

    Raises
    ------
    OutOfSpaceError
        The disk, a quota or a file-size limit ran out while writing.
    """
    path = os.fspath(path)
    # /dev/stdout redirected to a file is a link to a regular file: still a stream to write into
    stream = os.path.abspath(path).startswith(("/dev/", "/proc/"))
    if os.path.exists(path) and (stream or not (os.path.isfile(path) or os.path.isdir(path))):
        try:
            yield path
        except OSError as error:
            raise _translated(error, path) from None
        return
    if os.path.islink(path):
        path = os.path.realpath(path)
    folder = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=os.path.splitext(name)[1], dir=folder)
    except OSError as error:
        raise _translated(error, path) from None
    os.close(handle)
    try:
        yield temporary
        # mkstemp makes the file private (0600); give it the permissions a plain open() would.
        give_default_permissions(temporary)
        if durable:
            with open(temporary, "rb+") as stream:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
        if durable:
            _fsync_folder(folder)
    except OSError as error:
        raise _translated(error, path) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def remove_leftovers(path: str | os.PathLike) -> list[str]:
    """Remove the temporary files that killed writers of ``path`` left beside it; returns their paths.

    A process killed outright (SIGKILL, power loss) cannot clean up; the next writer of the same file
    can. Only names of :func:`atomic_path`'s own pattern (``.<name>.<8 random characters><ext>``) are
    touched.
    """
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}{re.escape(os.path.splitext(name)[1])}")
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if pattern.fullmatch(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(entry.path)
                    removed.append(entry.path)
    return removed


def _translated(error: OSError, path: str) -> OSError:
    if error.errno not in SPACE_ERRNOS:
        return error
    kept = "the previous file is intact" if os.path.exists(path) else "nothing was written"
    return OutOfSpaceError(
        f"out of disk space writing '{path}' ({error.strerror}); {kept}. Free space and retry"
    )


def write_bytes(path: str | os.PathLike, data: bytes, durable: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path, durable) as temporary, open(temporary, "wb") as stream:
        stream.write(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as stream:
        stream.write(text)
