"""The gradebook on a real PostgreSQL server (COURSEKIT_DB_URL), as a team of graders shares it: parallel autograding
writes every score into it, two graders importing manual scores at the same moment lose nothing, and throw-away
course copies (canary, audit, trial) keep a SQLite gradebook of their own.

The server is started by the fixture below (pgserver's PostgreSQL binaries from PyPI, Unix socket only, in a
temporary folder) and stopped afterwards; it needs no network and no PostgreSQL installed on the machine.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from coursekit import autograde, course, manual

ROOT = course.ROOT
PASSWORD = "s3cret-for-the-test"


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server for this module; returns ``database(name) -> URL`` that creates a database owned by the
    role ``grader``, who must log in with a password: the URL has none, libpq reads it from the file that
    ``PGPASSFILE`` names (as it reads ``~/.pgpass`` by default).

    PostgreSQL refuses to run as root.  pgserver then runs ``initdb`` and ``pg_ctl`` as a system user ``pgserver``
    (created with ``useradd`` if missing), hands it the data folder and gives group and others read/traverse rights
    on every folder above the data folder and above its binaries.  So the data folder is made outside pytest's
    private (mode 0700) temporary folder, whose rights would otherwise be widened.  As a normal user pgserver
    runs the server as that user, without any of this."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset, pgserver's lock goes to /tmp
            import pgserver
    except ImportError as error:
        pytest.fail(f"pgserver is missing ({error}); it is pinned in requirements.txt: run scripts/venv.sh",
                    pytrace=False)
    folder = Path(tempfile.mkdtemp(prefix="coursekit-postgres-"))
    pgdata = folder / "pgdata"
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="delete")
    except Exception as error:  # noqa: BLE001 - whatever stopped it, the test fails and says why
        log = pgdata / "log"
        tail = log.read_text()[-2000:] if log.exists() else "(no server log)"
        shutil.rmtree(folder, ignore_errors=True)
        pytest.fail(f"PostgreSQL (pgserver) did not start as uid {os.getuid()}: {error!r}\n{tail}", pytrace=False)
    try:
        socket_dir = server.get_postmaster_info().socket_dir
        server.psql(f"CREATE ROLE grader LOGIN PASSWORD '{PASSWORD}';")
        hba = pgdata / "pg_hba.conf"  # the grader logs in with the password; pgserver's own superuser stays trusted
        hba.write_text("local all grader scram-sha-256\n" + hba.read_text())
        # a throw-away server: no waiting for the disk on every commit and checkpoint
        server.psql("ALTER SYSTEM SET fsync = off; ALTER SYSTEM SET synchronous_commit = off;")
        server.psql("SELECT pg_reload_conf();")
        passfile = folder / "pgpass"
        passfile.write_text(f"*:*:*:grader:{PASSWORD}\n")
        passfile.chmod(0o600)  # libpq ignores a password file others can read

        def database(name: str) -> str:
            server.psql(f"CREATE DATABASE {name} OWNER grader;")
            return f"postgresql+psycopg://grader@/{name}?host={socket_dir}"

        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("PGPASSFILE", str(passfile))
            yield database
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


def superuser(url: str):
    """A connection to the database of ``url`` as the server's superuser (to look inside and to hold locks)."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg.connect(host=parsed.query["host"], dbname=parsed.database, user="postgres", autocommit=True)


def exam_of(root: Path, notebooks: list[str]) -> Path:
    """Keep only ``notebooks`` of the exam in a course copy (cheap to release and grade)."""
    for path in (root / "source" / "exam").glob("*.ipynb"):
        if path.stem not in notebooks:
            path.unlink()
    return root


def course_following_the_environment(target: Path, notebooks: list[str]) -> Path:
    """A course copy configured exactly as this course, so that its gradebook follows COURSEKIT_DB_URL
    (``copy_course`` gives a copy a SQLite gradebook of its own), with only ``notebooks`` of the exam."""
    root = course.copy_course(ROOT, target)
    shutil.copy(ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    return exam_of(root, notebooks)


def scores_in(gradebook_url: str, assignment: str) -> dict[str, dict[tuple[str, str], float]]:
    """``{student: {(notebook, grade_id): score}}`` read straight from a gradebook with nbgrader's API."""
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url) as gb:
        return {s.student.id: {(nb.name, g.name): g.score for nb in s.notebooks for g in nb.grades}
                for s in gb.assignment_submissions(assignment)}


