"""``SafeExecute``: nbgrader's Execute preprocessor, hardened for notebooks that misbehave.

nbgrader's own Execute gives up on the whole submission when the kernel dies, and a
test cell that never ran has no outputs, which nbgrader scores as *full* points.
This subclass grades a notebook as far as it got instead:

* a kernel crash (``os._exit``, a segfault, the memory limit) stops execution with an
  error in the cell where it happened; every later code cell gets a "not run" error,
  so its test cells score 0 and its earlier cells keep their points;
* a per-notebook time budget on top of nbgrader's per-cell timeout, and a kernel that
  does not come back after a timeout interrupt is stopped the same way;
* the kernel's memory (with its children, e.g. DataLoader workers) is watched and the
  kernel is killed above ``memory_limit``;
* text and image outputs are capped per cell while they arrive;
* the kernel runs in a sandbox (``coursekit.sandbox.SandboxKernelManager``);
* before every grade cell, ``coursekit.kernel.guard`` restores what a notebook may have
  tampered with (stderr, display formatters, torch, the grading helper) and reports it.

Every such event is written into the notebook's metadata for the grading report and shown to the
student in a note at the top of the notebook (``coursekit.notes``).
"""

from __future__ import annotations

import threading
import time

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import ensure_async, run_sync
from nbformat import NotebookNode
from nbformat.v4 import new_output
from nbgrader import utils
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer

from . import notes
from .kernel import guard

def not_run(reason: str) -> NotebookNode:
    return new_output("error", ename="NotRun", evalue=f"not run: {reason}",
                      traceback=[f"NotRun: this cell was not run because {reason}"])


class _MemoryWatch(threading.Thread):
    """Kills the kernel's process tree when its resident memory passes a limit."""

    def __init__(self, pid: int, limit: int):
        super().__init__(daemon=True)
        self.pid, self.limit, self.peak, self.killed = pid, limit, 0, False
        self._stop = threading.Event()

    def run(self):
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop.wait(0.25):
            try:
                tree = [root] + root.children(recursive=True)
                rss = sum(p.memory_info().rss for p in tree)
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            if rss > self.limit:
                self.killed = True
                for p in reversed(tree):
                    try:
                        p.kill()
                    except psutil.Error:
                        pass
                return

    def stop(self):
        self._stop.set()


