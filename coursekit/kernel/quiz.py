"""Negative marking of true/false questions (exam part 4), read leniently from what students wrote.

A student answers a question in a dict, ``answers_4a = {"i": True, "ii": None, ...}``: True or
False per statement, None for a statement left unanswered.  Each statement earns +1 when the
answer is right, -0.5 when it is wrong and 0 when it is unanswered, and a question never
scores below 0.  The hidden test cell of a question holds the key and does the arithmetic::

    rubric = Rubric("4(a)", points=5)
    _key_4a = {"i": True, "ii": True, "iii": False, "iv": True, "v": False}
    _answers, _where = find_answers(globals(), "answers_4a")
    _read = rubric.attempt(tally, _key_4a, _answers, "answers_4a")
    _t = _read.value if _read.ok else Tally.unreadable(_key_4a, "answers_4a", _read.error)
    _t.notes[:0] = [_where] if _where else []
    rubric.award(max(0.0, _t.right - 0.5 * _t.wrong), len(_key_4a), _t.summary(), _t.comment())
    del _key_4a, _read, _t  # later cells of the notebook must not see the key
    rubric.total()

:func:`tally` counts right, wrong and unanswered statements and never says *which* were right
or wrong, so the feedback cannot leak the key.  It reads what students write instead of
True/False the way a human grader would: the strings ``"true"``, ``"T"``, ``"yes"``, the numbers
1 and 0, NumPy booleans, keys written ``"(i)"`` or ``"I"``, or a list in statement order;
anything else counts as unanswered, and every such reading is named in the notes that end up
in the feedback.  The student's object is only read inside ``rubric.attempt`` (a dict subclass
could raise or loop), so that a failure costs the answers of that question, nothing else.

A statement found ambiguous after the exam can be neutralized by setting its key to None: True
and False then both count as right (run the autograder again afterwards).
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["MISSING", "Tally", "tally", "find_answers", "read_value", "RIGHT", "WRONG"]

RIGHT, WRONG = 1.0, 0.5  # marks per right and per wrong answer (the wrong one is subtracted)

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0"})
_SHOWN = 24  # characters of an unreadable value quoted in the feedback


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING = _Missing()  # what the test cell passes when the student's variable is not defined


def _quote(value) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a student's object may have a broken __repr__
        text = f"a {type(value).__name__}"
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def read_value(value) -> tuple[bool | None, bool]:
    """``(answer, readable)``: True, False or None (unanswered), and whether it was a clear answer.

    ``readable`` is False for a value that is neither None nor an obvious spelling of True or
    False; it then counts as unanswered.
    """
    if value is None:
        return None, True
    if isinstance(value, bool):
        return value, True
    if type(value).__module__ == "numpy" and type(value).__name__ in ("bool", "bool_"):  # NumPy 2 and 1
        return bool(value), True
    if isinstance(value, numbers.Real) and value in (0, 1):
        return bool(value), True
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True, True
        if word in FALSE_WORDS:
            return False, True
    return None, False


def _statement(key, labels: list[str]) -> str | None:
    """A student's key as the key's spelling: "i", "(i)", " I ", "ii)" and the number 2 name statements."""
    if isinstance(key, str):
        return key.strip().strip("().:").strip().lower() or None
    if isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= len(labels):
        return labels[key - 1]
    return None


@dataclass
class Tally:
    """Counts of one question; ``notes`` say how unusual answers were read (never which were right)."""

    right: int = 0
    wrong: int = 0
    unanswered: int = 0
    notes: list[str] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # statement: "right", "wrong", "unanswered" (for reports)

    @property
    def score(self) -> float:
        return max(0.0, RIGHT * self.right - WRONG * self.wrong)

    def summary(self) -> str:
        """The counts and the arithmetic, e.g. ``3 right, 1 wrong, 1 unanswered: 3 - 0.5 x 1 = 2.5``."""
        raw = RIGHT * self.right - WRONG * self.wrong
        text = (f"{self.right} right, {self.wrong} wrong, {self.unanswered} unanswered: "
                f"{RIGHT * self.right:g} - {WRONG:g} x {self.wrong} = {raw:g}")
        return text + (" < 0, counted as 0 (a question never scores below 0)" if raw < 0 else "")

    def comment(self) -> str:
        return "; ".join(self.notes)

    @classmethod
    def unreadable(cls, key: Mapping, name: str, error: str) -> "Tally":
        """Every statement unanswered, because reading the student's answers failed."""
        return cls(unanswered=len(key), notes=[f"{name} could not be read ({error}): "
                                               f"all {len(key)} statements counted as unanswered"])


