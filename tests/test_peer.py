"""Peer review of notebook reports (coursekit/peer): the draw, anonymized packets, the review form in headless
Chromium, collection from a Moodle download with broken files, aggregation with a TA's override, export,
participation."""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import random
import re
import statistics
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from coursekit import course
from coursekit.__main__ import main
from coursekit.peer import aggregate, assign, collect, packets, participation, store
from coursekit.peer.anonymize import Scrubber, anonymize

from . import browser

ROOT = course.ROOT
ASSIGNMENT = "lab"
NAMES = {  # fictional names, e-mail addresses and platform ids of the example students (and two made here)
    "example_ada": ("Ada", "Lindqvist", "1001"), "example_ben": ("Ben", "Okafor", "1002"),
    "example_chloe": ("Chloé", "Marchetti", "1003"), "example_dev": ("Dev", "Raghunathan", "1004"),
    "example_emil": ("Emil", "Novák", "1005"), "example_fay": ("Fay", "Castellanos", "1006"),
    "example_greta": ("Greta", "Holmberg", "1007"), "example_hal": ("Hal", "Whitcombe", "1008"),
    "example_ivy": ("Ivy", "Szabo", "1009"),
}
EMAIL = {s: f"{first.lower()}.{last.lower()}@uni.example" for s, (first, last, _) in NAMES.items()}
FAR_OFF = "example_dev"  # gives every criterion full points
DISPUTED = "example_emil"  # the author whose reviewers split between 0 and full points
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"fake plot of the loss").decode()


# ------------------------------------------------------------------------------------------------ the draw
def check_draw(plan: dict[str, list[str]], authors: list[str], others: list[str], k: int, groups: dict[str, str]):
    group = lambda s: groups.get(s, s)  # noqa: E731
    received = {a: 0 for a in authors}
    for reviewer, reports in plan.items():
        assert len(reports) == len(set(reports)) == k, (reviewer, reports)
        assert all(group(a) != group(reviewer) for a in reports), (reviewer, reports, groups)
        for a in reports:
            received[a] += 1
    assert set(plan) == set(authors) | set(others)
    from_submitters = {a: sum(a in plan[r] for r in authors) for a in authors}
    assert set(from_submitters.values()) == {k}  # every report gets exactly k reviews from submitters
    assert max(received.values()) - min(received.values()) <= 1  # the others spread evenly


def test_draw_is_balanced_reproducible_and_keeps_groups_apart():
    rng = random.Random(7)
    for case in range(60):
        n, k, g = rng.randint(5, 40), rng.randint(1, 4), rng.randint(1, 3)
        if n < 2 * g + k - 1:
            continue
        authors = [f"s{i:02d}" for i in range(n)]
        others = [f"x{i}" for i in range(rng.randint(0, 6))]
        shuffled = authors + others
        rng.shuffle(shuffled)
        groups = {s: f"g{i // g}" for i, s in enumerate(shuffled)} if g > 1 else {}
        sizes = {}
        for s in authors:
            sizes[groups.get(s, s)] = sizes.get(groups.get(s, s), 0) + 1
        if n < 2 * max(sizes.values()) + k - 1:
            continue
        plan = assign.first_round(authors, others, k, groups, random.Random(case))
        check_draw(plan, authors, others, k, groups)
        assert plan == assign.first_round(authors, others, k, groups, random.Random(case))  # the seed reproduces it
    plans = {str(assign.first_round([f"s{i}" for i in range(12)], [], 4, {}, random.Random(seed))) for seed in range(5)}
    assert len(plans) == 5  # other seeds, other draws
    with pytest.raises(ValueError, match="5 reports are too few for 4 reviews each in groups of up to 2"):
        assign.first_round(["a", "b", "c", "d", "e"], [], 4, {"a": "g", "b": "g"}, random.Random(0))


def test_groups_file(tmp_path):
    path = tmp_path / "groups.csv"
    path.write_text("group,members\ng1,ada ben\ng2,\"chloe;dev\",emil\n")
    assert assign.read_groups(path) == {"ada": "g1", "ben": "g1", "chloe": "g2", "dev": "g2", "emil": "g2"}
    path.write_text("g1,ada ben\ng2,ben\n")
    with pytest.raises(ValueError, match="ben is in two groups"):
        assign.read_groups(path)


