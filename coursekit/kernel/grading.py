"""Rubric: the helper that hidden test cells use to grade like a careful human, line by line.

A hidden test cell reads like a rubric::

    from coursekit.kernel.grading import Rubric
    rubric = Rubric("2(f)", points=5)
    trained = rubric.attempt(train_elman, names, genders, epochs=2,
                             stand_ins={"ElmanNet": _ReferenceNet},  # always: 2(e) does not count here
                             undefined=None)                         # a name the student never defined
    with rubric.check(0.5, "a defined number of outputs", fail="no defined number of outputs"):
        assert trained.get() ...
    ...
    rubric.total()

Every line (``check``) prints what it checked and the points it earned and, for a deduction, the grader's
comment and what came out instead.  A human marks a slip and reads on; so does the rubric:

* **A line loses its points only for the mistake it checks.**  Student code that raises, loops forever
  or writes to stderr costs the lines that needed its result, nothing else.  When an exception decided a
  line, its comment says so first ("not checked: your `grad_cam` raised TypeError: ..."), never a
  diagnosis the code does not have, and the line is marked ``crashed`` for the grading report.
* **Collaborators are replaced, not charged again.**  ``attempt`` runs student code once for several
  lines.  ``stand_ins`` are reference versions of *other* parts (an earlier task's function, a dataset,
  a model) that are always in place; ``fallbacks`` are put in place only when the student's own ones make
  the call raise; ``undefined`` is the value given to a name the student's code uses but never defined
  (a missing ``K``): the call is retried with it, and the line that checks that name can see it.  Each
  replacement is named in the comment of every line that used the result.
* **The student's own consistent design is graded on its terms.**  ``alternatives`` are other ways to
  make the call, tried in order when the prescribed one raises: with the student's own model instead of
  the reference one of the prescribed interface, for example.  ``Attempt.via`` tells which one worked, so
  the checks compare with the right reference; the deviation is charged once, where the task asks for it.
* **Read past a missing ``return``.**  With ``keep_locals=True`` an attempt also keeps the local
  variables of the student's function when it returns, so a check can grade the matrix it built and
  charge only the missing ``return``.

The last expression, ``rubric.total()``, is a plain ``float`` in ``[0, points]``, the cell's partial score
for nbgrader, and the rubric publishes its lines as a *record* (a display output of type
``application/vnd.coursekit.rubric+json``) that the feedback, the reports and the calibration read.
Student code cannot fake that record by printing ``✘`` lines: readers take the last record of the cell,
which ``total()`` emits after every student call.

nbgrader's rules this works around (``nbgrader.utils.determine_grade``):

* any stderr output in a grade cell scores it 0 -> checks swallow stderr, at the Python level and at the
  file-descriptor level (C++ warnings from torch);
* an uncaught exception scores it 0 -> checks turn exceptions into deductions;
* a last value that is not a float literal (``np.float64(2.0)``, ``tensor(1.)``, ``True``) or is negative
  gives *full* points -> ``total()`` returns a rounded built-in ``float`` clamped at 0;
* a value above the cell's points aborts grading of that student -> clamped.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import sys
import sysconfig
import tempfile
import threading
import warnings

__all__ = ["Rubric", "Attempt", "Crash", "CheckTimeout", "RECORD_MIME", "rubric_record", "cell_records"]

RECORD_MIME = "application/vnd.coursekit.rubric+json"
_DETAIL_LIMIT = 400
_MISSING = object()
_TEST_FILES: set[str] = set()  # the code files of hidden test cells (every one creates a Rubric)
_LIBRARY_DIRS = tuple(os.path.realpath(p) for p in {
    sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"],
    os.path.dirname(os.path.abspath(__file__))})


class CheckTimeout(Exception):
    """Raised inside a check that ran longer than its time limit."""


class Crash(Exception):
    """Student code raised where a line needed its result: the line was not checked.

    ``stub``: the code raised NotImplementedError, i.e. the answer is still the release's stub (a line
    that is not done, not one decided by an exception)."""

    def __init__(self, text: str, stub: bool = False):
        super().__init__(text)
        self.stub = stub


def _is_stub(exc: BaseException | None) -> bool:
    return isinstance(exc, NotImplementedError) or (isinstance(exc, Crash) and exc.stub)


def _shorten(text: str, limit: int = _DETAIL_LIMIT) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen") or filename.startswith("<built-in"):
        return True
    if not os.path.isabs(filename) or not os.path.exists(filename):
        return False  # kernel cells (/tmp/ipykernel_*/....py) and exec'd strings are not files
    real = os.path.realpath(filename)
    return real.startswith(_LIBRARY_DIRS)


def _student_function(tb) -> str | None:
    """The name of the innermost student function in a traceback, "" for top-level cell code, None if none."""
    found = None
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename not in _TEST_FILES and not _is_library(code.co_filename):
            found = "" if code.co_name == "<module>" else code.co_name
        tb = tb.tb_next
    return found


def _crash_text(exc: BaseException) -> str | None:
    """"your `f` raised TypeError: ..." when the exception came out of student code, else None."""
    if isinstance(exc, Crash):
        return str(exc)
    if isinstance(exc, CheckTimeout):
        return f"your code {exc}"
    where = _student_function(exc.__traceback__)
    if where is None:
        return None
    who = f"your `{where}`" if where else "your code"
    if isinstance(exc, NotImplementedError):
        return f"{who} is not implemented yet (it raises NotImplementedError)"
    message = f": {exc}" if str(exc) else ""
    return _shorten(f"{who} raised {type(exc).__name__}{message}")


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
    """Capture everything written to stderr; yield a dict that gets it under "stderr"."""
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


@contextlib.contextmanager
def _names_in(namespace: dict, names: dict):
    """Put ``names`` into ``namespace`` for the duration; restore what was there."""
    saved = {key: namespace[key] for key in names if key in namespace}
    namespace.update(names)
    try:
        yield
    finally:
        for key in names:
            if key in saved:
                namespace[key] = saved[key]
            else:
                namespace.pop(key, None)


def _call_keeping_locals(fn, args, kwargs, keep: dict):
    """``fn(*args, **kwargs)``; ``keep["locals"]`` gets the local variables of fn's own frame when it returns."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return fn(*args, **kwargs)
    previous = sys.getprofile()

    def profiler(frame, event, arg):
        if event == "return" and frame.f_code is code:
            keep["locals"] = dict(frame.f_locals)

    sys.setprofile(profiler)
    try:
        return fn(*args, **kwargs)
    finally:
        sys.setprofile(previous)


