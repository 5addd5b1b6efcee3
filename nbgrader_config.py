"""nbgrader configuration of the course (read by every `nbgrader ...` command run in this folder)."""
import os

c = get_config()  # noqa: F821 - provided by nbgrader

HERE = os.path.dirname(os.path.abspath(__file__))

# The course and its two assignments; each notebook is uploaded separately by the students.
c.CourseDirectory.course_id = "deep-learning"
c.CourseDirectory.root = HERE
c.CourseKit.assignments = {
    "exam": ["1_gradcam", "2_elman_gender", "3_svhn_cnn", "4_true_false_quiz"],
    "lab": ["1_autodiff", "2_mnist_first_network", "3_vgg16_cifar10"],
}
c.CourseKit.similarity_skip = ["4_true_false_quiz"]  # answers are True/False, not code: no similarity report

# Course rules for `python -m coursekit course-sheet` (coursekit/coursesheet.py): which assignments make up each part
# of the course, the points to pass it (without bonus tasks unless "bonus_counts": True) and transfers: of a passed
# part, the points above "above" (bonus included), at most "at_most", count as bonus in the part "to".  The course's
# rule is 80 points of its lab sheets without bonus, up to 40 points above 80 to the exam; with the one 30-point lab
# assignment here, the same shares: 24 points, up to 12 above 24 (list every sheet and use 80/40 with all of them).
c.CourseKit.course_rules = {
    "practicals": {"assignments": ["lab"], "pass_at": 24, "transfer": {"to": "exam", "above": 24, "at_most": 12}},
    "exam": {"assignments": ["exam"]},
}

# The gradebook: gradebook.db (SQLite) in this folder, unless COURSEKIT_DB_URL names the PostgreSQL database a team
# of graders shares, e.g. postgresql+psycopg://grader@db.example.org:5432/deep_learning; the password goes into
# ~/.pgpass, never into this file or the URL (README, "A team of graders").
if os.environ.get("COURSEKIT_DB_URL"):
    c.CourseDirectory.db_url = os.environ["COURSEKIT_DB_URL"]

# Datasets and pretrained weights live in data/ (downloaded once, git-ignored); the notebooks read
# COURSE_DATA_DIR and torch reads TORCH_HOME.  The offline example run points both at fixtures.
os.environ.setdefault("COURSE_DATA_DIR", os.path.join(HERE, "data"))
os.environ.setdefault("TORCH_HOME", os.path.join(HERE, "data", "torch"))

# The kit's marker of a graded submission stays out of the feedback folders.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".coursekit-graded"]

# This course collects submissions through the learning platform (python -m coursekit import-lms), not
# nbgrader's exchange; a folder of its own keeps the formgrader from warning that the exchange is missing.
c.Exchange.root = os.path.join(HERE, ".exchange")
os.makedirs(c.Exchange.root, exist_ok=True)

# Student stubs.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Mark schemes sit in the read-only question cell right above each text answer, so that graders
# see them in the formgrader; they are removed from the release and from the feedback.
c.ClearMarkScheme.enforce_metadata = False

# The release adds, for the students, an "Open in Colab" badge on top (from the public copy of release/ named here;
# "" for none) and a last cell that checks their notebook before they upload it (coursekit/release.py): nbgrader's
# steps, with coursekit.release.AddStudentCells after the solutions are cleared and before the cells are saved.
c.CourseKit.public_repository = "https://github.com/deep-learning-course/notebooks"
c.GenerateAssignment.preprocessors = [
    "nbgrader.preprocessors.IncludeHeaderFooter",
    "nbgrader.preprocessors.InstantiateTests",
    "nbgrader.preprocessors.LockCells",
    "nbgrader.preprocessors.ClearSolutions",
    "nbgrader.preprocessors.ClearOutput",
    "coursekit.release.AddStudentCells",
    "nbgrader.preprocessors.CheckCellMetadata",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.SaveCells",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbgrader.preprocessors.ComputeChecksums",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Before grading, cells whose nbgrader metadata an editor dropped, changed or duplicated (Colab,
# JupyterLab copy/paste) get it back by matching them to the release (coursekit/repair.py).
c.Autograde.sanitize_preprocessors = [
    "coursekit.repair.RepairSubmission",
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "nbgrader.preprocessors.OverwriteCells",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Autograding: notebooks run in grading mode (tiny data, one epoch), so a cell never needs long.
# SafeExecute (coursekit/execute.py) grades a notebook as far as it got when its kernel dies or
# runs out of time or memory, caps outputs, and undoes tampering before every test cell.
c.Autograde.autograde_preprocessors = [
    "coursekit.execute.SafeExecute",
    "nbgrader.preprocessors.IgnorePattern",
    "nbconvert.preprocessors.ClearMetadataPreprocessor",
    "nbgrader.preprocessors.LimitOutput",
    "nbgrader.preprocessors.SaveAutoGrades",
    "nbgrader.preprocessors.AssignLatePenalties",
    "nbgrader.preprocessors.CheckCellMetadata",
]
c.Execute.timeout = 180                  # seconds per cell
c.Execute.interrupt_on_timeout = True
c.SafeExecute.budget = 900               # seconds per notebook
c.SafeExecute.memory_limit = 6 * 1024**3  # bytes for the kernel and its DataLoader workers

# Student code runs in a bubblewrap sandbox (coursekit/sandbox.py): no network, no access to
# source/, the gradebook or other students, writes only in its own autograded/ folder, resource
# limits.  Without bubblewrap grading stops with an error, unless you accept grading without a
# sandbox: COURSEKIT_NO_SANDBOX=1 (or --no-sandbox on the kit's commands).
NO_SANDBOX = os.environ.get("COURSEKIT_NO_SANDBOX") == "1"
c.SandboxKernelManager.sandbox = "none" if NO_SANDBOX else "bwrap"
c.SandboxKernelManager.require_sandbox = not NO_SANDBOX
c.SandboxKernelManager.memory = 8 * 1024**3  # address space per kernel process
# Warm kernels: one sandbox per student whose interpreter imports torch once; each notebook's kernel is a fresh
# fork of it (same grades, about half the time).  COURSEKIT_WARM_KERNELS=0 starts every kernel cold.
c.SandboxKernelManager.warm = os.environ.get("COURSEKIT_WARM_KERNELS", "1") != "0"

# Feedback shows every cell's score and the rubric lines printed by the hidden tests, but
# neither the hidden test code nor the mark schemes (nbgrader shows both by default).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "coursekit.feedback.TaskSummary",          # score and deductions per task, on top
    "coursekit.feedback.ClearHiddenTests",     # nbgrader's, without a warning per notebook
    "coursekit.feedback.ClearMarkScheme",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# The ids of the assignments in Canvas (the number in the assignment's address), so that the Canvas file of
# `nbgrader export` fills those assignments instead of creating new ones, e.g. {"exam": 123456}.
c.CourseKit.canvas_assignment_ids = {}

# `nbgrader export`: grades.csv as usual, plus grades/<assignment>-tasks.csv (a column per task) and the
# Moodle and Canvas import files (coursekit/export.py).
c.ExportApp.plugin_class = "coursekit.export.TaskExportPlugin"