def students_in(gradebook_url: str) -> list[dict]:
    from nbgrader.api import Gradebook

    with Gradebook(gradebook_url) as gb:
        return [s.to_dict() for s in gb.students]


# ----------------------------------------------------------------------------------------------- autograding
QUIZ = "4_true_false_quiz"
STUDENTS = ["example_ada", "example_ben"]  # graded at the same time (2 workers); their quiz scores differ


def test_parallel_autograde_writes_every_score_into_postgresql(postgres, offline_env, tmp_path, monkeypatch):
    url = postgres("autograde")
    monkeypatch.setenv("COURSEKIT_DB_URL", url)
    on_server = course_following_the_environment(tmp_path / "postgres", [QUIZ])
    on_sqlite = exam_of(course.copy_course(ROOT, tmp_path / "sqlite"), [QUIZ])
    assert course.Layout(on_server).gradebook_url == url
    assert course.Layout(on_sqlite).gradebook_url == f"sqlite:///{on_sqlite.resolve() / 'gradebook.db'}"
    for root in (on_server, on_sqlite):
        course.nbgrader(root, "generate_assignment", "exam", "--force", env=offline_env)
        for student in STUDENTS:
            target = root / "submitted" / student / "exam"
            target.mkdir(parents=True)
            shutil.copy(ROOT / "examples" / "submissions" / student / "exam" / f"{QUIZ}.ipynb", target)
        outcomes = autograde.autograde(root, "exam", workers=2, env=offline_env, canary=False, progress=False)
        assert [(o.student, o.status) for o in outcomes] == [(s, "graded") for s in STUDENTS], \
            autograde.summary(outcomes)

    assert not list(on_server.rglob("*.db")), "grading with COURSEKIT_DB_URL set created a SQLite gradebook"
    expected = scores_in(f"sqlite:///{on_sqlite / 'gradebook.db'}", "exam")
    got = scores_in(url, "exam")
    assert got == expected  # every student's submission and each cell's score, in PostgreSQL
    assert sorted(got) == STUDENTS and len({sum(cells.values()) for cells in got.values()}) == len(STUDENTS)
    with superuser(url) as db:  # really in the server, not in a file somewhere
        assert db.execute("SELECT count(*) FROM submitted_assignment").fetchone()[0] == len(STUDENTS)

    # the kit's readers and nbgrader's export follow the same URL
    assert {s: {(r.notebook, r.grade_id): r.score for r in rows}
            for s, rows in course.cell_scores(on_server, "exam").items()} == expected
    course.nbgrader(on_server, "export", "--to=grades.csv")
    with open(on_server / "grades.csv") as f:
        exported = {row["student_id"]: float(row["score"]) for row in csv.DictReader(f)}
    assert exported == {s: sum(cells.values()) for s, cells in expected.items()}


def test_a_throw_away_copy_never_writes_into_the_teams_gradebook(postgres, tmp_path, monkeypatch):
    """The canary, the audit and `coursekit try` grade their students ("solution", "untouched", mutants) in a copy of
    the course made by ``copy_course``: with COURSEKIT_DB_URL set, those must not land in the course's gradebook."""
    url = postgres("copies")
    monkeypatch.setenv("COURSEKIT_DB_URL", url)
    copy = course.copy_course(ROOT, tmp_path / "copy")
    assert course.Layout(copy).gradebook_url == f"sqlite:///{copy.resolve() / 'gradebook.db'}"
    course.nbgrader(copy, "db", "student", "add", "solution")
    assert [s["id"] for s in students_in(f"sqlite:///{copy / 'gradebook.db'}")] == ["solution"]
    with superuser(url) as db:
        tables = db.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
    assert tables == 0, "the copy opened the team's gradebook"


