"""Run each student's kernel inside a bubblewrap sandbox.

``SandboxKernelManager`` is the kernel manager nbgrader's (Safe)Execute uses while
autograding (``nbgrader_config.py``).  The kernel runs under ``bwrap`` with:

* no network (its own network namespace; kernel and grader talk over Unix sockets
  in a private folder instead of TCP);
* a read-only view of the system, the Python installation, the kit's kernel package
  (``coursekit/kernel``: what runs in the student's kernel; not the grader's code) and the
  data and torch caches; no ``source/``, no gradebook, no other students' folders; the kernels import
  the grader's own kit (``PYTHONPATH``), wherever it is installed;
* write access only to its own working copy (``autograded/<student>/<assignment>``),
  its private socket folder and a fresh ``/tmp``;
* resource limits (``prlimit``): address space, CPU seconds, file size, processes.

Without bubblewrap the manager refuses to start a kernel unless the instructor set
``c.SandboxKernelManager.require_sandbox = False``; then it warns loudly and runs the
kernel unsandboxed.

**Warm kernels** (``c.SandboxKernelManager.warm``, on by default): instead of one sandbox and one fresh
``import torch`` per notebook, the first kernel of a grading process starts one sandbox with a zygote
(``coursekit.kernel.warm``) that imports the heavy modules once; every notebook's kernel is a fork of it, so each
notebook still gets a fresh interpreter (nothing of the notebook before) and each student a sandbox of its own
(``nbgrader autograde`` grades one student per process).  When the zygote cannot start, kernels start cold.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool, Integer, List, Unicode

import coursekit

SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/opt")
WARNING = ("WARNING: student notebooks are graded WITHOUT a sandbox: their code can read the solutions "
           "and the gradebook, write anywhere this user can, and use the network. "
           "Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) to grade safely.")


SECRETS = ("PASSWORD", "SECRET", "TOKEN", "PGPASSFILE", "COURSEKIT_DB_URL")


def without_secrets(env) -> dict:
    """The grader's environment minus what student code must not see (the gradebook's URL, passwords, tokens):
    a notebook could print it into its feedback."""
    return {k: v for k, v in env.items() if not any(word in k.upper() for word in SECRETS)}


@functools.lru_cache(maxsize=None)
def bwrap_works(bwrap: str = "bwrap") -> bool:
    """Whether bubblewrap exists here and can create its namespaces."""
    path = shutil.which(bwrap)
    if not path:
        return False
    try:
        return subprocess.run([path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"],
                              capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def readonly_paths(extra: list[str]) -> list[str]:
    """What a sandboxed kernel may read: Python, the kit's kernel package, the data caches, and ``extra``."""
    package = Path(coursekit.__file__).resolve().parent  # only the kernel package of the kit, not the grader's code
    paths = {sys.base_prefix, sys.prefix, str(package / "__init__.py"), str(package / "kernel")}
    paths.update(p for p in (os.environ.get(k) for k in ("COURSE_DATA_DIR", "TORCH_HOME")) if p)
    paths.update(extra)
    return sorted(str(Path(p).resolve()) for p in paths if p and Path(p).exists())


def kit_pythonpath() -> str:
    """``PYTHONPATH`` for the kernels: the folder holding the grader's own ``coursekit`` first, so the kernels import
    the same kit (and its grading helper) as the grader, wherever the kit is installed and whichever course
    shares the environment; that folder is mounted read-only."""
    kit_parent = str(Path(coursekit.__file__).resolve().parent.parent)
    rest = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != kit_parent]
    return os.pathsep.join([kit_parent] + rest)


def private_ipython_dir(private_dir: str) -> str | None:
    """A writable copy of ``$IPYTHONDIR`` (profile and startup files) inside the kernel's private folder.

    IPython ignores an IPython directory it cannot write to, and with it the startup files
    (the offline course data's checksums live in one), so the kernel gets its own copy."""
    source = os.environ.get("IPYTHONDIR")
    if not source or not Path(source).is_dir():
        return None
    copy = os.path.join(private_dir, "ipython")
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("*.sqlite*", "__pycache__"), dirs_exist_ok=True)
    return copy


