"""Writes that lose nothing: what ``apply`` uses to put a rewritten file in place.

Three guarantees, each against a way a run used to lose or leave something:

- **The file is still what was read.** A rewrite is planned from the bytes read at the start
  of the run; a user (or another tool) may save the file while the run plans. Right before the
  atomic replace the file is read again and compared with those bytes: if it changed, the
  rewrite is dropped and the user's version stays (:class:`WriteRefused`).
- **One run per project root.** :func:`project_lock` takes an exclusive lock for the whole
  read-plan-write cycle, so a second ``apply`` on the same tree waits and then plans from the
  first one's output instead of rewriting the same originals twice.
- **No temporary file outlives its run.** The new content goes to a temporary file beside the
  target, named ``.<name>.esper-migrate-<pid>-<random>.tmp``, removed on every exit path;
  :func:`raise_on_signals` turns SIGINT, SIGTERM and SIGHUP into an exception so that those
  paths run on a ``kill`` too. Only SIGKILL can leave one behind: :func:`remove_stale`
  deletes those of dead processes on the next run (discovery finds them; no ``*.py`` glob
  ever matches them).

A file is also never written when it is read-only (no write bit, or not writable by this
user: root would otherwise replace a 0444 file silently) or when its real location is
outside the project root.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn

from esper_migrate.discover import TEMP_FILE, read_regular_file, within

#: Where the lock lives, under the project root (the cache directory, ignored by git).
LOCK_DIRECTORY = ".esper_migrate_cache"
LOCK_NAME = "apply.lock"


class WriteRefused(Exception):
    """The file was deliberately not written; the message says why (and that it is intact)."""


class LockTimeout(Exception):
    """Another run held the project's lock for longer than the caller would wait."""


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP arrived while :func:`raise_on_signals` was active.

    A BaseException, like KeyboardInterrupt, so that ``except Exception`` blocks do not
    swallow it on the way out.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal_name(self.signum)


def read_only_reason(path: Path) -> str | None:
    """Why ``path`` must not be rewritten as read-only, or None when it may be."""
    st = os.stat(path)
    if not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        # As root, os.access() says yes to a 0444 file; the mode is the owner's intent.
        return f"read-only (mode {stat.S_IMODE(st.st_mode):04o})"
    if not os.access(path, os.W_OK):
        return "not writable by this user"
    return None