# ------------------------------------------------------------------------------------------------ anonymizing
def planted(nb, student: str):
    """``nb`` with the student's name, id, e-mail and paths in cells, outputs and metadata, as real uploads have."""
    first, last, lms_id = NAMES[student]
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    nb.metadata["colab"] = {"name": f"{student}_lab.ipynb", "provenance": [{"file_id": "1abc", "user": EMAIL[student]}]}
    nb.metadata["coursekit"] = {"student": student}
    nb.cells[0].metadata["colab"] = {"base_uri": f"https://localhost:8080/{student}"}
    name_cell = nbformat.v4.new_markdown_cell(f"**Name:** {first} {last}  \nStudent ID: {lms_id}\n\n"
                                              f"Questions to {EMAIL[student]}; my notes by {first}.")
    code = nbformat.v4.new_code_cell(
        f"# Author: {last}\nDATA = '/content/drive/MyDrive/Colab Notebooks/{student}/data'\n"
        f"print(open('/home/{student}/notes.txt').read())  # torch.max(x) stays readable")
    code.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text=f"saved to /home/{student}/lab/model.pt by {first} {last}\n"),
        nbformat.v4.new_output("display_data", data={"text/html": f"<b>{last.upper()}</b> ({EMAIL[student]})",
                                                     "text/plain": "<b>...</b>"}),
        nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"},
                               metadata={"filename": f"/home/{student}/plot.png"}),
        nbformat.v4.new_output("execute_result", data={"text/plain": f"'C:\\\\Users\\\\{first}\\\\Desktop\\\\lab.ipynb'"},
                               execution_count=3),
        nbformat.v4.new_output("error", ename="FileNotFoundError", evalue=f"/Users/{student}/x.csv", traceback=[
            f"\x1b[0;31mFileNotFoundError\x1b[0m: File \x1b[0;32m/Users/{student}/lab/x.py:3\x1b[0m in {lms_id}"]),
    ]
    nb.cells[1:1] = [name_cell, code]
    return nb