def sandbox_env(ipython_dir: str | None = None, pythonpath: str | None = None) -> dict[str, str]:
    """The variables a sandboxed kernel gets on top of the grader's (and ``JPY_PARENT_PID`` goes: its pid namespace
    cannot see the grader; ``--die-with-parent`` instead)."""
    env = {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib", "COURSEKIT_SANDBOX": "bwrap"}
    env.update({k: v for k, v in (("IPYTHONDIR", ipython_dir), ("PYTHONPATH", pythonpath)) if v})
    return env


def sandbox_command(kernel_cmd: list[str], workdir: str, private_dir: str, readonly: list[str], *,
                    memory: int, cpu_seconds: int, file_size: int, processes: int, bwrap: str = "bwrap",
                    ipython_dir: str | None = None, pythonpath: str | None = None) -> list[str]:
    """The ``bwrap ... prlimit ... <kernel>`` command line."""
    args = [shutil.which(bwrap) or bwrap, "--unshare-all", "--die-with-parent", "--new-session",
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    for path in SYSTEM_PATHS:
        args += ["--ro-bind-try", path, path]
    for path in readonly:
        args += ["--ro-bind", path, path]
    args += ["--bind", workdir, workdir, "--bind", private_dir, private_dir, "--remount-ro", "/", "--chdir", workdir,
             "--unsetenv", "JPY_PARENT_PID"]
    for name, value in sandbox_env(ipython_dir, pythonpath).items():
        args += ["--setenv", name, value]
    limits = [shutil.which("prlimit") or "prlimit", f"--as={memory}", f"--cpu={cpu_seconds}",
              f"--fsize={file_size}", f"--nproc={processes}", "--"]
    return args + ["--"] + limits + kernel_cmd


# ---------------------------------------------------------------------------- warm kernels
def _host_pid(root_pid: int, inner_pid: int) -> int | None:
    """The pid, as this process sees it, of the sandboxed process that calls itself ``inner_pid``."""
    import psutil

    try:
        processes = [psutil.Process(root_pid)] + psutil.Process(root_pid).children(recursive=True)
    except psutil.Error:
        return None
    for process in processes:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                line = next((l for l in status if l.startswith("NSpid:")), "")
        except OSError:
            continue
        if line and int(line.split()[-1]) == inner_pid:
            return process.pid
    return None


class Zygote:
    """One warm interpreter (``coursekit.kernel.warm``) in its own sandbox; forks a kernel per request."""

    def __init__(self, command: list[str], socket_path: str, env: dict, cwd: str, sandboxed: bool):
        self.socket_path, self.sandboxed = socket_path, sandboxed
        self.kernels: list[ForkedKernel] = []
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env, cwd=cwd, start_new_session=True)
        atexit.register(self.stop)

    def ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if os.path.exists(self.socket_path):
                return True
            time.sleep(0.05)
        return False

    def alive(self) -> bool:
        return self.process.poll() is None

    def busy(self) -> bool:
        self.kernels = [k for k in self.kernels if k.poll() is None]
        return bool(self.kernels)

    def fork(self, argv: list[str], env: dict, cwd: str) -> "ForkedKernel":
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.socket_path)
        conn.sendall(json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(1)
            if not chunk:
                raise RuntimeError("the warm kernel interpreter stopped")
            reply += chunk
        inner = json.loads(reply)["pid"]
        host = None if self.sandboxed else inner  # a sandbox has pids of its own
        for _ in range(40):
            host = host or _host_pid(self.process.pid, inner)
            if host:
                break
            time.sleep(0.05)
        else:
            conn.close()  # the zygote stops that kernel
            raise RuntimeError("the warm kernel started but could not be found")
        kernel = ForkedKernel(conn, host)
        self.kernels.append(kernel)
        return kernel

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class ForkedKernel:
    """What ``LocalProvisioner`` needs of a ``Popen``, for a kernel forked by a zygote."""

    stdin = stdout = stderr = None

    def __init__(self, conn: socket.socket, pid: int):
        self.conn, self.pid = conn, pid
        self.returncode: int | None = None
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    data = self.conn.recv(4096, socket.MSG_DONTWAIT | socket.MSG_PEEK)
                except BlockingIOError:
                    return None
                except OSError:
                    data = b""
                if not data:
                    self.returncode = -9  # the zygote is gone, and its kernels with it
                elif b"\n" in data:
                    self.returncode = json.loads(data.split(b"\n", 1)[0]).get("exit", -9)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("kernel", timeout)
            time.sleep(0.05)
        self.conn.close()
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        """The kernel and everything it started (DataLoader workers)."""
        import psutil

        try:
            root = psutil.Process(self.pid)
            for process in root.children(recursive=True) + [root]:
                process.kill()
        except psutil.Error:
            pass

    def terminate(self) -> None:
        self.send_signal(15)


class WarmProvisioner(LocalProvisioner):
    """Launches the kernel as a fork of the manager's zygote instead of a new process."""

    async def launch_kernel(self, cmd: list[str], **kwargs):
        km = self.parent
        argv = cmd[cmd.index("ipykernel_launcher") + 1:] if "ipykernel_launcher" in cmd else cmd[3:]
        self.process = km._zygote.fork(argv, km._kernel_env(kwargs.get("env") or dict(os.environ), km._zygote.ipython_dir),
                                       str(kwargs.get("cwd") or os.getcwd()))
        self.pid, self.pgid = self.process.pid, None
        self.cwd = kwargs.get("cwd")
        return self.connection_info


_ZYGOTES: dict[tuple, Zygote] = {}
_ZYGOTE_LOCK = threading.Lock()


class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run in a bubblewrap sandbox (see the module docstring)."""

    sandbox = Unicode("bwrap", help="'bwrap' or 'none' (no sandbox)").tag(config=True)
    require_sandbox = Bool(True, help="refuse to grade when no sandbox is available").tag(config=True)
    memory = Integer(8 * 1024**3, help="address-space limit of each kernel process (bytes)").tag(config=True)
    cpu_seconds = Integer(3600, help="CPU-time limit of each kernel process (seconds)").tag(config=True)
    file_size = Integer(1024**3, help="largest file a kernel may write (bytes)").tag(config=True)
    processes = Integer(4096, help="process/thread limit (RLIMIT_NPROC)").tag(config=True)
    readonly = List(Unicode(), help="extra folders the kernels may read").tag(config=True)
    warm = Bool(True, help="fork each kernel from one interpreter per grading process that imported "
                           "warm_imports once (see the module docstring)").tag(config=True)
    warm_imports = List(Unicode(), ["numpy", "torch", "torchvision", "matplotlib", "PIL.Image", "ipykernel.kernelapp"],
                        help="modules the warm interpreter imports before it forks kernels").tag(config=True)
    warm_start_timeout = Integer(120, help="seconds the warm interpreter may take to start").tag(config=True)

    def _use_sandbox(self) -> bool:
        if self.sandbox == "bwrap" and bwrap_works():
            return True
        if self.require_sandbox:
            raise RuntimeError(
                "No sandbox for the students' notebooks: bubblewrap (bwrap) is missing or cannot create "
                "namespaces here. Install it (Debian/Ubuntu: apt-get install bubblewrap), or, only if you "
                "accept running student code unsandboxed, set c.SandboxKernelManager.require_sandbox = False "
                "(or run with --no-sandbox).")
        self.log.warning(WARNING)
        print(WARNING, file=sys.stderr)
        return False

    async def _async_pre_start_kernel(self, **kw):
        self._sandboxed = self._use_sandbox()
        kw["env"] = without_secrets(kw.get("env") or os.environ)
        self._zygote = self._warm_zygote(kw) if self.warm else None
        if self._zygote is not None:
            self.kernel_id = self.kernel_id or kw.pop("kernel_id", None) or str(uuid.uuid4())
            self.provisioner = WarmProvisioner(kernel_id=self.kernel_id, kernel_spec=self.kernel_spec, parent=self)
        if self._sandboxed or self._zygote is not None:
            # a private folder per kernel for its connection file and Unix sockets (in the zygote's, which its
            # sandbox can reach, for a warm kernel)
            self._private_dir = tempfile.mkdtemp(prefix="kernel-", dir=getattr(self._zygote, "private_dir", None))
            self.transport = "ipc"
            self.connection_file = os.path.join(self._private_dir, "kernel.json")
            self.ip = os.path.join(self._private_dir, "ipc")
        return await super()._async_pre_start_kernel(**kw)

    # -- warm kernels --------------------------------------------------------------------
    def _sandbox_settings(self) -> dict:
        return {"memory": self.memory, "cpu_seconds": self.cpu_seconds, "file_size": self.file_size,
                "processes": self.processes}

    def _kernel_env(self, env: dict, ipython_dir: str | None) -> dict:
        """The kernel's environment as the sandbox sets it (what ``sandbox_command`` passes to bwrap)."""
        env = without_secrets(env)
        env.pop("JPY_PARENT_PID", None)
        if self._sandboxed:
            env.update(sandbox_env(ipython_dir, kit_pythonpath()))
        return env

    def _warm_zygote(self, kw: dict) -> "Zygote | None":
        """The zygote for this kernel's folder and limits: running already, or started now; None when it fails."""
        workdir = str(Path(kw.get("cwd") or os.getcwd()).resolve())
        key = (workdir, self._sandboxed, tuple(self.readonly), tuple(self.warm_imports),
               tuple(sorted(self._sandbox_settings().items())))
        with _ZYGOTE_LOCK:
            zygote = _ZYGOTES.get(key)
            if zygote is None or not zygote.alive():
                for other in [k for k, z in _ZYGOTES.items() if not z.busy()]:  # a zygote holds torch in memory:
                    _ZYGOTES.pop(other).stop()  # one per process is enough (nbgrader grades one student after another)
                zygote = self._start_zygote(workdir, dict(kw.get("env") or os.environ))
                if zygote is None:
                    return None
                _ZYGOTES[key] = zygote
        return zygote

    def _start_zygote(self, workdir: str, env: dict) -> "Zygote | None":
        private_dir = tempfile.mkdtemp(prefix="coursekit-warm-")
        atexit.register(shutil.rmtree, private_dir, True)
        socket_path = os.path.join(private_dir, "warm.sock")
        command = [sys.executable, "-m", "coursekit.kernel.warm", socket_path, *self.warm_imports]
        ipython_dir = None
        if self._sandboxed:
            ipython_dir = private_ipython_dir(private_dir)
            command = sandbox_command(command, workdir, private_dir, readonly_paths(list(self.readonly)),
                                      ipython_dir=ipython_dir, pythonpath=kit_pythonpath(),
                                      **self._sandbox_settings())
        zygote = Zygote(command, socket_path, self._kernel_env(env, ipython_dir) | {"PYTHONPATH": kit_pythonpath()}, workdir,
                        self._sandboxed)
        zygote.private_dir, zygote.ipython_dir = private_dir, ipython_dir
        if zygote.ready(self.warm_start_timeout):
            return zygote
        zygote.stop()
        self.log.warning("The warm kernel interpreter did not start; kernels start cold (slower, same grades).")
        return None

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if not getattr(self, "_sandboxed", False) or getattr(self, "_zygote", None) is not None:
            return cmd
        workdir = str(Path(self._launch_args.get("cwd") or os.getcwd()).resolve())
        return sandbox_command(cmd, workdir, self._private_dir, readonly_paths(list(self.readonly)),
                               memory=self.memory, cpu_seconds=self.cpu_seconds, file_size=self.file_size,
                               processes=self.processes, ipython_dir=private_ipython_dir(self._private_dir),
                               pythonpath=kit_pythonpath())

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and getattr(self, "_private_dir", None):  # a kernel's folder, in the zygote's or its own
            shutil.rmtree(self._private_dir, ignore_errors=True)