class SafeExecute(Execute):
    """See the module docstring; configured in ``nbgrader_config.py``."""

    budget = Integer(900, help="seconds one notebook may run in total").tag(config=True)
    memory_limit = Integer(6 * 1024**3, help="bytes of resident memory for the kernel and its children").tag(config=True)
    max_stream_chars = Integer(20_000, help="characters of printed text kept per cell").tag(config=True)
    max_images = Integer(10, help="images kept per cell").tag(config=True)
    max_image_bytes = Integer(1_500_000, help="size of one image output kept").tag(config=True)
    use_guard = Bool(True, help="restore tampered state before grade cells and report it").tag(config=True)

    def __init__(self, *args, **kwargs):
        from .sandbox import SandboxKernelManager

        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)  # configured as SandboxKernelManager
        super().__init__(*args, **kwargs)

    # -- whole notebook --------------------------------------------------------------
    def preprocess(self, nb, resources=None, km=None):
        self._started = time.monotonic()
        self._stopped: str | None = None
        self._watch: _MemoryWatch | None = None
        self._guarded = False
        self._warm = False  # whether the kernel was a fork of a warm interpreter (coursekit.sandbox)
        self._caps: dict[int, dict] = {}
        flags = guard.scan(nb)
        if flags:  # for the instructor's report only
            notes.set_value(nb, "flags", flags)
        try:
            return super().preprocess(nb, resources, km)
        finally:
            if self._watch is not None:
                self._watch.stop()
                notes.set_value(nb, "peak_memory_mb", round(self._watch.peak / 2**20))
            notes.set_value(nb, "seconds", round(time.monotonic() - self._started, 1))
            notes.set_value(nb, "warm_kernel", self._warm)
            # only now: inserting a cell while the cells are executed would shift their indices
            notes.show_events(nb)
            notes.add_table_style(nb)

    # -- one cell ----------------------------------------------------------------------
    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code" or not cell.source.strip():
            return cell, resources
        if self._stopped is None and time.monotonic() - self._started > self.budget:
            self._stop(f"the notebook used up its time budget of {self.budget} s")
        if self._stopped is not None:
            cell.outputs = [not_run(self._stopped)]
            return cell, resources
        self._start_watch()
        self._warm = self._warm or getattr(self.km, "_zygote", None) is not None
        if self.use_guard and not self._guarded:
            self._guarded = True
            self._silent(guard.INSTALL, timeout=120)  # before any student code runs
        if utils.is_grade(cell) and self.use_guard:
            self._restore_state(cell)
        try:
            cell, resources = super().preprocess_cell(cell, resources, index)
        except DeadKernelError:
            reason = self._death_reason()
            cell.outputs.append(new_output("error", ename="KernelDied", evalue=reason,
                                           traceback=[f"KernelDied: {reason}"]))
            self._stop(reason)
            return cell, resources
        except CellTimeoutError:  # interrupted, but the kernel never went idle again
            reason = "the kernel did not respond after a cell ran past its time limit"
            cell.outputs.append(new_output("error", ename="CellTimeoutError", evalue=reason,
                                           traceback=[f"CellTimeoutError: {reason}"]))
            self._stop(reason)
            self._kill()
            return cell, resources
        if any(o.get("ename") == "CellTimeoutError" for o in cell.outputs) and not self._responsive():
            self._stop("the kernel did not respond after a cell ran past its time limit")
            self._kill()
        return cell, resources

    def _stop(self, reason: str) -> None:
        self._stopped = reason
        notes.record(self.nb, "stopped", f"Execution stopped: {reason}. Later cells were not run "
                                   "and their tests score 0; earlier cells keep their points.")

    def _death_reason(self) -> str:
        if self._watch is not None and self._watch.killed:
            return f"the kernel was stopped at the memory limit of {self.memory_limit / 2**30:.1f} GB"
        return "the kernel died (a crash, os._exit(), or running out of memory)"

    # -- kernel helpers -----------------------------------------------------------------
    def _kernel_pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        process = getattr(provisioner, "process", None)
        return getattr(process, "pid", None)

    def _start_watch(self) -> None:
        if self._watch is None and self.memory_limit:
            pid = self._kernel_pid()
            if pid:
                self._watch = _MemoryWatch(pid, self.memory_limit)
                self._watch.start()

    def _kill(self) -> None:
        """Kill the kernel's process tree (it no longer answers)."""
        import psutil

        pid = self._kernel_pid()
        try:
            root = psutil.Process(pid)
            for process in root.children(recursive=True) + [root]:
                process.kill()
        except (psutil.Error, TypeError, ValueError):
            pass

    async def _async_silent(self, code: str, timeout: float, expressions: dict | None = None) -> dict | None:
        """Run code in the kernel without recording it; return the reply content or None."""
        msg_id = await ensure_async(self.kc.execute(code, silent=True, store_history=False,
                                                    user_expressions=expressions or {}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = await ensure_async(self.kc.shell_channel.get_msg(timeout=max(0.1, deadline - time.monotonic())))
            except Exception:  # noqa: BLE001 - queue.Empty or a dead channel
                return None
            if msg.get("parent_header", {}).get("msg_id") == msg_id:
                return msg["content"]
        return None

    _silent = run_sync(_async_silent)

    def _responsive(self) -> bool:
        try:
            return self._silent("pass", timeout=15) is not None
        except Exception:  # noqa: BLE001
            return False

    def _restore_state(self, cell) -> None:
        """Before a grade cell: put back what the notebook may have changed; report it."""
        try:
            reply = self._silent(guard.RESTORE, timeout=60, expressions={"r": guard.REPORT_EXPRESSION})
        except Exception:  # noqa: BLE001 - never let the guard break grading
            return
        if not reply:
            return
        value = reply.get("user_expressions", {}).get("r", {})
        text = value.get("data", {}).get("text/plain", "") if value.get("status") == "ok" else ""
        found = guard.parse_report(text)
        grade_id = cell.metadata.nbgrader.get("grade_id")
        for item in found:
            text = f"Before the test cell `{grade_id}` the grader restored {item} (changed by the notebook)."
            notes.append(self.nb, "tampering", {"cell": grade_id, "what": item})
            notes.record(self.nb, "tampering", text)

    # -- output caps --------------------------------------------------------------------
    def output(self, outs, msg, display_id, cell_index):
        caps = self._caps.setdefault(cell_index, {"chars": 0, "images": 0, "noted": set()})
        content = msg.get("content", {})
        if msg["msg_type"] == "stream":
            text = content.get("text", "")
            room = self.max_stream_chars - caps["chars"]
            caps["chars"] += len(text)
            if room <= 0:
                return self._cap_note(outs, caps, "text", f"printed text cut at {self.max_stream_chars:,} characters")
            if len(text) > room:
                msg = {**msg, "content": {**content, "text": text[:room]}}
        elif msg["msg_type"] in ("display_data", "execute_result", "update_display_data"):
            images = [k for k in content.get("data", {}) if k.startswith("image/")]
            if images:
                size = sum(len(str(content["data"][k])) for k in images)
                caps["images"] += 1
                if caps["images"] > self.max_images:
                    return self._cap_note(outs, caps, "images", f"only the first {self.max_images} images kept")
                if size > self.max_image_bytes:
                    return self._cap_note(outs, caps, f"big{caps['images']}",
                                          f"an image of {size / 1e6:.1f} MB left out")
        return super().output(outs, msg, display_id, cell_index)

    @staticmethod
    def _cap_note(outs, caps, key, text):
        if key not in caps["noted"]:
            caps["noted"].add(key)
            outs.append(new_output("stream", name="stdout", text=f"\n[grader: {text}]\n"))
        return None