def identifiers_in(text: str, root: Path = ROOT, students=NAMES) -> list[str]:
    """Every student id, platform id, e-mail address, full name (any case) and first or last name (as written) in
    ``text``, every file path of a student's machine and the course folder's."""
    any_case, as_written = set(), set()
    for student, (first, last, lms_id) in students.items():
        any_case.update({student, lms_id, EMAIL[student], f"{first} {last}", f"{last}, {first}"})
        as_written.update({first, last, first.upper(), last.upper()})
    found = []
    for words, flags in ((any_case, re.I), (as_written, 0)):
        alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
        found += re.findall(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", text, flags)
    for path in ("/home/", "/Users/", "/content/drive", "C:\\Users", "C:\\\\Users", "submitted/", str(root)):
        if path in text:
            found.append(path)
    return found


def test_anonymize_removes_metadata_names_ids_and_paths_and_keeps_the_work():
    nb = planted(nbformat.read(ROOT / "examples/submissions/example_ada/lab/1_autodiff.ipynb", as_version=4),
                 "example_ada")
    raw = nbformat.writes(nb)
    assert {"Ada Lindqvist", "example_ada", "1001", "/home/", "/content/drive"} <= set(identifiers_in(raw))
    people = {s: {"first_name": f, "last_name": last, "email": EMAIL[s]} for s, (f, last, _) in NAMES.items()}
    clean = anonymize(nb, Scrubber(people, {"1001"}))
    text = nbformat.writes(clean)
    assert identifiers_in(text) == []
    assert set(clean.metadata) == {"kernelspec", "language_info"}
    assert all(not cell.metadata for cell in clean.cells) and "nbgrader" not in text and "colab" not in text
    assert [c.id for c in clean.cells] == [f"cell-{i + 1}" for i in range(len(clean.cells))]
    assert "torch.max(x) stays readable" in text and PNG in text  # code and images stay
    assert "**Name:** [removed]" in text and "[path]" in text and "[email]" in text
    answers = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    sources = [c.source for c in clean.cells]
    assert answers and all(answer in sources for answer in answers)  # the student's answers are there, unchanged


# ------------------------------------------------------------------------------------------------ end to end
@pytest.fixture(scope="module")
def peer_course(tmp_path_factory):
    """A course copy: seven example students' lab submissions (with their names planted in them), a student without
    one (hal, known from the gradebook), the gradebook filled by generate_assignment, names as import-lms records
    them; ada and ben in one group; the draw; then the late submission of ivy, new to the course, and the second
    round."""
    root = course.copy_course(ROOT, tmp_path_factory.mktemp("peer"))
    with open(root / "nbgrader_config.py", "a") as f:
        f.write("\nc.CourseKit.peer_far_off = 0.3\nc.CourseKit.peer_rule = {'assignments': ['lab'], 'required': 1}\n")
    course.nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    from nbgrader.api import Gradebook


    def enrol(*students):  # as import-lms records the names of the platform's download
        with Gradebook(course.Layout(root).gradebook_url) as gb:
            for student in students:
                first, last, _ = NAMES[student]
                gb.update_or_create_student(student, first_name=first, last_name=last, email=EMAIL[student])

    enrol(*(s for s in NAMES if s != "example_ivy"))

    def submit(student, like):
        for path in sorted((ROOT / "examples" / "submissions" / like / ASSIGNMENT).glob("*.ipynb")):
            target = root / "submitted" / student / ASSIGNMENT / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(planted(nbformat.read(path, as_version=4), student), target)

    for student in ("example_ada", "example_ben", "example_chloe", "example_dev", "example_emil", "example_fay",
                    "example_greta"):
        submit(student, student)
    groups = root / "groups.csv"
    groups.write_text("group,members\ng1,example_ada example_ben\n")
    ids = root / "ids.csv"
    ids.write_text("lms_id,name,student_id\n" + "".join(f"{lms},{first} {last},{s}\n"
                                                        for s, (first, last, lms) in NAMES.items()))
    started = time.perf_counter()
    assert main(["--root", str(root), "peer-assign", ASSIGNMENT, "--seed", "3", "--groups", str(groups),
                 "--ids", str(ids)]) == 0
    first_round = store.load(root, ASSIGNMENT)
    submit("example_ivy", "example_ada")  # late, and new to the course
    enrol("example_ivy")
    assert main(["--root", str(root), "peer-assign", ASSIGNMENT, "--late"]) == 0  # the id file of the first round
    print(f"drawing and writing the packets took {time.perf_counter() - started:.1f} s")
    return root, first_round, ids


def test_assignment_balanced_groups_apart_late_round_and_csv(peer_course):
    root, first, _ = peer_course
    draw = store.load(root, ASSIGNMENT)
    authors = sorted(draw.authors.values())
    assert sorted(first.authors.values()) == authors[:-1] == sorted(set(NAMES) - {"example_hal", "example_ivy"})
    plan = {r: [first.authors[c] for c in codes] for r, codes in first.reviews.items()}
    check_draw(plan, sorted(first.authors.values()), ["example_hal"], 4, first.groups)  # hal reviews, is not reviewed
    assert "example_hal" not in draw.code_of and "example_ben" not in plan["example_ada"]
    for reviewer, codes in first.reviews.items():  # the late round only adds
        assert draw.reviews[reviewer].items() >= codes.items()
    late = draw.code_of["example_ivy"]
    assert draw.rounds[late] == 2 and len(draw.reviewers_of(late)) == 4 and len(draw.reviews["example_ivy"]) == 4
    assert "example_ivy" not in draw.reviewers_of(late) and late not in draw.reviews["example_ivy"]
    assert max(len(c) for c in draw.reviews.values()) - min(len(c) for c in draw.reviews.values()) <= 1
    again = store.Draw.load(root / "peer" / ASSIGNMENT / "draw.json")
    assert again == draw
    with open(root / "peer" / ASSIGNMENT / "assignment.csv", newline="") as f:
        rows = {r["reviewer"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(NAMES)
    assert rows["example_ada"]["reports"].split() == sorted(draw.reviews["example_ada"])
    assert rows["example_hal"]["handed_in"] == "no" and rows["example_ada"]["last_name"] == "Lindqvist"
    assert "author" not in rows["example_ada"] and all(re.fullmatch(r"R-\w{4}( R-\w{4})*", r["reports"])
                                                       for r in rows.values())  # the platform's file names no author


def test_packets_hold_nothing_that_identifies_an_author(peer_course):
    root, _, _ = peer_course
    draw = store.load(root, ASSIGNMENT)
    for author in draw.authors.values():  # the uploads do name their authors
        raw = "".join(p.read_text() for p in (root / "submitted" / author / ASSIGNMENT).glob("*.ipynb"))
        assert {NAMES[author][0], NAMES[author][2], author, "/home/"} <= set(identifiers_in(raw))
    pages = sorted((root / "peer" / ASSIGNMENT / "packets").glob("*.html"))
    assert [p.stem for p in pages] == sorted(draw.reviews)
    for page in pages + sorted((root / "peer" / ASSIGNMENT / "reports").glob("*.html")):
        text = html.unescape(html.unescape(page.read_text()))  # twice: the reports are in the frames' srcdoc
        assert identifiers_in(text, root) == [], page.name
    packet = (root / "peer" / ASSIGNMENT / "packets" / "example_ada.html").read_text()
    assert all(f"Report {code}" in packet for code in draw.reviews["example_ada"]) and PNG in packet
    assert "[removed]" in html.unescape(packet) and "torch.max(x) stays readable" in html.unescape(packet)


def packet_data(root: Path, reviewer: str) -> dict:
    page = (root / "peer" / ASSIGNMENT / "packets" / f"{reviewer}.html").read_text()
    return json.loads(re.search(r'<script type="application/json" id="packet">(.*?)</script>', page, re.S).group(1))


def quality(author: str) -> float:
    return {"example_ada": 1.0, "example_ivy": 1.0}.get(author, 0.5)


def planned(draw: store.Draw, reviewer: str, code: str, criterion: store.Criterion) -> float:
    """The points ``reviewer`` gives: the far-off reviewer full points, the disputed report's reviewers 0 or full
    points by turns, the others the author's quality (half a point more on one criterion each)."""
    author = draw.authors[code]
    if reviewer == FAR_OFF:
        return criterion.points
    if author == DISPUTED:
        return 0.0 if draw.reviewers_of(code).index(reviewer) % 2 == 0 else criterion.points
    points = math.floor(criterion.points * quality(author) / 0.5) * 0.5
    bump = sorted(NAMES).index(reviewer) % len(draw.criteria) == draw.criteria.index(criterion)
    return min(points + 0.5 * bump, criterion.points)


def comment(reviewer: str, code: str, task: str) -> str:
    return f"about {task} of {code}: clear, but the loss curve is missing (from reviewer {sorted(NAMES).index(reviewer)})"


def filled(root: Path, draw: store.Draw, reviewer: str, saved: str = "2026-12-01T10:00:00Z") -> dict:
    """The file the packet's Save button writes, filled by program with the planned points."""
    data = packet_data(root, reviewer)
    reviews = []
    for code in data["reports"]:
        reviews.append({"report": code,
                        "scores": {c.task: planned(draw, reviewer, code, c) for c in draw.criteria},
                        "comments": {**{c.task: "" for c in draw.criteria},
                                     draw.criteria[0].task: comment(reviewer, code, draw.criteria[0].task),
                                     "(overall)": f"Well done. {NAMES[reviewer][0]} {NAMES[reviewer][1]}"}})
    return {"form": data["form"], "assignment": data["assignment"], "token": data["token"], "saved": saved,
            "reviews": reviews}


def fill_in_chromium(root: Path, draw: store.Draw, reviewer: str, downloads: Path) -> dict:
    """The reviewer's packet opened in headless Chromium: a score out of range is refused, then every score typed in,
    two comments written, *Save my review* pressed; the downloaded file is loaded into a fresh page again."""
    from selenium.webdriver.common.by import By

    with browser.chromium() as driver:
        driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
        page = (root / "peer" / ASSIGNMENT / "packets" / f"{reviewer}.html").as_uri()
        driver.get(page)
        codes = packet_data(root, reviewer)["reports"]
        first = draw.criteria[0]
        field = lambda code, task, kind: driver.find_element(By.NAME, f"{code}|{task}|{kind}")  # noqa: E731
        field(codes[0], first.task, "score").send_keys(str(first.points + 5))
        driver.find_element(By.ID, "save").click()
        assert "out of range" in driver.find_element(By.ID, "status").text
        assert not list(downloads.iterdir())  # nothing saved
        field(codes[0], first.task, "score").clear()
        for code in codes:
            for criterion in draw.criteria:
                field(code, criterion.task, "score").send_keys(f"{planned(draw, reviewer, code, criterion):g}")
            field(code, first.task, "comment").send_keys(comment(reviewer, code, first.task))
        field(codes[0], "(overall)", "comment").send_keys("Typed in the browser.")
        driver.find_element(By.ID, "save").click()
        target = downloads / packets.form_file(ASSIGNMENT)
        for _ in range(300):
            if target.exists() and target.stat().st_size:
                break
            time.sleep(0.1)
        assert "upload it to the learning platform" in driver.find_element(By.ID, "status").text
        data = json.loads(target.read_text())
        driver.get(page)  # a fresh page: Load fills it from the saved file
        driver.find_element(By.ID, "load").send_keys(str(target))
        for _ in range(150):
            if field(codes[-1], first.task, "comment").get_attribute("value"):
                break
            time.sleep(0.1)
        assert field(codes[-1], first.task, "score").get_attribute("value") == \
            f"{planned(draw, reviewer, codes[-1], first):g}"
        assert field(codes[-1], first.task, "comment").get_attribute("value") == comment(reviewer, codes[-1], first.task)
    return data


def add(z: zipfile.ZipFile, name: str, data, when=(2026, 12, 1, 12, 0, 0)):
    z.writestr(zipfile.ZipInfo(name, date_time=when), data if isinstance(data, (bytes, str)) else json.dumps(data))


def folder(student: str) -> str:
    first, last, lms_id = NAMES.get(student, ("Sam", "Stranger", "1099"))
    return f"{first} {last}_{lms_id}_assignsubmission_file"


def test_peer_review_end_to_end(peer_course, tmp_path):
    root, _, ids = peer_course
    draw = store.load(root, ASSIGNMENT)
    started = time.perf_counter()
    # ada fills her form in a real browser (in CI always: there a missing Chromium fails), everybody else by program
    if os.environ.get("CI") != "true":
        browser.require_browser()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    forms = {r: filled(root, draw, r) for r in draw.reviews}
    forms["example_ada"] = fill_in_chromium(root, draw, "example_ada", downloads)
    assert [r["scores"] for r in forms["example_ada"]["reviews"]] == \
        [r["scores"] for r in filled(root, draw, "example_ada")["reviews"]]  # the page writes what was typed

    # the learning platform's download (Moodle), with what goes wrong
    bens = json.loads(json.dumps(forms["example_ben"]))
    stranger_code = next(c for c in draw.authors if c not in draw.reviews["example_ben"]
                         and draw.authors[c] != "example_ben")
    bens["reviews"].append({**bens["reviews"][0], "report": stranger_code})  # a report not assigned to ben
    chloes = json.loads(json.dumps(forms["example_chloe"]))
    out_of_range = chloes["reviews"][1]["report"]
    chloes["reviews"][1]["scores"][draw.criteria[0].task] = 7  # out of range
    download = tmp_path / "reviews.zip"
    with zipfile.ZipFile(download, "w") as z:
        for reviewer, form in forms.items():
            if reviewer in ("example_ben", "example_chloe", "example_emil", "example_fay", "example_greta"):
                continue
            add(z, f"{folder(reviewer)}/{packets.form_file(ASSIGNMENT)}", form)
        add(z, f"{folder('example_ben')}/{packets.form_file(ASSIGNMENT)}", bens)
        add(z, f"{folder('example_chloe')}/{packets.form_file(ASSIGNMENT)}", chloes)
        add(z, f"{folder('example_emil')}/review-form.html", (root / "peer" / ASSIGNMENT / "packets" /
                                                               "example_emil.html").read_bytes())
        add(z, f"{folder('example_fay')}/{packets.form_file(ASSIGNMENT)}", forms["example_fay"], (2026, 12, 1, 9, 0, 0))
        add(z, f"{folder('example_fay')}/peer-review-lab (1).json", json.dumps(forms["example_fay"])[:500])  # newer, cut
        add(z, f"{folder('example_greta')}/{packets.form_file(ASSIGNMENT)}", forms["example_ada"])  # ada's form
        add(z, f"{folder('stranger')}/{packets.form_file(ASSIGNMENT)}", forms["example_ivy"])
    assert main(["--root", str(root), "peer-collect", ASSIGNMENT, str(download), "--preset", "moodle",
                 "--ids", str(ids)]) == 0

    report = (root / "reports" / ASSIGNMENT / "peer-collect-report.md").read_text()
    assert f"example_ben: `{folder('example_ben')}/peer-review-lab.json`: report {stranger_code} was not assigned " \
           "to example_ben" in report
    assert f"example_chloe: `{folder('example_chloe')}/peer-review-lab.json`: {out_of_range}: " \
           f"{draw.criteria[0].task}: 7 points are out of range 0..{draw.criteria[0].points:g}" in report
    assert "example_emil: `" in report and "the review page itself, not the file its Save button downloads" in report
    assert "peer-review-lab (1).json`: not a saved review form: the file is not valid JSON" in report
    assert "example_greta: `" in report and "saved from another reviewer's packet, not from the packet of " \
                                            "example_greta" in report
    assert "'1099' is not in the id file" in report and "## Rejected: 6" in report
    accepted = {(r, c) for r, codes in draw.reviews.items() for c in codes
                if r not in ("example_emil", "example_greta") and (r, c) != ("example_chloe", out_of_range)}
    stored = {(r.reviewer, r.report): r for r in store.reviews(root, ASSIGNMENT)}
    assert set(stored) == accepted  # nothing else is lost: fay's older file counts, ben's and chloe's other reviews
    for (reviewer, code), review in stored.items():
        assert review.scores == {c.task: planned(draw, reviewer, code, c) for c in draw.criteria}
        assert review.author == draw.authors[code]

    with pytest.raises(ValueError, match="drawn already"):
        assign.assign(root, ASSIGNMENT)
    with pytest.raises(ValueError, match="reviews of this draw of 'lab' are collected already"):
        assign.assign(root, ASSIGNMENT, force=True)

    # a TA grades two tasks of ada's report in the gradebook: the teacher's grade overrides
    from nbgrader.api import Gradebook

    url = course.Layout(root).gradebook_url
    with Gradebook(url) as gb:
        gb.add_submission(ASSIGNMENT, "example_ada")
        for grade_id, notebook, points in (("autodiff_a_tests", "1_autodiff", 0.5),
                                           ("mnist_e_answer", "2_mnist_first_network", 1.0)):
            gb.find_grade(grade_id, notebook, ASSIGNMENT, "example_ada").manual_score = points
        gb.db.commit()
    teacher = {"1(a)": 0.5, "2(e)": 1.0}
    assert main(["--root", str(root), "peer-aggregate", ASSIGNMENT]) == 0

    # the aggregate, computed here from the stored reviews
    points = {c.task: c.points for c in draw.criteria}
    by_report = {code: [r for (r, c) in accepted if c == code] for code in draw.authors}
    with open(root / "grades" / f"{ASSIGNMENT}-peer.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(draw.authors.values())
    expected_flags, disagreement = set(), {}
    for code, reviewers in by_report.items():
        author = draw.authors[code]
        median = {t: statistics.median(stored[(r, code)].scores[t] for r in reviewers) for t in points}
        final = {**median, **(teacher if author == "example_ada" else {})}
        assert {t: float(rows[author][t]) for t in points} == pytest.approx(final, abs=0.01), author
        assert float(rows[author]["total"]) == pytest.approx(sum(final.values()), abs=0.02)
        assert rows[author]["reviews"] == str(len(reviewers)) and rows[author]["report"] == code
        assert rows[author]["max"] == "30" and rows[author]["last_name"] == NAMES[author][1]
        if len(reviewers) >= 2:
            disagreement[author] = statistics.fmean(abs(stored[(r, code)].scores[t] - median[t]) / points[t]
                                                    for r in reviewers for t in points)
            if disagreement[author] > 0.2:
                expected_flags.add(author)
    assert rows["example_ada"]["teacher_graded"] == "2" and rows["example_ben"]["teacher_graded"] == "0"
    assert {a for a, r in rows.items() if r["flagged"] == "yes"} == expected_flags
    assert DISPUTED in expected_flags and len(expected_flags) < len(rows)  # the data does what it was made for
    result = aggregate.aggregate(root, ASSIGNMENT)
    far_off = set()
    for reviewer in draw.reviews:
        lines, to_teacher, far = [], [], []  # far: per compared review, whether it is far off
        for code in (c for (r, c) in accepted if r == reviewer):
            others = [r for r in by_report[code] if r != reviewer]
            if len(others) >= 2:
                review = [abs(stored[(reviewer, code)].scores[t] - statistics.median(stored[(o, code)].scores[t]
                                                                                   for o in others)) / points[t]
                          for t in points]
                lines += review
                far.append(statistics.fmean(review) > 0.3)
            if draw.authors[code] == "example_ada":
                to_teacher += [abs(stored[(reviewer, code)].scores[t] - teacher[t]) / points[t] for t in teacher]
        me = result.reviewers[reviewer]
        assert me.distance == (pytest.approx(statistics.fmean(lines)) if lines else None), reviewer
        assert me.teacher_distance == (pytest.approx(statistics.fmean(to_teacher)) if to_teacher else None)
        if len(far) >= 2 and sum(far) > len(far) / 2:  # (a TA graded one report only: too few to compare with)
            far_off.add(reviewer)
    assert {r for r, me in result.reviewers.items() if me.flagged} == far_off == {FAR_OFF}
    assert result.reviewers[FAR_OFF].bias > 0.3  # kinder than the others

    # feedback: to the authors their points and the anonymous comments, to the reviewers how they compared
    feedback = root / "peer" / ASSIGNMENT / "feedback"
    disputed = html.unescape((feedback / f"{DISPUTED}.html").read_text())
    code = draw.code_of[DISPUTED]
    for reviewer in by_report[code]:
        assert comment(reviewer, code, draw.criteria[0].task) in disputed
    assert "Well done. [removed]" in disputed and f"Reviewer {len(by_report[code])}" in disputed
    for page in feedback.glob("*.html"):
        assert identifiers_in(html.unescape(page.read_text()), root) == [], page.name  # reviewers stay anonymous
    assert "kinder by" in (feedback / f"{FAR_OFF}.html").read_text()
    assert "Your report" not in (feedback / "example_hal.html").read_text()  # hal only reviewed
    report_page = (root / "reports" / ASSIGNMENT / "peer-report.html").read_text()
    assert "consistently far off" in report_page and FAR_OFF in report_page

    # nbgrader export writes the peer grades again (with a TA's later change), next to the per-task file
    with Gradebook(url) as gb:
        gb.find_grade("autodiff_a_tests", "1_autodiff", ASSIGNMENT, "example_ada").manual_score = 1.5
        gb.db.commit()
    (root / "grades" / f"{ASSIGNMENT}-peer.csv").unlink()
    course.nbgrader(root, "export")
    with open(root / "grades" / f"{ASSIGNMENT}-peer.csv", newline="") as f:
        assert {r["student_id"]: r["1(a)"] for r in csv.DictReader(f)}["example_ada"] == "1.5"
    assert (root / "grades" / f"{ASSIGNMENT}-tasks.csv").exists()
    with Gradebook(url) as gb:  # the TA's grades are as the TA left them
        ada = {g.name: g.manual_score for nb in gb.find_submission(ASSIGNMENT, "example_ada").notebooks
               for g in nb.grades}
    assert {k: v for k, v in ada.items() if v is not None} == {"autodiff_a_tests": 1.5, "mnist_e_answer": 1.0}

    # participation: handed in and all reviews stored
    assert main(["--root", str(root), "peer-participation"]) == 0
    with open(root / "reports" / "peer-participation.csv", newline="") as f:
        table = {r["student_id"]: r for r in csv.DictReader(f)}
    passing = {s for s, r in table.items() if r["passes"] == "yes"}
    assert passing == {"example_ada", "example_ben", "example_dev", "example_fay", "example_ivy"}
    hal = len(draw.reviews["example_hal"])
    assert table["example_hal"]["lab handed in"] == "no" and table["example_hal"]["lab reviews"] == f"{hal}/{hal}"
    assert table["example_chloe"]["lab reviews"] == f"{len(draw.reviews['example_chloe']) - 1}/" \
                                                    f"{len(draw.reviews['example_chloe'])}"
    the_rule, _ = participation.participation(root)
    assert str(the_rule) == "1 of 1 (lab) handed in and reviewed (all reviews assigned)"
    assert "5 of 9 students pass it" in (root / "reports" / "peer-participation.html").read_text()
    print(f"reviews, collection, aggregation, export and participation took {time.perf_counter() - started:.1f} s")


def test_collect_refuses_an_unknown_preset_and_a_missing_draw(tmp_path):
    with pytest.raises(ValueError, match="no peer review drawn for 'lab' yet"):
        collect.collect(course.copy_course(ROOT, tmp_path / "c"), ASSIGNMENT, tmp_path / "x.zip", "moodle")
    with pytest.raises(ValueError, match="unknown preset"):
        collect.collect(tmp_path / "c", ASSIGNMENT, tmp_path / "x.zip", "blackboard")


def test_a_form_with_unknown_criteria_and_missing_points_is_explained():
    draw = store.Draw("lab", 0, 1, [store.Criterion("1(a)", "nb", "", 2.0), store.Criterion("1(b)", "nb", "", 1.0)],
                      authors={"R-AAAA": "a", "R-BBBB": "b"}, rounds={"R-AAAA": 1, "R-BBBB": 1},
                      reviews={"b": {"R-AAAA": 1}, "a": {"R-BBBB": 1}}, tokens={"b": "V-1", "a": "V-2"})
    form = {"form": "coursekit-peer-review", "assignment": "lab", "token": "V-1",
            "reviews": [{"report": "R-AAAA", "scores": {"1(a)": 1.25, "9(z)": 1}, "comments": {}}]}
    accepted, problems, empty = collect.check_form(form, "b", draw)
    assert accepted == [] and problems == ["R-AAAA: unknown criterion '9(z)'; 1(a): 1.25 points are not in steps of "
                                           "0.5; no points for 1(b)"]
    form["reviews"] = [{"report": "R-AAAA", "scores": {"1(a)": None, "1(b)": None}, "comments": {"1(a)": ""}}]
    assert collect.check_form(form, "b", draw) == ([], [], ["R-AAAA"])  # not reviewed yet: no error
    form["reviews"] = [{"report": "R-AAAA", "scores": {"1(a)": "2", "1(b)": 0}, "comments": {"1(a)": " good\n"}}]
    (review,), problems, _ = collect.check_form(form, "b", draw)
    assert problems == [] and review.scores == {"1(a)": 2.0, "1(b)": 0.0} and review.comments == {"1(a)": "good"}
    assert collect.check_form({**form, "assignment": "exam"}, "b", draw)[1] == ["a review form of 'exam', not of 'lab'"]
    assert collect.check_form({**form, "token": "V-2"}, "b", draw)[1] == [
        "saved from another reviewer's packet, not from the packet of b"]
