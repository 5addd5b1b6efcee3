"""Keep scores honest: undo in-kernel tampering before test cells, flag what cannot be undone.

Two halves:

* **In the kernel** (sent by ``coursekit.execute.SafeExecute``): :func:`install` runs
  silently before the first cell and snapshots what grading relies on: ``sys.stdout``/
  ``sys.stderr``/hooks, IPython's ``showtraceback``/``run_cell``/display formatters/event
  callbacks/input transformers, the builtins, and the attributes of the grading helper,
  torch, ``torch.nn.functional``, ``torch.testing``, ``torch.Tensor``, ``nn.Module`` and numpy.
  :func:`restore` runs silently before every test cell, puts every changed entry back and
  names it, so a notebook that, say, makes every float display as ``5.0`` or replaces
  ``torch.allclose`` gets graded with the real ones, and the instructor learns about it.
* **Outside** (:func:`scan`): the student's cells are searched for code that reaches into
  the grader (the kernel's internals, ``sys.modules``, ``gc``, ``ctypes``, the grading
  helper, ``os._exit``, network access, ...).  Such code could defeat any in-process
  check, so the notebook is flagged for manual review with the reason.
"""

from __future__ import annotations

import ast
import json
import re
import sys

INSTALL = "import coursekit.kernel.guard as _coursekit_guard; _coursekit_guard.install(); del _coursekit_guard"
RESTORE = ("import sys as _s; _coursekit_guard_report = _s.modules['coursekit.kernel.guard'].restore() "
           "if 'coursekit.kernel.guard' in _s.modules else '[\"the grader\\'s guard module\"]'; del _s")
REPORT_EXPRESSION = "_coursekit_guard_report"

_MODULES = ("builtins", "os", "signal", "time", "io", "contextlib", "warnings", "tempfile", "threading", "math",
            "torch", "torch.nn.functional", "torch.testing", "numpy", "numpy.testing")
_CLASSES = (("coursekit.kernel.grading", "Rubric"), ("coursekit.kernel.grading", "_Check"),
            ("coursekit.kernel.grading", "Attempt"), ("coursekit.kernel.grading", "Crash"),
            ("coursekit.kernel.inspect", "TracedRun"), ("coursekit.kernel.gradcam", "FeatureTap"),
            ("torch", "Tensor"), ("torch.nn", "Module"))


def _kernel_modules() -> tuple[str, ...]:
    """Every module of the kit's kernel package (``coursekit.kernel``): the guard protects it as a whole."""
    import pkgutil

    import coursekit.kernel as package

    return tuple(f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
                 if f"{package.__name__}.{info.name}" != __name__)  # the guard's own state changes on purpose


_SYS = ("stdout", "stderr", "displayhook", "__stdout__", "__stderr__")
_KERNEL_OWNED = ("_", "__", "___", "input", "raw_input")  # ipykernel sets these for every request
_SHELL_METHODS = ("showtraceback", "showsyntaxerror", "run_cell", "run_cell_async", "run_ast_nodes",
                  "run_code", "transform_cell", "_showtraceback")

_snapshot: dict | None = None


def _shell():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def install() -> None:
    """Snapshot the state grading relies on (call before any student code runs)."""
    global _snapshot
    import importlib
    import tempfile

    tempfile.gettempdir()  # initialise the lazy globals now, so that using them later is no change
    tempfile._get_candidate_names()
    modules = _MODULES + _kernel_modules()
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - an optional module (numpy/torch) may be missing
            pass
    shell = _shell()
    snap = {
        "modules": {name: (sys.modules[name], dict(vars(sys.modules[name])))
                    for name in modules if name in sys.modules},
        "classes": {},
        "sys": {name: getattr(sys, name) for name in _SYS},
        "trace": (sys.gettrace(), sys.getprofile()),
    }
    for module, cls in _CLASSES:
        if module in sys.modules and hasattr(sys.modules[module], cls):
            klass = getattr(sys.modules[module], cls)
            snap["classes"][f"{module}.{cls}"] = (klass, dict(vars(klass)))
    if shell is not None:
        formatters = shell.display_formatter.formatters
        snap["shell"] = {
            "instance": dict(vars(shell)),
            "class": {m: getattr(type(shell), m, None) for m in _SHELL_METHODS},
            "displayhook": shell.displayhook,
            "display_formatter": shell.display_formatter,
            "formatters": dict(formatters),
            "printers": {mime: _watched_printers(f) for mime, f in formatters.items()},
            "callbacks": {event: list(cbs) for event, cbs in shell.events.callbacks.items()},
            "transformers": (list(shell.input_transformers_cleanup), list(shell.input_transformers_post),
                             list(shell.ast_transformers)),
        }
    _snapshot = snap


