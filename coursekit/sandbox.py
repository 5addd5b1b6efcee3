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
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, List, Unicode

import coursekit

SYSTEM_PATHS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/opt")
WARNING = ("WARNING: student notebooks are graded WITHOUT a sandbox: their code can read the solutions "
           "and the gradebook, write anywhere this user can, and use the network. "
           "Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap) to grade safely.")


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
             "--setenv", "HOME", "/tmp", "--setenv", "MPLCONFIGDIR", "/tmp/matplotlib",
             "--setenv", "COURSEKIT_SANDBOX", "bwrap",
             "--unsetenv", "JPY_PARENT_PID"]  # its pid namespace cannot see the grader; --die-with-parent instead
    if ipython_dir:
        args += ["--setenv", "IPYTHONDIR", ipython_dir]
    if pythonpath:
        args += ["--setenv", "PYTHONPATH", pythonpath]
    limits = [shutil.which("prlimit") or "prlimit", f"--as={memory}", f"--cpu={cpu_seconds}",
              f"--fsize={file_size}", f"--nproc={processes}", "--"]
    return args + ["--"] + limits + kernel_cmd


class SandboxKernelManager(AsyncKernelManager):
    """An AsyncKernelManager whose kernels run in a bubblewrap sandbox (see the module docstring)."""

    sandbox = Unicode("bwrap", help="'bwrap' or 'none' (no sandbox)").tag(config=True)
    require_sandbox = Bool(True, help="refuse to grade when no sandbox is available").tag(config=True)
    memory = Integer(8 * 1024**3, help="address-space limit of each kernel process (bytes)").tag(config=True)
    cpu_seconds = Integer(3600, help="CPU-time limit of each kernel process (seconds)").tag(config=True)
    file_size = Integer(1024**3, help="largest file a kernel may write (bytes)").tag(config=True)
    processes = Integer(4096, help="process/thread limit (RLIMIT_NPROC)").tag(config=True)
    readonly = List(Unicode(), help="extra folders the kernels may read").tag(config=True)

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
        if self._sandboxed:
            # a private folder per kernel for its connection file and Unix sockets
            self._private_dir = tempfile.mkdtemp(prefix="coursekit-kernel-")
            self.transport = "ipc"
            self.connection_file = os.path.join(self._private_dir, "kernel.json")
            self.ip = os.path.join(self._private_dir, "ipc")
        return await super()._async_pre_start_kernel(**kw)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = super().format_kernel_cmd(extra_arguments)
        if not getattr(self, "_sandboxed", False):
            return cmd
        workdir = str(Path(self._launch_args.get("cwd") or os.getcwd()).resolve())
        return sandbox_command(cmd, workdir, self._private_dir, readonly_paths(list(self.readonly)),
                               memory=self.memory, cpu_seconds=self.cpu_seconds, file_size=self.file_size,
                               processes=self.processes, ipython_dir=private_ipython_dir(self._private_dir),
                               pythonpath=kit_pythonpath())

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart and getattr(self, "_private_dir", None):
            shutil.rmtree(self._private_dir, ignore_errors=True)