def write_if_unchanged(
    path: Path, expected: bytes, data: bytes, *, root: Path | None = None
) -> None:
    """Replace ``path`` with ``data`` atomically, if it still holds ``expected``.

    A symlink is followed (its target is rewritten, the link kept) unless the target lies
    outside ``root``; the file mode is kept. Raises :class:`WriteRefused` when the file is
    read-only, outside the root or changed since it was read, and OSError when the write
    itself fails; in every case the file is left as it was and no temporary file remains.
    """
    real = Path(os.path.realpath(path))
    if root is not None and not within(str(real), os.path.realpath(root)):
        raise WriteRefused(f"resolves to {real}, outside the project root {root}; not written")
    reason = read_only_reason(real)
    if reason is not None:
        raise WriteRefused(f"{reason}; not rewritten")
    mode = stat.S_IMODE(os.stat(real).st_mode)
    tmp: str | None = None
    try:
        # The name is bound before the file exists: a signal that interrupts us right after
        # the create (mkstemp would still be returning) must find it to remove. The pid in the
        # name makes it ours alone, so O_EXCL never meets a file we did not create.
        tmp = os.path.join(
            real.parent, f".{real.name}.esper-migrate-{os.getpid()}-{os.urandom(6).hex()}.tmp"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
        # No fsync: atomicity against a killed process needs only the rename (the page cache
        # outlives the process), and an fsync per file would dominate a large run.
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        if read_regular_file(real) != expected:
            raise WriteRefused(
                "changed on disk during the run; your version was kept (run again to migrate it)"
            )
        os.replace(tmp, real)
        tmp = None
    finally:
        if tmp is not None:
            # (Not there when the create failed or the replace succeeded; not removable only
            # where it could not have been created.)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


class SignalState:
    """What :func:`raise_on_signals` caught.

    The exception a handler raises can be swallowed or wrapped on its way out (Python turns an
    exception inside ``__set_name__`` during an import into a RuntimeError; a broad ``except``
    may report it as a file's error), so the signal is recorded too and :meth:`check` raises
    it again at the next safe point.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        #: When set, a signal calls it instead of raising; it must not return (report, then
        #: ``os._exit``). For phases with nothing to clean up, where unwinding through a
        #: process pool can hang: a pool whose workers died with the signal blocks its
        #: parent's shutdown and even the interpreter's exit.
        self.on_signal: Callable[[int], NoReturn] | None = None

    def check(self) -> None:
        if self.received is not None:
            raise Interrupted(self.received)


#: The states of the :func:`raise_on_signals` blocks now open in this process, for the fork
#: hook below (fork hooks are process-wide and cannot be removed, so it is registered once).
_OPEN_STATES: list[SignalState] = []
_FORK_HOOK_REGISTERED = False


def _leave_if_signalled_after_fork() -> None:
    # A process forked after the signal came (a pool's maintenance thread replaces the workers
    # the signal killed, racing the parent's exit) never saw it: it would wait forever for work
    # from a parent that is gone, holding the parent's stderr open. It leaves at once instead.
    for state in _OPEN_STATES:
        if state.received is not None:
            os._exit(128 + state.received)


@contextlib.contextmanager
def raise_on_signals(signums: Iterable[int] = ()) -> Iterator[SignalState]:
    """Within the block, SIGINT, SIGTERM and SIGHUP (or ``signums``) raise
    :class:`Interrupted` and are recorded in the yielded :class:`SignalState`, so that
    ``finally`` clauses (temporary files, the lock) run and the caller can name the signal.

    Outside the main thread signal handlers cannot be set; the block then runs unchanged.
    """
    state = SignalState()
    wanted = list(signums) or [
        s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s
    ]
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    owner = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:
            # A forked worker of a process pool (it inherits the handler): leave at once,
            # without a traceback. Ctrl-C or a kill of the process group reaches it too, and
            # its parent does not wait for the pool while the signal is deferred to it.
            os._exit(128 + signum)
        if state.received is None:
            state.received = signum
        if state.on_signal is not None:
            state.on_signal(signum)
        raise Interrupted(signum)

    global _FORK_HOOK_REGISTERED
    if not _FORK_HOOK_REGISTERED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_leave_if_signalled_after_fork)
        _FORK_HOOK_REGISTERED = True
    previous = {s: signal.signal(s, handler) for s in wanted}
    _OPEN_STATES.append(state)
    try:
        yield state
    finally:
        _OPEN_STATES.remove(state)
        for s, old in previous.items():
            signal.signal(s, old)


def exit_now(message: Callable[[int], str]) -> Callable[[int], NoReturn]:
    """An ``on_signal`` for :class:`SignalState`: print ``message(signum)`` on stderr as the
    one line the user sees, then leave with 128 + the signal number."""

    def leave(signum: int) -> NoReturn:
        sys.stderr.write(message(signum) + "\n")
        sys.stderr.flush()
        _kill_children()
        os._exit(128 + signum)

    return leave


def _kill_children() -> None:
    """SIGKILL this process's children: a pool worker forked just after a signal went out to
    the process group never received it, and would wait for work forever after we are gone
    (holding our stdout and stderr open)."""
    multiprocessing = sys.modules.get("multiprocessing")
    if multiprocessing is not None:
        for child in multiprocessing.active_children():
            with contextlib.suppress(Exception):
                child.kill()
    if not os.path.isdir("/proc"):
        return
    # One forked so recently that multiprocessing has not registered it yet.
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == me:
                os.kill(int(entry), signal.SIGKILL)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    except OSError:
        return True  # cannot tell (e.g. on Windows): keep the file
    return True


def remove_stale(temp_files: Iterable[Path]) -> list[Path]:
    """Delete the esper-migrate temporary files whose writer process is gone; returns them.

    Call it holding :func:`project_lock`: no other run of this root writes then, and a file
    of a live process (another root's run sharing a directory) is left alone.
    """
    removed = []
    for path in temp_files:
        match = TEMP_FILE.match(path.name)
        if match is None or _pid_alive(int(match["pid"])):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return removed


def _lock_file(root: Path) -> tuple[int, Path]:
    directory = root / LOCK_DIRECTORY
    try:
        directory.mkdir(exist_ok=True)
        gitignore = directory / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text("# Created by esper-migrate\n*\n", encoding="utf-8")
        path = directory / LOCK_NAME
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644), path
    except OSError:
        # A root we cannot write to (its files may still be writable): lock in the temp
        # directory under a name derived from the root, which every run computes alike.
        from esper_migrate.cache import content_hash

        name = f"esper-migrate-{content_hash(os.fsencode(os.path.realpath(root)))}.lock"
        path = Path(tempfile.gettempdir()) / name
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666), path


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        os.lseek(fd, 0, os.SEEK_SET)
        pid = int(os.read(fd, 32).decode().strip())
        return f" (pid {pid})"
    return ""


@contextlib.contextmanager
def project_lock(
    root: Path, *, timeout: float, on_wait: Callable[[str], None] | None = None
) -> Iterator[Path]:
    """Hold the exclusive lock of the project ``root`` for the block; yields the lock file.

    If another run holds it, ``on_wait`` is told once (one line naming the holder) and the
    lock is retried until ``timeout`` seconds have passed, then :class:`LockTimeout`. The lock
    is the kernel's (``flock``), so a killed holder releases it at once; the pid written in
    the file is only for the message.
    """
    fd, path = _lock_file(root)
    try:
        if not _try_lock(fd):
            holder = _holder(fd)
            if on_wait is not None:
                on_wait(f"waiting for another esper-migrate run{holder} on {root}")
            deadline = time.monotonic() + timeout
            while not _try_lock(fd):
                if time.monotonic() >= deadline:
                    raise LockTimeout(
                        f"another esper-migrate run{_holder(fd) or holder} holds the lock on "
                        f"{root} ({path}); gave up after {timeout:g} s"
                    )
                time.sleep(0.05)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, f"{os.getpid()}\n".encode())
        yield path
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no stale pid for the next reader
    finally:
        os.close(fd)  # releases the lock
