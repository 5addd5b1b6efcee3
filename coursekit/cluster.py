"""Autograde on a Dask cluster: one task per student, graded on a worker, recorded by the client.

``python -m coursekit autograde exam --cluster local:4`` (four worker processes on this machine),
``--cluster tcp://host:8786`` (a running scheduler) or ``--cluster slurm:10`` / ``pbs:10`` (ten batch jobs
through dask-jobqueue, configured by ``c.CourseKit.jobqueue``).  No shared filesystem is assumed:

* the client sends each worker the course's configuration, ``source/`` and ``release/`` of the assignment and an
  empty gradebook that knows the assignment (once, as one scattered object), and each task the student's files;
* the client builds that course once per version of the assignment (``nbgrader generate_assignment`` in a
  throw-away copy, kept in ``autograded/.cluster/``) and sends it with its gradebook; the worker writes it to disk
  once per process, copies it for each student and runs the same ``nbgrader autograde --student`` as the thread pool does (sandbox, limits, repair, guard, warm
  kernels; its data folder is the worker's ``COURSE_DATA_DIR``) and sends back the autograded files;
* the client writes them to ``autograded/`` and records the scores in its gradebook with nbgrader's own
  ``SaveAutoGrades`` and ``AssignLatePenalties`` (the scores come from the notebooks' outputs, as in a local run).

A worker that dies in the middle of a student is replaced and Dask runs that student's task again elsewhere;
the client records each student once, when its task finishes.  A student whose assignment has a notebook in
``c.CourseKit.gpu_notebooks`` needs the worker resource ``GPU`` (start such workers with ``--resources GPU=1``).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

import nbformat

from . import autograde as local
from . import course

_TEMPLATES: dict[str, Path] = {}
_CANARIES: dict[Path, str | None] = {}  # template -> None (passed) or why it failed
_TEMPLATE_LOCK = threading.Lock()


# ---------------------------------------------------------------------------- what travels
def _files(folder: Path, skip=()) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in skip and "__pycache__" not in p.parts}


def course_files(root: Path, assignment: str) -> dict[str, bytes]:
    """What a worker needs of the course: its configuration, and the assignment's source and release."""
    files = {"nbgrader_config.py": (root / "nbgrader_config.py").read_bytes() + course.OWN_GRADEBOOK.encode()}
    for folder in ("source", "release"):
        files.update({f"{folder}/{assignment}/{k}": v for k, v in _files(root / folder / assignment).items()})
    return files


@functools.lru_cache(maxsize=1)
def kit_fingerprint() -> str:
    """The kit's code, so that a worker running another version of it refuses to grade."""
    package = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name, data in _files(package).items():
        if name.endswith(".py"):
            digest.update(name.encode() + data)
    return digest.hexdigest()[:16]


def _write(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _stamp(files: dict[str, bytes]) -> str:
    return hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(files.items()))).hexdigest()[:16]


def template_files(root: Path, assignment: str, env: dict | None = None) -> dict[str, bytes]:
    """The course a worker grades in, as files: configuration, source, release and a gradebook in which
    ``generate_assignment`` created the assignment; built once per version of the assignment and kept in
    ``autograded/.cluster/``."""
    data = course_files(root, assignment)
    folder = root / "autograded" / ".cluster" / f"{assignment}-{_stamp(data)}"
    if not (folder / "gradebook.db").exists():
        for old in folder.parent.glob(f"{assignment}-*"):  # an older version of the assignment
            shutil.rmtree(old, ignore_errors=True)
        building = folder.with_name(folder.name + ".building")
        _write(building, data)
        course.nbgrader(building, "generate_assignment", assignment, "--force", env=env)
        building.rename(folder)
    return _files(folder)


