"""A student's session in JupyterLab, in headless Chromium: open a released notebook, type an answer, run all cells,
save, run the check before upload; then the saved file is graded with the real ``nbgrader autograde`` and the answer
earns its points.  Screenshots are kept in $COURSEKIT_SCREENSHOTS when it is set (tests/browser.py)."""

from __future__ import annotations

import shutil
import time

import nbformat

from coursekit import course
from coursekit.autograde import autograde

from . import browser

ROOT = course.ROOT
NOTEBOOK = "4_true_false_quiz"
ANSWER = 'answers_4a = {"i": True, "ii": True, "iii": False, "iv": True, "v": False}'  # 4(a), as the key has it


def grade_ids(nb):
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells]


def test_a_student_answers_runs_saves_and_checks_in_jupyterlab_and_the_file_earns_the_points(tmp_path):
    browser.require_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    home = tmp_path / "student"  # the student's folder: the released notebook, downloaded
    home.mkdir()
    path = home / f"{NOTEBOOK}.ipynb"
    shutil.copy(ROOT / "release" / "exam" / f"{NOTEBOOK}.ipynb", path)
    released = nbformat.read(path, as_version=4)
    ids = grade_ids(released)

    def saved():
        return nbformat.read(path, as_version=4)

    def command(driver, name):  # a JupyterLab menu command, as clicking the menu does
        menu = {"runmenu:run-all": "Run", "docmanager:save": "File"}[name]
        driver.find_element(By.XPATH, f"//li[contains(@class,'lm-MenuBar-item')][.//div[text()='{menu}']]").click()
        WebDriverWait(driver, 20).until(lambda d: d.find_element(
            By.CSS_SELECTOR, f"li.lm-Menu-item[data-command='{name}']")).click()

    def idle(driver):
        return driver.execute_script(
            "const s = document.querySelector('.jp-Notebook-ExecutionIndicator');"
            "return s && s.getAttribute('data-status') === 'idle'")

    def shot(driver, name):  # JupyterLab fills the window: a screenshot at its size, then the size back
        browser.screenshot(driver, tmp_path, name)
        driver.set_window_size(1400, 1000)

    def cell(driver, grade_id):
        return driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[ids.index(grade_id)]

    with browser.jupyter_server(home) as url, browser.chromium() as driver:
        driver.get(f"{url}/lab/tree/{NOTEBOOK}.ipynb")
        wait = WebDriverWait(driver, 120)
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")) == len(released.cells))
        wait.until(idle)

        answer = cell(driver, "quiz_a_answers")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", answer)
        editor = answer.find_element(By.CSS_SELECTOR, ".cm-content")
        editor.click()
        ActionChains(driver).key_down(Keys.CONTROL).send_keys("a").key_up(Keys.CONTROL).perform()
        editor.send_keys(ANSWER)
        wait.until(lambda d: ANSWER in cell(d, "quiz_a_answers").find_element(By.CSS_SELECTOR, ".cm-content").text)
        shot(driver, "jupyterlab-quiz-answer-typed")

        command(driver, "runmenu:run-all")  # stops at 4(b), whose stub raises
        wait.until(lambda d: "NotImplementedError" in cell(d, "quiz_b_answers").text and idle(d))
        command(driver, "docmanager:save")
        wait.until(lambda d: ANSWER in saved().cells[ids.index("quiz_a_answers")].source)

        check = cell(driver, ids[-1])  # the check before upload, run by hand as its heading says
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", check)
        check.click()  # its code is folded away: clicking selects the cell
        ActionChains(driver).send_keys(Keys.ESCAPE).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
        wait.until(lambda d: "Check before you upload" in cell(d, ids[-1]).text and idle(d))
        shown = cell(driver, ids[-1]).text
        command(driver, "docmanager:save")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not saved().cells[-1].get("outputs"):
            time.sleep(0.5)
        shot(driver, "jupyterlab-quiz-checked")

    # what the check told the student: 4(a) done, the other three still to do, the file name right
    assert "Check before you upload 4_true_false_quiz.ipynb: 2 things to do" in shown, shown
    assert "[ok] file name: 4_true_false_quiz.ipynb, as released" in shown
    assert "4(a) answer" not in shown.split("[!!] answers:")[1].split("[")[0], shown
    for task in ("4(b)", "4(c)", "4(d)"):
        assert f"{task} answer: not done yet" in shown
    assert "4(b) answer raised NotImplementedError" in shown
    nb = saved()
    assert "".join(o.get("text", "") for o in nb.cells[-1].outputs) .strip() in shown.replace("\r", "")

    # the saved file, graded by the real nbgrader: 4(a)'s 5 points, none for the untouched rest
    root = course.copy_course(ROOT, tmp_path / "course")
    course.nbgrader(root, "generate_assignment", "exam", "--force")
    target = root / "submitted" / "browser_student" / "exam" / f"{NOTEBOOK}.ipynb"
    target.parent.mkdir(parents=True)
    shutil.copy(path, target)
    outcomes = autograde(root, "exam", "browser_student", workers=1, progress=False, canary=False)
    assert [o.status for o in outcomes] == ["graded"], outcomes
    scores = {r.grade_id: r.score for r in course.cell_scores(root, "exam")["browser_student"] if r.notebook == NOTEBOOK}
    assert scores == {"quiz_a_tests": 5.0, "quiz_b_tests": 0.0, "quiz_c_tests": 0.0, "quiz_d_tests": 0.0}, scores
