"""What runs inside the student's kernel: the grading helper of the hidden tests and their references.

Only this package (and ``coursekit/__init__.py``) is mounted into the sandbox, read-only; the guard snapshots
it as a whole before the first cell and restores it before every test cell.  The instructor's side of the kit
imports from here, never the other way round.
"""
