"""Rubric: the helper that hidden test cells use to give partial credit.

A hidden test cell reads like a rubric::

    from coursekit.grading import Rubric
    rubric = Rubric("3(d)", points=5)
    with rubric.check(1, "pads only vertically: feature maps 32x28, 16x10, 8x1",
                      fail="padding is not (2, 0): the digits' neighbours are padded too"):
        assert shapes == expected, f"got {shapes}"
    ...
    rubric.total()

Every check prints one line to stdout: what was checked, the points it earned and,
for a deduction, the grader's comment and what came out instead.  Student code
that raises, loops forever or writes to stderr costs the points of that check
only.  The cell's last expression, ``rubric.total()``, is a plain ``float`` in
``[0, points]``, which is what nbgrader reads as the cell's partial score.

nbgrader's rules this works around (``nbgrader.utils.determine_grade``):

* any stderr output in a grade cell scores it 0 -> checks swallow stderr, at the
  Python level and at the file-descriptor level (C++ warnings from torch);
* an uncaught exception scores it 0 -> checks turn exceptions into deductions;
* a last value that is not a float literal (``np.float64(2.0)``, ``tensor(1.)``,
  ``True``) or is negative gives *full* points -> ``total()`` returns a rounded
  built-in ``float`` clamped at 0;
* a value above the cell's points aborts grading of that student -> clamped.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import signal
import sys
import tempfile
import threading
import warnings

__all__ = ["Rubric", "Attempt", "CheckTimeout", "deductions"]

_DETAIL_LIMIT = 400


class CheckTimeout(Exception):
    """Raised inside a check that ran longer than its time limit."""


def _shorten(text: str, limit: int = _DETAIL_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AssertionError):
        return _shorten(str(exc)) if str(exc) else "the check failed"
    if isinstance(exc, CheckTimeout):
        return str(exc)
    return _shorten(f"your code raised {type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _fd_redirected(fd: int, target):
    """Point file descriptor ``fd`` at ``target`` (a real file) for the duration."""
    try:
        saved = os.dup(fd)
    except OSError:  # no such descriptor (embedded interpreters): nothing to do
        yield
        return
    try:
        os.dup2(target.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


@contextlib.contextmanager
def _quiet():
    """Capture everything written to stderr; yield a function that returns it."""
    buffer = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as raw, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            sys.stderr.flush()
        except Exception:
            pass
        with _fd_redirected(2, raw), contextlib.redirect_stderr(buffer):
            captured = {}
            yield captured
        raw.seek(0)
        text = buffer.getvalue() + raw.read().decode("utf-8", "replace")
        text += "".join(f"{w.category.__name__}: {w.message}\n" for w in caught)
        captured["stderr"] = text


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def on_alarm(signum, frame):
        raise CheckTimeout(f"did not finish within {seconds:g} s (endless loop?)")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Attempt:
    """Outcome of running student code once, for several checks to look at."""

    def __init__(self, what: str, value=None, error: str | None = None, stderr: str = ""):
        self.what, self.value, self.error, self.stderr = what, value, error, stderr

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self):
        """The value, or an AssertionError that says why there is none."""
        if self.error is not None:
            raise AssertionError(f"{self.what} failed: {self.error}")
        return self.value


class _Check:
    """Context manager for one all-or-nothing rubric item."""

    def __init__(self, rubric: "Rubric", points: float, what: str, fail: str | None, timeout):
        self.rubric, self.points, self.what, self.fail = rubric, float(points), what, fail
        self.timeout = timeout
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        self._captured = self._stack.enter_context(_quiet())
        self._stack.enter_context(_time_limit(self.timeout))
        return self

    def __exit__(self, exc_type, exc, tb):
        self._stack.close()  # stop the timer and the capture first
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            return False  # the cell's own timeout: let nbgrader see it
        detail = _describe(exc) if exc is not None else None
        self.rubric._record(self.points, self.what, self.fail, detail, self._captured.get("stderr", ""))
        return True  # never let student errors escape the cell


class Rubric:
    """Partial credit for one grade cell; see the module docstring."""

    def __init__(self, task: str, points: float, timeout: float | None = 60):
        self.task = task
        self.points = float(points)
        self.timeout = timeout
        self.items: list[dict] = []

    # -- checks ---------------------------------------------------------------
    def check(self, points: float, what: str, fail: str | None = None, timeout: float | None = -1):
        """All-or-nothing item: full ``points`` unless the block raises.

        ``what`` says what earns the points; ``fail`` is the grader's comment
        for the deduction (defaults to ``what``).  The exception's message, an
        assertion message for example, is appended as the detail.
        """
        return _Check(self, points, what, fail, self.timeout if timeout == -1 else timeout)

    def award(self, points: float, out_of: float, what: str, comment: str = "") -> None:
        """Record a graded amount directly (e.g. negative marking), 0 <= points <= out_of."""
        earned = min(max(float(points), 0.0), float(out_of))
        self.items.append(dict(points=earned, out_of=float(out_of), what=what, comment=comment, note=""))
        self._print(earned, float(out_of), f"{what}: {comment}" if comment else what)

    def attempt(self, fn, *args, **kwargs) -> Attempt:
        """Run ``fn(*args, **kwargs)`` with the checks' protections, without scoring it.

        Use it for student code whose result several checks examine, so that
        one failure is reported by each check that needs the result.
        """
        what = f"{getattr(fn, '__name__', 'the call')}()"
        value = error = None
        with _quiet() as captured:
            try:
                with _time_limit(self.timeout):
                    value = fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - student code may raise anything
                error = _describe(exc)
        return Attempt(what, value, error, captured.get("stderr", ""))

    # -- results --------------------------------------------------------------
    def total(self) -> float:
        """Print the summary and return the score as nbgrader needs it."""
        declared = sum(item["out_of"] for item in self.items)
        earned = sum(item["points"] for item in self.items)
        if not math.isclose(declared, self.points):
            print(f"NOTE for the instructor: the checks of {self.task} add up to {declared:g}, "
                  f"not {self.points:g} points")
        score = round(min(max(earned, 0.0), self.points), 4)
        print(f"{self.task}: {score:g} / {self.points:g} points")
        return float(score)

    @property
    def deductions(self) -> list[dict]:
        return [item for item in self.items if item["points"] < item["out_of"]]

    # -- internals ------------------------------------------------------------
    def _record(self, points, what, fail, detail, stderr):
        ok = detail is None
        earned = points if ok else 0.0
        comment = "" if ok else (fail or what) + (f" ({detail})" if detail else "")
        note = f"your code wrote to stderr: {_shorten(stderr, 200)}" if stderr.strip() else ""
        self.items.append(dict(points=earned, out_of=points, what=what, comment=comment, note=note))
        self._print(earned, points, "; ".join(filter(None, [what if ok else comment, note])))

    @staticmethod
    def _print(earned, out_of, text):
        mark = "\u2714" if earned >= out_of else "\u2718"
        print(f"  {mark} {earned:g}/{out_of:g}  {text}")
        sys.stdout.flush()


_DEDUCTION = re.compile(r"^\s*\u2718\s+(\S+/\S+)\s+(.*)$")


def deductions(output: str) -> list[tuple[str, str]]:
    """``(points, text)`` of every line ``Rubric`` printed in ``output`` for an item that lost points,
    e.g. ``("0/1", "missing activation function (...)")`` (the feedback and the reports read them)."""
    return [(m.group(1), m.group(2)) for m in map(_DEDUCTION.match, output.splitlines()) if m]