def _describe_value(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else type(value).__name__


class Attempt:
    """Outcome of running student code once, for several lines to look at.

    ``value``: what the call returned; ``error``: why there is no value (None when there is one);
    ``crashed``: the error is an exception of the student's code (not a failed expectation);
    ``notes``: the replacements that were needed, e.g. "K = None (your `train_elman` uses K, which is not
    defined)"; ``undefined``: the names given a value because the student never defined them;
    ``via``: the label of the alternative call that worked (None: the prescribed call);
    ``first_error``: why the prescribed call failed when an alternative or a fallback was needed;
    ``locals``: the student function's local variables when it returned (``keep_locals=True``).
    """

    def __init__(self, what: str, value=None, error: str | None = None, stderr: str = "", rubric=None,
                 crashed: bool = False):
        self.what, self.value, self.error, self.stderr = what, value, error, stderr
        self.crashed = crashed
        self.stub = False
        self.notes: list[str] = []
        self.undefined: list[str] = []
        self.via: str | None = None
        self.first_error: str | None = None
        self.locals: dict = {}
        self._rubric = rubric

    @property
    def ok(self) -> bool:
        return self.error is None

    def get(self):
        """The value; raises ``Crash`` (the line is "not checked") when the student's code raised."""
        if self._rubric is not None:
            self._rubric._used(self)
        if self.error is not None:
            if self.crashed:
                raise Crash(self.error, stub=self.stub)
            raise AssertionError(f"{self.what} failed: {self.error}")
        return self.value


class _Check:
    """Context manager for one all-or-nothing rubric line."""

    def __init__(self, rubric: "Rubric", points: float, what: str, fail: str | None, timeout):
        self.rubric, self.points, self.what, self.fail = rubric, float(points), what, fail
        self.timeout = timeout
        self.attempts: list[Attempt] = []
        self._stack = contextlib.ExitStack()

    def __enter__(self):
        self._captured = self._stack.enter_context(_quiet())
        self._stack.enter_context(_time_limit(self.timeout))
        self.rubric._current.append(self)
        return self

    def __exit__(self, exc_type, exc, tb):
        self.rubric._current.remove(self)
        self._stack.close()  # stop the timer and the capture first
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            return False  # the cell's own timeout: let nbgrader see it
        crash = _crash_text(exc) if exc is not None and not _is_test_assertion(exc) else None
        if exc is None:
            detail = None
        elif crash is not None:
            detail = crash
        elif isinstance(exc, AssertionError):
            detail = _shorten(str(exc)) if str(exc) else "the check failed"
        else:
            detail = _shorten(f"the check raised {type(exc).__name__}: {exc}")
        notes = list(dict.fromkeys(n for a in self.attempts for n in a.notes))
        kind = None if crash is None else "stub" if _is_stub(exc) else "crash"
        self.rubric._record(self.points, self.what, self.fail, detail, kind, notes, self._captured.get("stderr", ""))
        return True  # never let student errors escape the cell


def _is_test_assertion(exc: BaseException) -> bool:
    """An AssertionError raised by the hidden test itself (not by an ``assert`` in the student's code)."""
    return isinstance(exc, AssertionError) and _student_function(exc.__traceback__) is None


class Rubric:
    """Partial credit for one grade cell; see the module docstring."""

    def __init__(self, task: str, points: float, timeout: float | None = 60, namespace: dict | None = None):
        caller = sys._getframe(1)
        _TEST_FILES.add(caller.f_code.co_filename)
        self.task = task
        self.points = float(points)
        self.timeout = timeout
        self.namespace = namespace if namespace is not None else caller.f_globals  # the notebook's globals
        self.items: list[dict] = []
        self._current: list[_Check] = []
        self._shown: set[str] = set()

    # -- lines ----------------------------------------------------------------
    def check(self, points: float, what: str, fail: str | None = None, timeout: float | None = -1):
        """All-or-nothing line: full ``points`` unless the block raises.

        ``what`` says what earns the points; ``fail`` is the grader's comment for the deduction (defaults
        to ``what``).  The exception's message, an assertion message for example, is appended as the
        detail; an exception of the student's code turns the line into "not checked: ...".
        """
        return _Check(self, points, what, fail, self.timeout if timeout == -1 else timeout)

    def award(self, points: float, out_of: float, what: str, comment: str = "", crashed: bool = False) -> None:
        """Record a graded amount directly (e.g. negative marking), 0 <= points <= out_of."""
        earned = min(max(float(points), 0.0), float(out_of))
        text = f"{what}: {comment}" if comment else what
        self.items.append(dict(points=earned, out_of=float(out_of), what=what, comment=text if earned < out_of else "",
                               note="", crashed=bool(crashed)))
        self._print(earned, float(out_of), text)

    def attempt(self, fn, *args, stand_ins: dict | None = None, fallbacks: dict | None = None,
                undefined=_MISSING, alternatives=(), keep_locals: bool = False, name: str | None = None,
                **kwargs) -> Attempt:
        """Run ``fn(*args, **kwargs)`` with the lines' protections, without scoring it; see the module docstring.

        ``stand_ins``: ``{global name: reference}`` in place for the call; ``fallbacks``: the same, used only
        when the call raises; ``undefined``: the value for names the student's code uses without defining
        them; ``alternatives``: ``[(label, callable), ...]`` tried in order when the call still raises;
        ``keep_locals``: keep the local variables of ``fn`` when it returns; ``name``: how ``fn`` is named
        in the comments (default: its ``__name__``).
        """
        label = name or getattr(fn, "__name__", "the call")
        result = Attempt(f"{label}()", rubric=self)
        bound: list[tuple[dict, str]] = []  # (namespace, name): undefined names given a value
        extra: dict = {}  # fallbacks in place
        first_exc = None
        with _quiet() as captured, _names_in(self.namespace, stand_ins or {}), contextlib.ExitStack() as binds:
            while True:
                with _names_in(self.namespace, extra):
                    ok, value, exc = self._run(fn, args, kwargs, keep_locals, result)
                if ok:
                    break
                if first_exc is None:
                    first_exc, result.first_error = exc, _error_text(exc)
                missing, where = _undefined_name(exc, self.namespace)
                if undefined is not _MISSING and missing and missing not in result.undefined and len(bound) < 5:
                    binds.enter_context(_names_in(where, {missing: undefined}))
                    bound.append((where, missing))
                    result.undefined.append(missing)
                    result.notes.append(f"{missing} = {_describe_value(undefined)} (your `{label}` uses {missing}, "
                                        f"which is not defined)")
                    continue
                if fallbacks and not extra:
                    extra = dict(fallbacks)
                    continue
                break
            if ok and extra:
                result.notes.append(f"checked with the reference {', '.join(f'`{k}`' for k in extra)} in place of "
                                    f"yours ({result.first_error})")
            for alternative, call in alternatives if not ok else ():
                with _names_in(self.namespace, extra):
                    ok, value, _ = self._run(call, (), {}, False, result)
                if ok:
                    result.via = alternative
                    result.notes.append(f"checked with {alternative}: with the prescribed interface "
                                        f"{result.first_error}")
                    break
        result.stderr = captured.get("stderr", "")
        if ok:
            result.value = value
            if not result.notes:
                result.first_error = None
        else:
            result.crashed = _crash_text(first_exc) is not None
            result.stub = _is_stub(first_exc)
            result.error = result.first_error
        return result

    def _run(self, fn, args, kwargs, keep_locals, result):
        try:
            with _time_limit(self.timeout):
                if keep_locals:
                    kept: dict = {}
                    value = _call_keeping_locals(fn, args, kwargs, kept)
                    result.locals = kept.get("locals", {})
                else:
                    value = fn(*args, **kwargs)
            return True, value, None
        except Exception as exc:  # noqa: BLE001 - student code may raise anything
            return False, None, exc

    # -- results --------------------------------------------------------------
    def total(self) -> float:
        """Print the summary, publish the record and return the score as nbgrader needs it."""
        declared = sum(item["out_of"] for item in self.items)
        earned = sum(item["points"] for item in self.items)
        if not math.isclose(declared, self.points):
            print(f"NOTE for the instructor: the lines of {self.task} add up to {declared:g}, "
                  f"not {self.points:g} points")
        score = round(min(max(earned, 0.0), self.points), 4)
        print(f"{self.task}: {score:g} / {self.points:g} points")
        sys.stdout.flush()
        _publish(self.record(score))
        return float(score)

    def record(self, score: float | None = None) -> dict:
        """What the feedback and the reports read: the task, its points and every line."""
        if score is None:
            score = round(min(max(sum(i["points"] for i in self.items), 0.0), self.points), 4)
        return {"version": 1, "task": self.task, "points": self.points, "score": float(score),
                "lines": [{"what": i["what"], "points": i["out_of"], "earned": i["points"], "comment": i["comment"],
                           "note": i["note"], "crashed": i["crashed"]} for i in self.items]}

    @property
    def deductions(self) -> list[dict]:
        return [item for item in self.items if item["points"] < item["out_of"]]

    # -- internals ------------------------------------------------------------
    def _used(self, attempt: Attempt) -> None:
        if self._current and attempt not in self._current[-1].attempts:
            self._current[-1].attempts.append(attempt)

    def _record(self, points, what, fail, detail, kind, notes, stderr):
        ok = detail is None
        earned = points if ok else 0.0
        crashed = kind == "crash"
        if ok:
            comment = ""
        elif kind == "stub":
            comment = f"not done: {detail} (this line checks: {what})"
        elif crashed:
            comment = f"not checked: {detail} (this line checks: {what})"
        else:
            comment = (fail or what) + f" ({detail})"
        note = "; ".join(notes)
        if stderr.strip():
            note = "; ".join(filter(None, [note, f"your code wrote to stderr: {_shorten(stderr, 200)}"]))
        self.items.append(dict(points=earned, out_of=points, what=what, comment=comment, note=note, crashed=crashed))
        fresh = [n for n in notes if n not in self._shown]  # a note shared by several lines is printed once
        self._shown.update(fresh)
        if stderr.strip():
            fresh.append(f"your code wrote to stderr: {_shorten(stderr, 200)}")
        self._print(earned, points, "; ".join(filter(None, [what if ok else comment, *fresh])))

    @staticmethod
    def _print(earned, out_of, text):
        mark = "\u2714" if earned >= out_of else "\u2718"
        print(f"  {mark} {earned:g}/{out_of:g}  {text}")
        sys.stdout.flush()


def _error_text(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    crash = _crash_text(exc)
    if crash is not None:
        return crash
    if isinstance(exc, AssertionError):
        return _shorten(str(exc)) or "the check failed"
    return _shorten(f"{type(exc).__name__}: {exc}")


def _undefined_name(exc: BaseException | None, namespace: dict) -> tuple[str | None, dict]:
    """``(name, globals)``: the global name a NameError complains about, when it really is not defined, and the
    globals of the code that used it (the notebook's namespace in a kernel)."""
    if not isinstance(exc, NameError) or isinstance(exc, UnboundLocalError):
        return None, namespace
    name = getattr(exc, "name", None)
    if not name:
        import re

        match = re.search(r"name '(\w+)' is not defined", str(exc))
        name = match.group(1) if match else None
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_globals if tb is not None else namespace
    import builtins

    if not name or name in where or hasattr(builtins, name):
        return None, namespace
    return name, where


def _publish(record: dict) -> None:
    """Emit the record as a display output of the running cell (nothing outside a kernel)."""
    shell = None
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except Exception:  # noqa: BLE001 - no IPython: plain Python
        pass
    publisher = getattr(shell, "display_pub", None)
    if publisher is None or not hasattr(publisher, "publish"):
        return
    try:  # the empty HTML keeps notebook viewers and nbconvert from complaining about an unknown type
        publisher.publish(data={RECORD_MIME: record, "text/html": ""}, metadata={})
    except Exception:  # noqa: BLE001 - never let the record break grading
        pass


# -- reading the records back (feedback, reports, calibration) ----------------------------------------------
def rubric_record(cell) -> dict | None:
    """The record ``Rubric.total()`` published in a graded cell: the *last* one of its outputs, or None.

    Earlier records in the same cell can only come from student code the test called, so they are ignored.
    """
    found = None
    for output in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
        if output.get("output_type") in ("display_data", "execute_result"):
            data = output.get("data", {})
            if RECORD_MIME in data and isinstance(data[RECORD_MIME], dict):
                found = data[RECORD_MIME]
    return found


def cell_records(nb) -> dict[str, dict]:
    """``{grade_id: record}`` for the graded code cells of a notebook that have one."""
    records = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell.get("cell_type") == "code":
            record = rubric_record(cell)
            if record is not None:
                records[meta.get("grade_id")] = record
    return records


def lost_lines(record: dict) -> list[dict]:
    """The lines of a record that lost points."""
    return [line for line in record.get("lines", []) if line.get("earned", 0) < line.get("points", 0)]


def decided_by_exception(record: dict) -> tuple[float, str]:
    """``(points, comment)``: the points of the lines that an exception of the student's code decided (not checked),
    and the first such comment."""
    crashed = [line for line in lost_lines(record) if line.get("crashed")]
    return sum(line.get("points", 0) for line in crashed), (crashed[0].get("comment", "") if crashed else "")


def strip_records(nb) -> None:
    """Remove the rubric records from a notebook's outputs (they are data for the kit, not for people)."""
    for cell in nb.cells:
        if cell.get("cell_type") == "code" and cell.get("outputs"):
            cell.outputs = [o for o in cell.outputs if RECORD_MIME not in o.get("data", {})]
