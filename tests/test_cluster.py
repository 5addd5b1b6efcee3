"""Autograding on a Dask cluster: the scores of the thread pool, a killed worker, GPU workers, batch job scripts."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from distributed import Client, LocalCluster, Nanny, Scheduler, SpecCluster

from coursekit import autograde, cluster, course, pipeline
from coursekit.canary import CanaryFailed

from .conftest import ROOT, course_with_examples


def by_cell(scores):
    return {student: {(r.notebook, r.grade_id): r.score for r in rows} for student, rows in scores.items()}


def ungraded(target, assignment, config=""):
    root = course_with_examples(target)
    if config:
        with open(root / "nbgrader_config.py", "a") as f:
            f.write(config)
    course.nbgrader(root, "generate_assignment", assignment, "--force")
    pipeline.collect_examples(root)
    return root


def test_a_killed_worker_loses_no_student_and_the_scores_equal_a_local_run(main_job, tmp_path):
    local_root = main_job[0]  # the exam graded by the thread pool on this machine
    root = ungraded(tmp_path / "course", "exam")
    students = autograde.students_of(root, "exam")
    killed = {}

    def kill_a_busy_worker(client):
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not any(client.processing().values()):
            time.sleep(0.2)
        time.sleep(8)  # in the middle of a student
        address, tasks = next((w, t) for w, t in client.processing().items() if t)
        pid = client.run(os.getpid, workers=[address])[address]
        killed.update(address=address, students={t.split("-")[2] for t in tasks})
        os.kill(pid, signal.SIGKILL)

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as dask, \
            Client(dask) as client:
        killer = threading.Thread(target=kill_a_busy_worker, args=(client,))
        killer.start()
        outcomes = autograde.autograde(root, "exam", progress=False, canary=False, client=client)
        killer.join()

    assert sorted(o.student for o in outcomes) == students  # none lost, none counted twice
    assert {o.status for o in outcomes} == {"graded"}, [o.message for o in outcomes]
    assert killed, "no worker was killed"
    for outcome in outcomes:
        if outcome.student in killed["students"]:  # graded again, by a worker that was not killed
            assert killed["address"] not in outcome.worker
    assert by_cell(course.cell_scores(root, "exam")) == by_cell(course.cell_scores(local_root, "exam"))
    report = (root / "reports" / "exam" / "grading-report.md").read_text()
    assert "## Who graded whom" in report and all(f"| {s} |" in report for s in students)


def test_notebooks_that_need_a_gpu_go_to_workers_with_one(tmp_path, offline_env):
    root = ungraded(tmp_path / "course", "lab", '\nc.CourseKit.gpu_notebooks = {"lab": ["3_vgg16_cifar10"]}\n')
    specs = {"cpu": {"cls": Nanny, "options": {"nthreads": 1}},
             "gpu": {"cls": Nanny, "options": {"nthreads": 1, "resources": {"GPU": 1}}}}  # a fake GPU
    with SpecCluster(workers=specs, scheduler={"cls": Scheduler, "options": {"dashboard_address": None}}) as dask, \
            Client(dask) as client:
        client.wait_for_workers(2)
        gpu = next(a for a, w in client.scheduler_info()["workers"].items() if w["resources"].get("GPU"))
        outcomes = autograde.autograde(root, "lab", students="example_[ab]*", progress=False,
                                       env=offline_env, cluster=dask.scheduler_address)  # an existing scheduler
    assert [o.student for o in outcomes] == ["example_ada", "example_ben"]  # after the worker's canary passed
    assert all(o.status == "graded" and o.worker.endswith(gpu) for o in outcomes), outcomes
    assert not cluster.needs_gpu(root, "exam")


def test_a_worker_without_the_data_stops_grading_with_the_canarys_message(tmp_path):
    root = ungraded(tmp_path / "course", "exam")  # its Grad-CAM needs the pretrained weights
    nothing = {"COURSE_DATA_DIR": str(tmp_path / "no-data"), "TORCH_HOME": str(tmp_path / "no-data" / "torch")}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as dask, \
            Client(dask) as client:
        with pytest.raises(CanaryFailed, match="on the worker .*The canary failed: the solution of"):
            autograde.autograde(root, "exam", students="example_a*", progress=False, env=nothing, client=client)
    assert not list((root / "autograded").glob("example_*"))


def test_a_worker_with_another_kit_refuses_to_grade(tmp_path):
    result = cluster.grade_remote({}, "another-kit", "lab", "someone", {}, 60, None)
    assert result["status"] == "failed" and "another version of the kit" in result["message"]


@pytest.mark.parametrize("kind", ["slurm", "pbs"])
def test_batch_job_script_from_the_course_configuration(tmp_path, kind):
    root = course.copy_course(ROOT, tmp_path / "course")
    with open(root / "nbgrader_config.py", "a") as f:
        f.write('\nc.CourseKit.jobqueue = {"queue": "gpu", "cores": 16, "memory": "64GB", "walltime": "02:00:00",'
                ' "job_extra_directives": ["--gres=gpu:1"] if "%s" == "slurm" else ["-l ngpus=1"],'
                ' "worker_extra_args": ["--resources", "GPU=1"]}\n' % kind)
    jobs = cluster.jobqueue_cluster(kind, root)
    try:
        script = jobs.job_script()
    finally:
        jobs.close()
    prefix = {"slurm": "#SBATCH", "pbs": "#PBS"}[kind]
    assert f"{prefix} " in script and "gpu" in script and "02:00:00" in script
    assert ("--gres=gpu:1" if kind == "slurm" else "ngpus=1") in script
    assert "--nworkers 16" in script and "--nthreads 1" in script  # one single-threaded worker per core
    assert "--resources GPU=1" in script and "distributed.cli.dask_worker" in script
