"""A warm start for the kernels of one student: import torch once, fork a fresh kernel per notebook.

Every kernel used to start a new Python and import torch (3.7 s of CPU here), more than the grading
work of several notebooks.  This process (the *zygote*) runs in the student's sandbox, imports the
heavy modules once and then, for each notebook, forks a child that becomes a fresh IPython kernel: a
copy of the interpreter right after the imports, with nothing of the earlier notebooks in it.  The
grader (``coursekit.sandbox``) starts one zygote per student process and talks to it over a Unix socket:

    request  (one JSON line): {"argv": [ipykernel arguments], "env": {...}, "cwd": "..."}
    replies  (JSON lines):    {"pid": <pid in the sandbox>}, later {"exit": <status>} when the kernel exits

Closing the connection kills that kernel's process group.  When no kernel is alive, every other
process in the sandbox (a daemon a notebook left behind) is killed, so the next notebook starts clean.
The zygote exits when its standard input closes (the grader ended).

    python -m coursekit.kernel.warm <socket path> [module ...]
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import socket
import sys


def preload(modules: list[str]) -> None:
    """Import ``modules``; one that fails is skipped (the notebook's own import will say why)."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional package must not stop the zygote
            pass


def become_kernel(request: dict) -> None:
    """In the forked child: the environment, folder and arguments of the kernel, then run it (never returns)."""
    os.setsid()
    for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    import random

    random.seed()  # the forks would share the zygote's random state otherwise
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed()
    import importlib.util

    sys.argv = [importlib.util.find_spec("ipykernel_launcher").origin, *request["argv"]]
    from ipykernel import kernelapp

    try:
        kernelapp.launch_new_instance()
    finally:
        os._exit(0)


def sweep(keep: set[int]) -> None:
    """Kill every process of the sandbox but pid 1, this one and ``keep``."""
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) not in keep | {1, os.getpid()}:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except OSError:
                pass


def serve(path: str, in_sandbox: bool) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path + ".new")
    server.listen(8)
    os.rename(path + ".new", path)  # the socket appears when it accepts connections
    kernels: dict[int, socket.socket] = {}  # pid -> the grader's connection for it
    buffers: dict[socket.socket, bytes] = {}
    while True:
        ready, _, _ = select.select([server, sys.stdin, *buffers], [], [], 0.1)
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 4096):
            break  # the grader is gone
        if server in ready:
            conn, _ = server.accept()
            buffers[conn] = b""
        for conn in [c for c in ready if c in buffers]:
            try:
                chunk = conn.recv(65536)
            except OSError:  # reset by the grader
                chunk = b""
            owner = next((pid for pid, c in kernels.items() if c is conn), None)
            if not chunk:  # the grader let go of this kernel: stop it
                if owner is not None:
                    _kill_group(owner)
                del buffers[conn]
                conn.close()
                continue
            buffers[conn] += chunk
            if owner is None and b"\n" in buffers[conn]:
                request = json.loads(buffers[conn].split(b"\n", 1)[0])
                pid = os.fork()
                if pid == 0:
                    server.close()
                    for other in buffers:
                        other.close()
                    become_kernel(request)
                kernels[pid] = conn
                conn.sendall(json.dumps({"pid": pid}).encode() + b"\n")
        while kernels:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = kernels.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode() + b"\n")
                except OSError:
                    pass
            if not kernels and in_sandbox:
                sweep(set())
    for pid in kernels:
        _kill_group(pid)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def main(argv: list[str]) -> None:
    path, modules = argv[0], argv[1:]
    preload(modules)
    serve(path, in_sandbox=os.environ.get("COURSEKIT_SANDBOX") == "bwrap")


if __name__ == "__main__":
    main(sys.argv[1:])