def _spelling(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum()).replace("answers", "answer")


def find_answers(namespace: Mapping, name: str) -> tuple[object, str | None]:
    """``(answers, note)``: the student's variable ``name``, or, when it is not defined, the one variable holding a
    dict or list whose name is spelled like it (``answer_4d``, ``Answers4d``): a human reads the answers wherever
    they are.  ``note`` says so (None when the variable is where it belongs); MISSING when there is none."""
    if name in namespace:
        return namespace[name], None
    wanted = _spelling(name)
    found = [key for key, value in list(namespace.items())
             if isinstance(key, str) and not key.startswith("_") and _spelling(key) == wanted
             and isinstance(value, (Mapping, list, tuple))]
    if len(found) == 1:
        return namespace[found[0]], f"your answers were read from {found[0]} (the cell asks for {name})"
    return MISSING, None


def tally(key: Mapping[str, bool], answers, name: str) -> Tally:
    """Compare a student's ``answers`` with ``key`` (``{"i": True, ...}``, in statement order)."""
    labels = list(key)
    n = len(labels)
    notes: list[str] = []
    given: dict[str, object] = {}
    if answers is MISSING:
        notes.append(f"{name} is not defined (answer cell not run, or the variable renamed): "
                     f"all {n} statements counted as unanswered")
    elif isinstance(answers, Mapping):
        unknown, clashes = [], []
        for raw_key, value in answers.items():
            label = _statement(raw_key, labels)
            if label not in key:
                unknown.append(_quote(raw_key))
            elif label in given and read_value(given[label]) != read_value(value):
                clashes.append(label)
            else:
                given[label] = value
        for label in clashes:
            del given[label]
        if unknown:
            notes.append(f"unknown keys ignored: {', '.join(unknown)}")
        if clashes:
            notes.append("two different answers for " + ", ".join(f"({c})" for c in dict.fromkeys(clashes))
                         + ": counted as unanswered")
        missing = [label for label in labels if label not in given and label not in clashes]
        if 0 < len(missing) < n:
            notes.append("no answer for " + ", ".join(f"({m})" for m in missing) + ": counted as unanswered")
        elif len(missing) == n:
            notes.append(f"{name} has none of the keys {', '.join(repr(k) for k in labels)}: "
                         f"all {n} statements counted as unanswered")
    elif isinstance(answers, (list, tuple)) and len(answers) == n:
        given = dict(zip(labels, answers))
        notes.append(f"{name} is a {type(answers).__name__}, not a dict: read in the order "
                     + ", ".join(f"({label})" for label in labels))
    else:
        notes.append(f"{name} is {_quote(answers)}, not a dict of answers like "
                     f"{{{labels[0]!r}: True, ...}}: all {n} statements counted as unanswered")

    result = Tally(notes=notes)
    lenient, unclear = [], []
    for label in labels:
        value = given.get(label)
        answer, readable = read_value(value)
        if not readable:
            unclear.append(f"({label}) {_quote(value)}")
        elif answer is not None and not isinstance(value, bool):
            lenient.append(f"({label}) {_quote(value)} as {answer}")
        if answer is None:
            result.unanswered += 1
            result.outcomes[label] = "unanswered"
        elif key[label] is None or answer == key[label]:  # None in the key: both answers accepted
            result.right += 1
            result.outcomes[label] = "right"
        else:
            result.wrong += 1
            result.outcomes[label] = "wrong"
    if lenient:
        notes.append("read " + ", ".join(lenient))
    if unclear:
        notes.append("not True or False, counted as unanswered: " + ", ".join(unclear))
    return result