def restore() -> str:
    """Put back everything that changed since :func:`install`; return what, as JSON."""
    if _snapshot is None:
        return json.dumps([])
    changed = []
    snap = _snapshot

    for name, (module, saved) in snap["modules"].items():
        if sys.modules.get(name) is not module:
            sys.modules[name] = module
            changed.append(f"the module {name}")
        current = vars(module)
        for key, value in saved.items():
            if (key.startswith("__") and key not in ("__import__", "__build_class__")) or key in _KERNEL_OWNED:
                continue
            new = current.get(key, _MISSING)
            if new is not value:
                if _library_made(new):  # e.g. torch wrapping its own functions when torch._dynamo loads
                    saved[key] = new
                    continue
                current[key] = value
                changed.append(f"{name}.{key}")

    for qualname, (klass, saved) in snap["classes"].items():
        for key, value in saved.items():
            if key in ("__dict__", "__weakref__", "__doc__", "__annotations__", "__parameters__"):
                continue
            new = klass.__dict__.get(key, _MISSING)
            if new is not value:
                if _library_made(new):
                    saved[key] = new
                    continue
                try:
                    setattr(klass, key, value)
                    changed.append(f"{qualname}.{key}")
                except (TypeError, AttributeError):
                    pass

    for name, value in snap["sys"].items():
        if getattr(sys, name) is not value:
            setattr(sys, name, value)
            changed.append(f"sys.{name}")
    if (sys.gettrace(), sys.getprofile()) != snap["trace"]:
        sys.settrace(snap["trace"][0])
        sys.setprofile(snap["trace"][1])
        changed.append("a trace or profile function (sys.settrace/setprofile)")

    shell = _shell()
    saved = snap.get("shell")
    if shell is not None and saved is not None:
        for method in _SHELL_METHODS:
            if method in vars(shell) and method not in saved["instance"]:
                delattr(shell, method)
                changed.append(f"IPython's {method}")
            if getattr(type(shell), method, None) is not saved["class"][method]:
                setattr(type(shell), method, saved["class"][method])
                changed.append(f"IPython's {method} (class)")
        if shell.displayhook is not saved["displayhook"]:
            shell.displayhook = saved["displayhook"]
            changed.append("IPython's display hook")
        if shell.display_formatter is not saved["display_formatter"]:
            shell.display_formatter = saved["display_formatter"]
            changed.append("IPython's display formatter")
        formatters = shell.display_formatter.formatters
        if dict(formatters) != saved["formatters"]:
            formatters.clear()
            formatters.update(saved["formatters"])
            changed.append("IPython's display formatters")
        for mime, f in formatters.items():
            printers = saved["printers"].get(mime)
            if printers is not None and _watched_printers(f) != printers:
                for key in list(_watched_printers(f)):
                    f.type_printers.pop(key, None)
                    f.deferred_printers.pop(key, None)
                for key, printer in printers.items():
                    (f.deferred_printers if isinstance(key, tuple) else f.type_printers)[key] = printer
                changed.append(f"IPython's {mime} display of numbers, strings or tensors")
        for event, callbacks in saved["callbacks"].items():
            current = shell.events.callbacks.get(event, [])
            kept = [cb for cb in current if cb in callbacks or _from_library(cb)]
            kept += [cb for cb in callbacks if cb not in kept]
            if kept != current:
                current[:] = kept
                changed.append(f"IPython event callbacks ({event})")
        lists = (shell.input_transformers_cleanup, shell.input_transformers_post, shell.ast_transformers)
        for current, original in zip(lists, saved["transformers"]):
            kept = [t for t in current if t in original or _from_library(t)]
            kept += [t for t in original if t not in kept]
            if kept != current:
                current[:] = kept
                changed.append("IPython input or AST transformers")
    return json.dumps(changed)


_MISSING = object()
_LIBRARIES = ("IPython", "ipykernel", "matplotlib", "matplotlib_inline", "ipywidgets", "tqdm", "torch", "numpy")
_WATCHED_TYPES = ("builtins.float", "builtins.int", "builtins.str", "builtins.bool", "builtins.NoneType",
                  "builtins.list", "builtins.tuple", "builtins.dict")