# ---------------------------------------------------------------------------- on the worker
def _template(course_data: dict, assignment: str) -> Path:
    """The course of ``course_data`` on this worker's disk, written once per worker process."""
    stamp = _stamp(course_data)
    with _TEMPLATE_LOCK:
        if stamp not in _TEMPLATES or not _TEMPLATES[stamp].exists():
            root = Path(tempfile.mkdtemp(prefix="coursekit-worker-")) / "course"
            _write(root, course_data)
            _TEMPLATES[stamp] = root
    return _TEMPLATES[stamp]


def _canary(template: Path, assignment: str, env: dict | None) -> str | None:
    """The canary on this worker (its data, its kit, its sandbox), once per worker process and course."""
    from .canary import CanaryFailed, check

    with _TEMPLATE_LOCK:
        if template not in _CANARIES:
            try:
                check(template, assignment, env, workers=1, say=lambda text: None)
                _CANARIES[template] = None
            except CanaryFailed as failed:
                _CANARIES[template] = str(failed)
        return _CANARIES[template]


def grade_remote(course_data: dict, kit: str, assignment: str, student: str, files: dict[str, bytes],
                 timeout: float, env: dict | None, canary: bool = True) -> dict:
    """Grade one student on this worker; returns the outcome and the autograded files.  With ``canary``, the
    worker first grades the solution and the untouched release (once) and grades nobody when they go wrong."""
    try:
        from distributed import get_worker

        where = get_worker().address
    except (ImportError, ValueError):
        where = "local"
    where = f"{socket.gethostname()} {where}"
    if kit != kit_fingerprint():
        return {"status": "failed", "worker": where, "seconds": 0.0, "files": {}, "problems": [],
                "message": f"the worker {where} runs another version of the kit: install the course's on every worker"}
    template = _template(course_data, assignment)
    failed = _canary(template, assignment, env) if canary else None
    if failed:
        return {"status": "canary", "worker": where, "seconds": 0.0, "files": {}, "problems": [],
                "message": f"on the worker {where}: {failed}"}
    with tempfile.TemporaryDirectory(prefix="coursekit-task-") as scratch:
        root = Path(scratch) / "course"
        shutil.copytree(template, root, ignore=shutil.ignore_patterns(".canary-*"))
        _write(root / "submitted" / student / assignment, files)
        outcome = local.grade_student(root, assignment, student, True, timeout, env)
        graded = _files(root / "autograded" / student / assignment, skip=(local.MARKER,))
    return {"status": outcome.status, "seconds": outcome.seconds, "message": outcome.message,
            "problems": outcome.problems, "files": graded, "worker": where}