def test_the_password_comes_from_the_password_file_not_the_url(postgres, tmp_path, monkeypatch):
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import OperationalError

    url = postgres("credentials")
    assert PASSWORD not in url
    monkeypatch.setenv("PATH", course.command_env()["PATH"])  # a new gradebook asks `alembic` for its version
    with Gradebook(url) as gb:  # libpq found the password in PGPASSFILE
        gb.add_student("probe")
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-file"))
    with pytest.raises(OperationalError, match="password"):  # the server really asks for it
        Gradebook(url)


# ------------------------------------------------------------------------------------------- manual grading
NOTEBOOK = "3_svhn_cnn"
GRADERS_STUDENTS = [f"s{i}" for i in range(1, 7)]


@pytest.fixture(scope="module")
def manual_course(postgres, tmp_path_factory):
    """A course on the server with the exam's SVHN notebook (four text answers) and six students' submissions, made
    as autograding makes them (``update_or_create_submission``: a grade and a comment row per cell)."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    url = postgres("manual")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COURSEKIT_DB_URL", url)
        root = course_following_the_environment(tmp_path_factory.mktemp("manual"), [NOTEBOOK])
        course.nbgrader(root, "generate_assignment", "exam", "--force")
        with Gradebook(url) as gb, warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission warns about its own autoflush
            for student in GRADERS_STUDENTS:
                gb.update_or_create_student(student)
                gb.update_or_create_submission("exam", student)
        yield root, url


def fill(sheet: Path, entries: dict[str, tuple[float, str]]) -> Path:
    """Enter ``{student: (score, comment)}`` in a sheet written by ``manual-sheet``, as a grader would."""
    with open(sheet, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["student_id"] in entries:
            score, comment = entries[row["student_id"]]
            row["score"], row["comment"] = f"{score:g}", comment
    with open(sheet, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return sheet


def sheet_for(root: Path, question: str, folder: Path, entries: dict[str, tuple[float, str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return fill(manual.write_sheet(root, "exam", question, out=folder / f"{question}.csv"), entries)


def in_gradebook(url: str, question: str) -> dict[str, tuple[float | None, str | None]]:
    from nbgrader.api import Gradebook

    with Gradebook(url) as gb:
        return {s: (gb.find_grade(question, NOTEBOOK, "exam", s).manual_score,
                    gb.find_comment(question, NOTEBOOK, "exam", s).manual_comment) for s in GRADERS_STUDENTS}


def import_at_once(root: Path, url: str, *sheets: Path) -> list[subprocess.CompletedProcess]:
    """Run ``python -m coursekit manual-import`` for every sheet at the same time, as graders at their own desks.

    A real race, made certain: while the test holds a lock on the grade and comment tables, every import reads its
    rows and then waits at its first write; only when all of them wait is the lock released, so each one read the
    gradebook before any other wrote."""
    with superuser(url) as db, db.transaction():
        db.execute("LOCK TABLE grade, comment IN SHARE MODE")  # reads go on, writes wait
        processes = [subprocess.Popen([sys.executable, "-m", "coursekit", "--root", str(root), "manual-import",
                                       str(sheet)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                     for sheet in sheets]
        deadline = time.monotonic() + 120
        while db.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation IN "
                         "('grade'::regclass, 'comment'::regclass)").fetchone()[0] < len(sheets):
            finished = [p for p in processes if p.poll() is not None]
            if finished or time.monotonic() > deadline:
                for p in processes:
                    p.kill()
                output = "\n".join(p.communicate()[0] for p in processes)
                pytest.fail(f"the imports did not all reach their first write together:\n{output}", pytrace=False)
            time.sleep(0.05)
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), p.communicate()[0], "") for p in processes]


def test_two_graders_importing_at_the_same_moment_lose_nothing(manual_course, tmp_path):
    root, url = manual_course
    rounds = [  # (grader A's sheet, grader B's sheet) per round: different questions, then halves of one question
        ("svhn_a_answer", GRADERS_STUDENTS, "svhn_b_answer", GRADERS_STUDENTS),
        ("svhn_f_answer", GRADERS_STUDENTS[:3], "svhn_f_answer", GRADERS_STUDENTS[3:]),
    ]  # a third round, two graders on one row, is the test after the next
    expected: dict[tuple[str, str], tuple[float, str]] = {}
    for n, (question_a, students_a, question_b, students_b) in enumerate(rounds, 1):
        entries_a = {s: ((i + n) % 4 * 0.5, f"A, round {n}: {s}") for i, s in enumerate(students_a)}
        entries_b = {s: ((i + 2 * n) % 5 * 0.5, f"B, round {n}; {s}") for i, s in enumerate(students_b)}
        sheet_a = sheet_for(root, question_a, tmp_path / f"a{n}", entries_a)
        sheet_b = sheet_for(root, question_b, tmp_path / f"b{n}", entries_b)
        results = import_at_once(root, url, sheet_a, sheet_b)
        for result, count in zip(results, (len(entries_a), len(entries_b))):
            assert result.returncode == 0 and f"{count} scores imported" in result.stdout, result.stdout
        expected.update({(question_a, s): e for s, e in entries_a.items()})
        expected.update({(question_b, s): e for s, e in entries_b.items()})
        for question in {question_a, question_b}:
            saved = in_gradebook(url, question)
            assert {s: saved[s] for q, s in expected if q == question} == \
                {s: e for (q, s), e in expected.items() if q == question}, f"round {n}, {question}"


def test_a_stale_sheet_does_not_undo_another_graders_correction(manual_course, tmp_path):
    """A sheet shows the scores the gradebook had when it was written; importing it must not write those back over
    a correction made since (nbgrader has no lock for this: the sheet remembers what it was written from)."""
    root, url = manual_course
    question = "svhn_g_answer"
    first, second = GRADERS_STUDENTS[:3], GRADERS_STUDENTS[3:]
    manual.import_sheet(root, sheet_for(root, question, tmp_path / "a1", {s: (1, "A's first pass") for s in first}))
    stale = manual.write_sheet(root, "exam", question, out=tmp_path / "b" / f"{question}.csv")  # shows A's scores
    correction = sheet_for(root, question, tmp_path / "a2", {"s2": (2, "A, after moderation")})
    assert manual.import_sheet(root, correction).count == 1
    imported = manual.import_sheet(root, fill(stale, {s: (0.5, "B") for s in second}))
    assert imported.count == 3 and imported.unchanged == first
    saved = in_gradebook(url, question)
    assert saved["s2"] == (2, "A, after moderation")  # not the 1 the stale sheet still showed
    assert saved["s1"] == (1, "A's first pass") and all(saved[s] == (0.5, "B") for s in second)

    # the same row changed by both: the later import is refused and says which row, nothing of it is written
    changed = fill(manual.write_sheet(root, "exam", question, out=tmp_path / "c" / f"{question}.csv"),
                   {"s2": (0, "C disagrees"), "s6": (1.5, "C")})
    with pytest.raises(ValueError, match=r"\(s2\): changed in the gradebook since this sheet was written"):
        manual.import_sheet(root, fill(stale, {"s2": (1.5, "B overrides")}))
    assert manual.import_sheet(root, changed).count == 2


def test_the_same_row_entered_by_two_graders_at_once_is_not_lost_silently(manual_course, tmp_path):
    """Both graders change s5's score at the same moment: one import wins, the other is refused as a whole
    (so grader B's s6 is written only if B won) and says that the row changed meanwhile."""
    root, url = manual_course
    question = "svhn_b_answer"
    sheet_a = sheet_for(root, question, tmp_path / "a", {"s5": (3, "A's view")})
    sheet_b = sheet_for(root, question, tmp_path / "b", {"s5": (1, "B's view"), "s6": (4, "B on s6")})
    before = in_gradebook(url, question)
    result_a, result_b = import_at_once(root, url, sheet_a, sheet_b)
    assert sorted([result_a.returncode, result_b.returncode]) == [0, 1], result_a.stdout + result_b.stdout
    loser, won_a = (result_b, True) if result_a.returncode == 0 else (result_a, False)
    assert "(s5): changed in the gradebook by someone else during this import" in loser.stdout, loser.stdout
    saved = in_gradebook(url, question)
    assert saved["s5"] == ((3, "A's view") if won_a else (1, "B's view"))
    assert saved["s6"] == (before["s6"] if won_a else (4, "B on s6"))