_WATCHED_MODULES = ("numpy", "torch", "builtins")


def _library_made(value) -> bool:
    """Whether a changed attribute is a function written in an installed library, not in a notebook.

    Libraries replace some of their own attributes at run time (torch wraps ``torch.manual_seed``
    when ``torch._dynamo`` loads).  A notebook's replacement is code defined in the notebook (its
    file is the kernel's cell file) or a builtin, so it is not taken for one.
    """
    import os

    func = getattr(value, "__func__", value)
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    filename = os.path.realpath(code.co_filename)
    kit = os.path.dirname(os.path.realpath(__file__))
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
    return any(filename.startswith(p + os.sep) for p in prefixes) and not filename.startswith(kit + os.sep)


def _from_library(obj) -> bool:
    """Callbacks that libraries register themselves (matplotlib's inline backend, ...) are fine."""
    module = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", "") or ""
    return module.split(".")[0] in _LIBRARIES


def _watched_printers(formatter) -> dict:
    """The printers a notebook could use to fake a score: for numbers, strings, numpy and torch."""
    watched = {}
    for cls, printer in formatter.type_printers.items():
        name = f"{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', '')}"
        if name in _WATCHED_TYPES or name.split(".")[0] in _WATCHED_MODULES:
            watched[cls] = printer
    for key, printer in formatter.deferred_printers.items():
        if key[0].split(".")[0] in _WATCHED_MODULES:
            watched[key] = printer
    return watched


def parse_report(text: str) -> list[str]:
    """The list :func:`restore` returned, from the text/plain repr of its JSON string."""
    try:
        return list(json.loads(ast.literal_eval(text)))
    except (ValueError, SyntaxError, TypeError):
        return ["the grader's guard (its report could not be read)"] if text else []


# --------------------------------------------------------------------------- static scan
SUSPICIOUS = [
    (r"\bget_ipython\s*\(|\bInteractiveShell\b|\bshowtraceback\b|\brun_cell\b", "reaches into the IPython kernel"),
    (r"\bdisplay_formatter\b|\bformatters\b|\bdisplayhook\b|\bexcepthook\b", "changes how results are displayed"),
    (r"\bsys\s*\.\s*(stderr|stdout|__stderr__|__stdout__)\s*=|redirect_stderr", "redirects sys.stderr or sys.stdout"),
    (r"\bsys\s*\.\s*modules\b|\bimportlib\b|__import__", "manipulates imported modules"),
    (r"\b__builtins__\b|\bimport\s+builtins\b|\bbuiltins\s*\.", "changes Python's builtins"),
    (r"\bcoursekit\b|\bRubric\b|\bnbgrader\b|NBGRADER_", "refers to the grader"),
    (r"\bgc\s*\.|\bctypes\b|\binspect\s*\.\s*(currentframe|stack)|\bsettrace\b|\bsetprofile\b|_getframe",
     "inspects or rewrites the running interpreter"),
    (r"\bos\s*\.\s*_exit\b|\bos\s*\.\s*kill\b|\bsignal\s*\.", "kills the process or handles signals"),
    (r"\bsetattr\s*\(\s*(torch|np|numpy|F)\b|^\s*(torch|np|numpy|F)(\.\w+)+\s*=(?!=)",
     "replaces a torch or numpy function"),
    (r"\bsubprocess\b|\bsocket\b|\burllib\b|\brequests\b|\bos\s*\.\s*system\b", "starts programs or uses the network"),
    (r"(?<![\w.])(exec|eval|compile)\s*\(", "runs code built at run time (exec/eval/compile)"),
    (r"(?<![\w.])(In|Out)\s*\[|(?<![\w.])_(ih|oh|i\d+|ii|iii)\b", "reads the kernel's input/output history"),
]


def scan(nb) -> list[dict]:
    """Lines in the student's own cells that could defeat grading, with the reason."""
    flags = []
    for index, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked"):
            continue
        for number, line in enumerate(cell.source.splitlines(), 1):
            code = line.split("#", 1)[0]
            for pattern, reason in SUSPICIOUS:
                if re.search(pattern, code):
                    flags.append({"cell": meta.get("grade_id") or f"cell {index + 1}", "line": number,
                                  "code": line.strip()[:160], "reason": reason})
                    break
    return flags
