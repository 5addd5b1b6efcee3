"""Import a learning platform's bulk download into ``submitted/``, matching notebooks by content.

``python -m coursekit import-lms <assignment> <download.zip> --preset moodle|canvas|olat [--ids ids.csv]``

1. The download is unpacked, nested zips included, into ``downloaded/<assignment>/extracted/``
   (keeping each file's date from the zip); the zip itself stays in ``downloaded/<assignment>/``.
2. nbgrader's own ``zip_collect`` then collects the files with :class:`LmsCollector`, a
   collector plugin that reads the student from the path the platform gave the file (the preset's
   pattern, mapped through the optional id file) and the notebook from its **content**: a file
   named "Copy of 3_svhn_cnn.ipynb", "3_svhn_cnn (2).ipynb" or "exam.ipynb" lands where it belongs.
   When a student uploaded the same notebook twice, nbgrader keeps the newest.
3. A report says what was imported, what was ambiguous and what was left out, and why
   (``reports/<assignment>/intake-report.md``).

Presets (the path of each file inside the download; ``name`` and ``lms_id`` identify the student):

* ``moodle``: ``<Full Name>_<participant id>_assignsubmission_file[_/]<file>`` (Moodle's
  "Download all submissions", with or without "download submissions in folders").
* ``canvas``: ``<lastfirst>[_late]_<user id>_<submission id>_<file>`` (Canvas "Download
  Submissions"; Canvas appends ``-1``, ``-2`` to resubmitted file names).
* ``olat``: ``<course>_<task title>_<node id>/<Lastname>_<Firstname>_<username>/2_submissions/<file>`` (OpenOlat
  "Task" element, assessment tool, "Download" of the submissions: one folder per participant, in it a folder per
  workflow step, ``1_task``, ``2_submissions``, ``3_corrections``, ...; files outside a participant's folder, such as
  the assessment table ``*.xlsx``, are left out as not notebooks).  A participant's folder may also hold the files
  directly.

The id file is a CSV with a column ``student_id`` and one of ``lms_id``, ``username``,
``email`` or ``name``; without it the platform's id (or the name) becomes the student id.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
import json
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

import nbformat
from nbgrader.plugins import FileNameCollectorPlugin
from traitlets import Float, Unicode

from . import course, release

PRESETS = {
    "moodle": r"(?:.*/)?(?P<name>[^/]+?)_(?P<lms_id>\d+)_assignsubmission_(?:file|onlinetext)_?/?(?:.*/)?(?P<file>[^/]+)$",
    "canvas": r"(?:.*/)?(?P<name>[A-Za-z-]+?)(?:_late|_LATE)?_(?P<lms_id>\d+)_(?P<submission_id>\d+)_(?P<file>[^/]+)$",
    # the participant's folder is the last one before a workflow-step folder ("2_submissions"), or without one the
    # last that looks like <Lastname>_<Firstname>_<username>
    "olat": r"(?:(?!\d+_[a-z]+/)[^/]*/)*(?!\d+_[a-z]+/)(?P<name>[^/]+)_(?P<lms_id>[^/_]+)/(?:.*/)?(?P<file>[^/]+)$",
}
LOG = "intake.jsonl"


# ------------------------------------------------------------------ unpacking the download
def extract(archive: Path, target: Path) -> None:
    """Unpack ``archive`` into ``target``, nested zips into folders named after them, keeping dates."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            name = info.filename
            if info.is_dir() or name.startswith("__MACOSX/") or os.path.basename(name).startswith("._"):
                continue
            path = (target / name).resolve()
            if not path.is_relative_to(target.resolve()) or stat.S_ISLNK(info.external_attr >> 16):
                continue  # no "../", absolute or symbolic-link entries: nothing lands outside the target
            path.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
            stamp = dt.datetime(*info.date_time).timestamp()
            os.utime(path, (stamp, stamp))
            if path.suffix.lower() == ".zip":
                extract(path, path.with_suffix(""))
                path.unlink()