# ---------------------------------------------------------------------------- on the client
def record(root: Path, assignment: str, student: str, files: dict[str, bytes]) -> None:
    """Write a student's autograded files and record their scores in the gradebook, as ``nbgrader autograde``
    does after running the notebooks (its ``SaveAutoGrades`` and ``AssignLatePenalties``)."""
    from nbgrader.api import Gradebook
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.preprocessors import AssignLatePenalties, SaveAutoGrades

    layout = course.Layout(root)
    folder = root / "autograded" / student / assignment
    shutil.rmtree(folder, ignore_errors=True)
    _write(folder, files)
    url = layout.gradebook_url
    coursedir = CourseDirectory(config=layout.config, root=str(root))
    timestamp = coursedir.get_existing_timestamp(str(root / "submitted" / student / assignment))
    with Gradebook(url, coursedir.course_id) as gb:  # as nbgrader's Autograde.init_assignment, step by step
        gb.update_or_create_student(student)
    with Gradebook(url, coursedir.course_id) as gb, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLAlchemy's "not in session" about nbgrader's own way of adding one
        gb.update_or_create_submission(assignment, student, **({"timestamp": timestamp} if timestamp else {}))
    with Gradebook(url, coursedir.course_id) as gb:
        for notebook in gb.find_assignment(assignment).notebooks:  # a notebook not handed in scores 0
            if not (folder / f"{notebook.name}.ipynb").exists():
                for grade in gb.find_submission_notebook(notebook.name, assignment, student).grades:
                    grade.auto_score, grade.needs_manual_grade = 0, False
        gb.db.commit()
    for path in sorted(folder.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        resources = {"nbgrader": {"notebook": path.stem, "assignment": assignment, "student": student,
                                  "db_url": url}}
        for step in (SaveAutoGrades, AssignLatePenalties):
            nb, resources = step(config=layout.config).preprocess(nb, resources)


def needs_gpu(root: Path, assignment: str) -> bool:
    return bool(course.setting(root, "gpu_notebooks", {}).get(assignment))


def connect(spec: str, root: Path):
    """A ``distributed.Client`` for ``local:N``, ``tcp://host:port``, ``slurm:N`` or ``pbs:N``."""
    from distributed import Client, LocalCluster

    kind, _, count = spec.partition(":")
    if spec.startswith(("tcp://", "tls://")):
        return Client(spec)
    if kind == "local":
        cluster = LocalCluster(n_workers=int(count or os.cpu_count() or 1), threads_per_worker=1, processes=True,
                               dashboard_address=None)
        return Client(cluster)
    if kind in ("slurm", "pbs"):
        cluster = jobqueue_cluster(kind, root)
        cluster.scale(jobs=int(count or 1))
        return Client(cluster)
    raise ValueError(f"--cluster {spec}: use local:N, tcp://host:port, slurm:N or pbs:N")


def jobqueue_cluster(kind: str, root: Path):
    """A dask-jobqueue cluster made from ``c.CourseKit.jobqueue`` (its keyword arguments, e.g. ``queue``,
    ``cores``, ``memory``, ``walltime``, ``job_extra_directives``, ``worker_extra_args``)."""
    import dask_jobqueue

    settings = dict(course.setting(root, "jobqueue", {}))
    settings.setdefault("cores", 1)
    settings.setdefault("memory", "16GB")
    settings.setdefault("processes", settings["cores"])  # one single-threaded worker process per core
    cls = {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster}[kind]
    return cls(**settings)


def grade_all(root: Path, assignment: str, names: list[str], force: bool, timeout: float, env: dict | None,
              client, bar=None, canary: bool = True) -> list[local.Outcome]:
    """Grade ``names`` on the cluster of ``client``; record each result as it arrives.  With ``canary`` every
    worker grades the solution and the untouched release first; when they go wrong on one, grading stops
    (``CanaryFailed``; the students recorded until then keep their grades)."""
    from distributed import as_completed

    from .canary import CanaryFailed

    outcomes, futures = [], {}
    course_data = client.scatter(template_files(root, assignment, env), broadcast=True)
    kit = kit_fingerprint()
    resources = {"GPU": 1} if needs_gpu(root, assignment) else None
    for student in names:
        problems, stamp = local.prepare(root, assignment, student)
        if not force and local.already_graded(root, assignment, student, stamp):
            outcomes.append(local.Outcome(student, "skipped"))
            if bar is not None:
                bar.update()
            continue
        files = _files(root / "submitted" / student / assignment)
        future = client.submit(grade_remote, course_data, kit, assignment, student, files, timeout, env, canary,
                               key=f"grade-{assignment}-{student}-{time.time_ns()}", resources=resources, pure=False)
        futures[future] = (student, problems, stamp)
    for future in as_completed(list(futures)):
        student, problems, stamp = futures.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: the task killed several workers
            outcome = local.Outcome(student, "failed", 0.0, f"the cluster could not grade it: {exc!r}"[:300], problems)
        else:
            if result["status"] == "canary":
                client.cancel(list(futures))
                raise CanaryFailed(result["message"])
            outcome = local.Outcome(student, result["status"], result["seconds"], result["message"],
                                    problems + result["problems"], worker=result["worker"])
            if result["status"] == "graded":
                record(root, assignment, student, result["files"])
                local.mark_graded(root, assignment, student, stamp)
        outcomes.append(outcome)
        if bar is not None:
            bar.set_postfix_str(f"{student}: {outcome.status}")
            bar.update()
    return outcomes
