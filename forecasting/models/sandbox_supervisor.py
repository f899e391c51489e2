"""The supervisor of one sandboxed command: plug-in code never runs in this process.

``python -m forecasting.models.sandbox_supervisor MEMORY_MB [--no-pid-namespace] -- COMMAND...``

1. Becomes a child subreaper: whatever the command starts and abandons (a double fork,
   ``setsid``, a daemon) is re-parented here, not to init.
2. Leaves the network (a new network namespace: no interfaces but a down loopback) and,
   where the kernel allows it, the process-id namespace; both with a user namespace when
   unprivileged. The result is passed to the command in ``FORECASTING_SANDBOX``.
3. Forks the command with an address-space limit (``RLIMIT_AS``) and a parent-death
   signal: when this supervisor dies, however it dies, the command gets SIGKILL, and in
   a private process-id namespace the kernel then kills everything the command started.
4. Waits for the command, then kills every process left (its own children, re-parented
   orphans) and exits with the command's exit status, or dies by the command's signal.
   SIGTERM, SIGINT or SIGHUP to the supervisor kill the command and everything it started.

Only the standard library: it starts in milliseconds.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
from typing import NoReturn

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000
_CLONE_NEWPID = 0x20000000
ENVIRONMENT_KEY = "FORECASTING_SANDBOX"
NETWORK_ENFORCED = "enforced (private network namespace: no interfaces but a down loopback)"
PROCESSES_NAMESPACE = "enforced (private process-id namespace and subreaper: everything it starts is killed with it)"
PROCESSES_SUBREAPER = "enforced (subreaper: everything it starts is killed with it)"

_libc = ctypes.CDLL(None, use_errno=True)


def _map_own_ids(uid: int, gid: int) -> None:
    """Keep our own uid and gid inside a new user namespace (files stay readable)."""
    for path, content in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                          ("/proc/self/gid_map", f"{gid} {gid} 1")):
        try:
            with open(path, "w") as handle:
                handle.write(content)
        except OSError:
            continue


def _unshare(flags: int) -> bool:
    return int(_libc.unshare(flags)) == 0


def isolate(pid_namespace: bool = True) -> dict[str, str]:
    """Leave the network (and, where allowed, the process-id) namespace; say what was enforced."""
    subreaper = int(_libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    processes = PROCESSES_SUBREAPER if subreaper else "not enforced on this machine (no subreaper)"
    uid, gid = os.getuid(), os.getgid()
    attempts = [(_CLONE_NEWNET, False), (_CLONE_NEWUSER | _CLONE_NEWNET, True)]
    if pid_namespace:
        attempts = [(flags | _CLONE_NEWPID, user) for flags, user in attempts] + attempts
    for flags, user in attempts:
        if _unshare(flags):
            if user:
                _map_own_ids(uid, gid)
            if flags & _CLONE_NEWPID and subreaper:
                processes = PROCESSES_NAMESPACE
            return {"network": NETWORK_ENFORCED, "processes": processes}
    reason = os.strerror(ctypes.get_errno())
    return {"network": f"not enforced on this machine (unshare: {reason})", "processes": processes}


def _children() -> list[int]:
    """Processes whose parent is this one (scanning /proc: works on every kernel)."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.append(int(entry))
    return found


def kill_everything() -> None:
    """SIGKILL every child until none is left (orphans keep arriving here while their parents die)."""
    while True:
        for pid in _children():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _stop(signum: int, frame: object) -> NoReturn:
    kill_everything()
    os._exit(128 + signum)


def _run_command(command: list[str], memory_mb: int, status: dict[str, str], parent: int) -> NoReturn:
    try:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent and os.getppid() != 0:  # the supervisor died before the line above
            os._exit(1)
        limit = memory_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
        for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(number, signal.SIG_DFL)
        environment = {**os.environ, ENVIRONMENT_KEY: json.dumps(status)}
        os.execvpe(command[0], command, environment)
    except BaseException as exc:  # never return into the supervisor's code
        os.write(2, f"sandbox: cannot start {command[0]}: {exc}\n".encode())
    os._exit(127)


def main(argv: list[str]) -> int:
    options = argv[1 : argv.index("--")] if "--" in argv else None
    if not argv or options is None or not set(options) <= {"--no-pid-namespace"} or argv[-1] == "--":
        print("usage: python -m forecasting.models.sandbox_supervisor MEMORY_MB [--no-pid-namespace] -- COMMAND...",
              file=sys.stderr)
        return 2
    memory_mb, command = int(argv[0]), argv[argv.index("--") + 1 :]
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, _stop)
    status = isolate(pid_namespace="--no-pid-namespace" not in options)
    me = os.getpid()
    child = os.fork()
    if child == 0:
        _run_command(command, memory_mb, status, me)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 1)  # only the command holds the output pipe: its reader sees the end when it ends
    _, wait_status = os.waitpid(child, 0)
    kill_everything()
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    return os.waitstatus_to_exitcode(wait_status) if not os.WIFSIGNALED(wait_status) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
