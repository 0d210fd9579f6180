"""Runs one task's command for the local executor and records its exit status in a file.

`python task_wrapper.py EXIT_FILE COMMAND...`, started by the service in a session of its own
with a pipe on stdin. It runs nothing until the service writes a byte to that pipe, which it
does only once the process's pid and start time are committed to the store (write-ahead): if
the service dies first, the pipe reads empty and the command never runs. Then it runs the
command as its child (stdin /dev/null) and, when the child ends, writes its exit status to
EXIT_FILE atomically: the code, or minus the signal that killed it. A service that restarts
and finds this process gone reads the outcome there, since it cannot wait() for a process
it did not start.

The service signals the whole process group, which reaches the command directly; the
wrapper only notes the signal, so that it outlives the command and records its status (a
handler, unlike SIG_IGN, is not inherited across exec). SIGKILL ends both without a record.

`--tied` first (the Ray executor's tasks): after the go-ahead the wrapper forks a sentinel that
keeps reading the pipe, and when it reads end-of-file (the process that started the wrapper
is gone: a Ray worker killed with its driver, or done) it kills the whole process group, the
command and what it started included, so that a task never outlives the worker that owns it.
The sentinel, not the wrapper, does it because a Ray worker that exits kills its own
children, the wrapper among them, with SIGKILL: the sentinel is a grandchild.

Run by path with only the standard library, so that it starts fast and imports nothing of
the service.
"""

import os
import signal
import subprocess
import sys

# not noted: those that cannot be caught, do nothing by default, or report the wrapper's own fault
NOT_NOTED = {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD, signal.SIGCONT, signal.SIGURG, signal.SIGWINCH,
             signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL}
NOT_FOUND, NOT_EXECUTABLE = 127, 126  # the shell's codes for a command that cannot start


def write_exit(path: str, code: int) -> None:
    """Write `code` to `path` so that a reader sees all of it or nothing, and it survives a
    power loss once this returns."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, f"{code}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    folder = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def sentinel() -> None:
    """In a forked child: read the pipe until end-of-file, then kill this process group."""
    while os.read(0, 1):
        pass
    os.killpg(0, signal.SIGKILL)


def main(argv: list[str]) -> int:
    tied = argv[0] == "--tied"
    exit_file, command = argv[tied], argv[tied + 1:]
    for sig in signal.valid_signals() - NOT_NOTED:
        try:
            signal.signal(sig, lambda *_: None)
        except (OSError, ValueError):
            pass  # reserved on this platform (the C library's real-time signals)
    if os.read(0, 1) == b"":
        return 0  # the service died before recording this process: the command must not run
    if tied and os.fork() == 0:
        sentinel()
    try:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    except OSError as exc:
        print(f"altostrat: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
        code = NOT_FOUND if isinstance(exc, FileNotFoundError) else NOT_EXECUTABLE
    else:
        code = child.wait()
    write_exit(exit_file, code)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