def unpack(download: Path, base: Path, folder: str) -> Path:
    """Keep ``download`` in ``base`` and unpack it (or copy a single file) into a fresh ``base/folder``."""
    extracted = base / folder
    if extracted.exists():
        shutil.rmtree(extracted)
    extracted.mkdir(parents=True)
    kept = base / download.name
    if kept != download:
        shutil.copy2(download, kept)  # the original download is kept
    if zipfile.is_zipfile(download):
        extract(download, extracted)
    else:
        shutil.copy2(download, extracted / download.name)
    return extracted


# ----------------------------------------------------------------- matching by content
def _norm(text: str) -> str:
    return " ".join(text.split())


class ReleaseIndex:
    """The released notebooks of an assignment, for recognising uploads by their content."""

    def __init__(self, release_dir: Path):
        self.notebooks = {}
        for path in sorted(Path(release_dir).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            cells = [c for c in nb.cells if not release.is_added(c)]  # the badge and the check: alike in every notebook
            locked = [_norm(c.source) for c in cells
                      if c.metadata.get("nbgrader", {}).get("locked") and len(_norm(c.source)) >= 30]
            ids = {c.metadata["nbgrader"]["grade_id"] for c in cells if c.metadata.get("nbgrader", {}).get("grade_id")}
            self.notebooks[path.stem] = (locked, ids)

    def scores(self, nb) -> dict[str, float]:
        texts = [_norm(c.source) for c in nb.cells]
        present = set(texts)
        ids = {c.get("metadata", {}).get("nbgrader", {}).get("grade_id") for c in nb.cells} - {None}
        result = {}
        for name, (locked, release_ids) in self.notebooks.items():
            found = 0
            for text in locked:
                if text in present or any(difflib.SequenceMatcher(None, text, t, autojunk=False).quick_ratio() >= 0.9
                                          and difflib.SequenceMatcher(None, text, t, autojunk=False).ratio() >= 0.9
                                          for t in texts):
                    found += 1
            by_text = found / len(locked) if locked else 0.0
            by_id = len(ids & release_ids) / len(release_ids) if release_ids else 0.0
            result[name] = max(by_text, by_id)
        return result

    def match(self, nb, threshold: float = 0.5, margin: float = 0.2) -> tuple[str | None, str]:
        """The released notebook this one is a copy of, or None, with the reason."""
        scores = sorted(self.scores(nb).items(), key=lambda kv: -kv[1])
        if not scores or scores[0][1] < threshold:
            best = f" (best: {scores[0][0]}, {scores[0][1]:.0%})" if scores else ""
            return None, f"its content matches no released notebook{best}"
        if len(scores) > 1 and scores[0][1] - scores[1][1] < margin:
            return None, (f"ambiguous: it matches {scores[0][0]} ({scores[0][1]:.0%}) and "
                          f"{scores[1][0]} ({scores[1][1]:.0%})")
        return scores[0][0], f"content matches {scores[0][0]} ({scores[0][1]:.0%})"


def name_guess(filename: str, names) -> str | None:
    """A released notebook name hidden in a file name ("Copy of X (2).ipynb" -> X)."""
    stem = re.sub(r"^(copy of |kopie von |copie de )+", "", Path(filename).stem, flags=re.I)
    stem = re.sub(r"(\s*\(\d+\)|-\d+)+$", "", stem).strip()
    return stem if stem in names else None


def read_id_map(path: str | Path | None) -> dict[str, str]:
    if not path:
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    mapping = {}
    for row in rows:
        student = (row.get("student_id") or "").strip()
        for key in ("lms_id", "username", "email", "name"):
            if row.get(key):
                mapping[row[key].strip().lower()] = student
    return mapping


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unknown"


def uploader(info: dict, ids: dict[str, str]) -> tuple[str | None, str]:
    """``(student id or None, the key looked up)`` of an upload whose path fits a preset (``info``: the pattern's
    groups): through the id file (``ids``, from :func:`read_id_map`) by the platform's id or the name, or without an
    id file the platform's id (or name) itself."""
    key = (info.get("lms_id") or info.get("name") or "").strip()
    student = (ids.get(key.lower()) or ids.get((info.get("name") or "").strip().lower())
               or (slug(key) if not ids else None))
    return student, key


def olat_step(relative: str) -> str | None:
    """The OpenOlat workflow-step folder of a file that is not a student's upload ("1_task", "3_corrections"), or
    None for an upload ("2_submissions", a revision) or a path without step folders."""
    step = re.search(r"(?:^|/)(\d+_[a-z]+)/", relative)
    return step.group(1) if step and not re.search(r"submission|revision", step.group(1)) else None


# ------------------------------------------------------------ the nbgrader collector plugin
class LmsCollector(FileNameCollectorPlugin):
    """nbgrader ``zip_collect`` collector: student from the platform's path, notebook from the content."""

    preset = Unicode("moodle", help="moodle, canvas or olat (or set named_regexp)").tag(config=True)
    ids = Unicode("", help="CSV mapping the platform's ids or names to student ids").tag(config=True)
    release_dir = Unicode("", help="released notebooks of the assignment (default: release/<assignment>)").tag(config=True)
    threshold = Float(0.5, help="share of the release's read-only cells an upload must contain").tag(config=True)
    log_file = Unicode("", help="where each decision is written as JSON lines").tag(config=True)

    def _setup(self):
        if getattr(self, "_index", None) is not None:
            return
        release = self.release_dir or course.Layout.of(self).release(self.parent.coursedir.assignment_id)
        self._index = ReleaseIndex(Path(release))
        self._ids = read_id_map(self.ids)
        self._pattern = re.compile(self.named_regexp or PRESETS[self.preset])
        self._extracted = Path(self.parent._format_collect_path(self.parent.extracted_directory))
        self._log = Path(self.log_file) if self.log_file else self._extracted.parent / LOG
        self._log.parent.mkdir(parents=True, exist_ok=True)

    def _decide(self, path: str, **entry):
        entry["file"] = os.path.relpath(path, self._extracted)
        with open(self._log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def collect(self, submitted_file: str):
        self._setup()
        relative = os.path.relpath(submitted_file, self._extracted).replace(os.sep, "/")
        match = self._pattern.match(relative)
        if not match:
            self._decide(submitted_file, decision="left out", reason=f"the path does not fit the {self.preset} preset")
            return None
        info = match.groupdict()
        step = olat_step(relative) if self.preset == "olat" else None
        if step:
            self._decide(submitted_file, decision="left out", reason=f"in OpenOlat's {step} folder, not a submission")
            return None
        student, key = uploader(info, self._ids)
        if not student:
            self._decide(submitted_file, decision="left out", reason=f"'{key}' is not in the id file {self.ids}")
            return None
        if not submitted_file.lower().endswith(".ipynb"):
            self._decide(submitted_file, student=student, decision="left out", reason="not a notebook (.ipynb)")
            return None
        try:
            nb = nbformat.read(submitted_file, as_version=4)
            notebook, reason = self._index.match(nb, self.threshold)
            decision = "imported" if notebook else ("ambiguous" if reason.startswith("ambiguous") else "left out")
        except Exception as exc:  # noqa: BLE001 - unreadable: fall back on the file name
            notebook = name_guess(info.get("file") or submitted_file, self._index.notebooks)
            reason = (f"unreadable notebook ({' '.join(str(exc).split())[:120]}); "
                      + (f"imported as {notebook} by its name, grading will report it" if notebook
                         else "its name matches no released notebook"))
            decision = "imported" if notebook else "left out"
        if notebook is None:
            self._decide(submitted_file, student=student, decision=decision, reason=reason)
            return None
        stamp = dt.datetime.fromtimestamp(os.path.getmtime(submitted_file), dt.timezone.utc)
        self._decide(submitted_file, student=student, name=(info.get("name") or "").strip(), decision=decision,
                     notebook=notebook, reason=reason,
                     timestamp=stamp.isoformat())
        return {"student_id": student, "file_id": f"{notebook}.ipynb", "timestamp": stamp.isoformat()}


# ---------------------------------------------------------------------- the command
def import_lms(root: str | Path, assignment: str, download: str | Path, preset: str,
               ids: str | Path | None = None) -> str:
    """Unpack, collect with nbgrader's zip_collect and :class:`LmsCollector`; return the report."""
    root, download = Path(root).resolve(), Path(download).resolve()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(PRESETS)}")
    base = root / "downloaded" / assignment
    extracted = unpack(download, base, "extracted")
    log = base / LOG
    log.unlink(missing_ok=True)
    args = ["zip_collect", assignment, "--force", "--collector=coursekit.intake.LmsCollector",
            f"--LmsCollector.preset={preset}", f"--LmsCollector.log_file={log}"]
    if ids:
        args.append(f"--LmsCollector.ids={Path(ids).resolve()}")
    course.nbgrader(root, *args)
    decisions = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    for d in decisions:  # of two uploads of one notebook nbgrader keeps the newest
        if d["decision"] == "imported":
            copied = root / "submitted" / d["student"] / assignment / f"{d['notebook']}.ipynb"
            if not copied.exists() or copied.read_bytes() != (extracted / d["file"]).read_bytes():
                d["decision"] = "left out"
                d["reason"] = f"an older upload of {d['notebook']}: the newest one counts"
    record_names(root, [d for d in decisions if d["decision"] == "imported"], preset)
    return write_report(root, assignment, decisions)


def split_name(name: str, preset: str) -> tuple[str, str]:
    """``(first, last)`` from the name the platform put in the path: Moodle's "Ada Lovelace", OpenOlat's
    "Lovelace_Ada"; Canvas writes "lovelaceada", which cannot be split (all of it becomes the last name)."""
    name = " ".join(name.replace("_", " " if preset != "olat" else "_").split())
    if preset == "olat" and "_" in name:
        last, first = name.split("_", 1)
        return first.replace("_", " "), last
    if preset == "moodle" and " " in name:
        first, last = name.rsplit(" ", 1)
        return first, last
    return "", name


def record_names(root: Path, imported: list[dict], preset: str) -> None:
    """Give the gradebook's students the names the platform's download has (for the exports), unless they have
    names already."""
    from nbgrader.api import Gradebook

    with Gradebook(course.Layout(root).gradebook_url) as gb:
        for d in imported:
            if not d.get("name"):
                continue
            first, last = split_name(d["name"], preset)
            student = gb.update_or_create_student(d["student"])
            if not (student.first_name or student.last_name):
                gb.update_or_create_student(d["student"], first_name=first or None, last_name=last or None)


def write_report(root: Path, assignment: str, decisions: list[dict]) -> str:
    lines = [f"# Import of '{assignment}'", ""]
    for title, kind in (("Imported", "imported"), ("Ambiguous (not imported)", "ambiguous"), ("Left out", "left out")):
        rows = [d for d in decisions if d["decision"] == kind]
        lines += [f"## {title}: {len(rows)}", ""]
        for d in sorted(rows, key=lambda d: (d.get("student", ""), d["file"])):
            target = f" -> submitted/{d['student']}/{assignment}/{d['notebook']}.ipynb" if d.get("notebook") else ""
            who = f"{d['student']}: " if d.get("student") else ""
            lines.append(f"- {who}`{d['file']}`{target}: {d['reason']}")
        lines.append("")
    text = "\n".join(lines)
    path = course.Layout(root).reports(assignment) / "intake-report.md"
    path.write_text(text)
    return text
