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

# Datasets and pretrained weights live in data/ (downloaded once, git-ignored); the notebooks read
# COURSE_DATA_DIR and torch reads TORCH_HOME.  The offline example run points both at fixtures.
os.environ.setdefault("COURSE_DATA_DIR", os.path.join(HERE, "data"))
os.environ.setdefault("TORCH_HOME", os.path.join(HERE, "data", "torch"))

# Student stubs.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Mark schemes sit in the read-only question cell right above each text answer, so that graders
# see them in the formgrader; they are removed from the release and from the feedback.
c.ClearMarkScheme.enforce_metadata = False

# Autograding: notebooks run in grading mode (tiny data, one epoch), so a cell never needs long.
c.Execute.timeout = 180
c.Execute.interrupt_on_timeout = True

# Feedback shows every cell's score and the rubric lines printed by the hidden tests, but
# neither the hidden test code nor the mark schemes (nbgrader shows both by default).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbgrader.preprocessors.ClearHiddenTests",
    "nbgrader.preprocessors.ClearMarkScheme",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]
