"""The filled review forms, from the learning platform's bulk download: ``python -m coursekit peer-collect
<assignment> <download.zip> --preset moodle|canvas|olat [--ids ids.csv]``.

The download is unpacked as ``import-lms`` unpacks one (:func:`coursekit.intake.unpack`: nested zips, dates kept)
into ``downloaded/<assignment>/peer-reviews/``, and each file is mapped to the student who uploaded it with the same
presets and id file (:func:`coursekit.intake.uploader`).  Then each file is checked:

* the uploader is a reviewer of the assignment, the file is a form saved from the packet (``.json``), of this
  assignment, with the token of the uploader's packet (not a friend's);
* per report: the report exists and was assigned to this reviewer, every criterion is one of the rubric's, every score
  a number from 0 to the criterion's points in steps of 0.5, none missing.  A report without any points or comments
  is "not reviewed yet" (not an error).

A review that passes is stored in ``peer/<assignment>/reviews.csv`` (with earlier collections: per reviewer and report
the newest upload counts).  Everything else is listed with the reason in ``reports/<assignment>/peer-collect-report.md``;
one broken review costs nothing but itself.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from pathlib import Path

from .. import course, intake
from . import store
from .packets import form_file

STEP = 0.5


def check_form(data, reviewer: str, draw: store.Draw) -> tuple[list[store.Review], list[str], list[str]]:
    """``(reviews that pass, problems, reports not reviewed yet)`` of a form ``reviewer`` uploaded."""
    if not isinstance(data, dict) or data.get("form") != "coursekit-peer-review":
        return [], [f"not a review form saved from a packet ({form_file(draw.assignment)})"], []
    if data.get("assignment") != draw.assignment:
        return [], [f"a review form of '{data.get('assignment')}', not of '{draw.assignment}'"], []
    if data.get("token") != draw.tokens.get(reviewer):
        other = "another reviewer's packet" if data.get("token") in draw.tokens.values() else "an unknown packet"
        return [], [f"saved from {other}, not from the packet of {reviewer}"], []
    accepted, problems, empty = [], [], []
    entries = data.get("reviews")
    if not isinstance(entries, list):
        return [], ["the form holds no list of reviews"], []
    for entry in entries:
        code = str(entry.get("report", "")) if isinstance(entry, dict) else ""
        if code not in draw.authors:
            problems.append(f"report {code or '?'} does not exist")
            continue
        if code not in draw.reviews.get(reviewer, {}):
            problems.append(f"report {code} was not assigned to {reviewer}")
            continue
        scores, comments = entry.get("scores") or {}, entry.get("comments") or {}
        if not isinstance(scores, dict) or not isinstance(comments, dict):
            problems.append(f"{code}: scores and comments are not tables")
            continue
        comments = {task: " ".join(str(text).split()) if task != store.OVERALL else str(text).strip()
                    for task, text in comments.items() if text and str(text).strip()}
        wrong, missing, checked = [], [], {}
        for task in set(scores) | set(comments):
            if task != store.OVERALL and draw.criterion(task) is None:
                wrong.append(f"unknown criterion {task!r}")
        for criterion in draw.criteria:
            value = scores.get(criterion.task)
            if value is None or value == "":
                missing.append(criterion.task)
                continue
            try:
                points = float(value)
            except (TypeError, ValueError):
                wrong.append(f"{criterion.task}: {value!r} is not a number")
                continue
            if not math.isfinite(points) or not 0 <= points <= criterion.points:
                wrong.append(f"{criterion.task}: {value} points are out of range 0..{criterion.points:g}")
            elif abs(points / STEP - round(points / STEP)) > 1e-9:
                wrong.append(f"{criterion.task}: {value} points are not in steps of {STEP:g}")
            else:
                checked[criterion.task] = points
        if not checked and not wrong and not comments:
            empty.append(code)
            continue
        if missing:
            wrong.append(f"no points for {', '.join(missing)}")
        if wrong:
            problems.append(f"{code}: " + "; ".join(wrong))
            continue
        accepted.append(store.Review(reviewer, code, draw.authors[code], checked, comments))
    return accepted, problems, empty


def read_form(path: Path, assignment: str):
    """The JSON of an uploaded file, or a ValueError that says why it is not a saved form."""
    if path.suffix.lower() in (".html", ".htm"):
        raise ValueError(f"the review page itself, not the file its Save button downloads ({form_file(assignment)})")
    if path.suffix.lower() != ".json":
        raise ValueError(f"not a saved review form ({form_file(assignment)})")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a saved review form: the file is not valid JSON ({error})") from None


def collect(root: str | Path, assignment: str, download: str | Path, preset: str, ids: str | Path | None = None) -> str:
    """Check and store the forms in ``download``; return the report (also written to the reports folder)."""
    root, download = Path(root).resolve(), Path(download).resolve()
    if preset not in intake.PRESETS:
        raise ValueError(f"unknown preset {preset!r}: choose one of {', '.join(intake.PRESETS)}")
    draw = store.load(root, assignment)
    extracted = intake.unpack(download, root / "downloaded" / assignment, "peer-reviews")
    pattern, id_map = re.compile(intake.PRESETS[preset]), intake.read_id_map(ids)
    kept = {(r.reviewer, r.report): r for r in store.reviews(root, assignment)}
    rejected, stored = [], 0
    for path in sorted(p for p in extracted.rglob("*") if p.is_file()):
        relative = path.relative_to(extracted).as_posix()
        match = pattern.match(relative)
        reviewer, key = intake.uploader(match.groupdict(), id_map) if match else (None, "")
        if not match or not reviewer:
            rejected.append(("", relative, f"the path does not fit the {preset} preset" if not match
                             else f"'{key}' is not in the id file {ids}"))
            continue
        if reviewer not in draw.reviews:
            rejected.append((reviewer, relative, f"{reviewer} has no reviews to do for '{assignment}'"))
            continue
        try:
            data = read_form(path, assignment)
        except ValueError as error:
            rejected.append((reviewer, relative, str(error)))
            continue
        accepted, problems, _ = check_form(data, reviewer, draw)
        rejected += [(reviewer, relative, problem) for problem in problems]
        uploaded = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).isoformat()
        for review in accepted:
            review.saved, review.file = uploaded, relative
            old = kept.get((reviewer, review.report))
            if old is None or old.saved <= uploaded:
                kept[(reviewer, review.report)] = review
            stored += 1
    store.write_reviews(root, assignment, list(kept.values()))
    return write_report(root, draw, kept, rejected, stored)


def write_report(root: Path, draw: store.Draw, kept: dict, rejected: list[tuple[str, str, str]], stored: int) -> str:
    assigned = sum(len(codes) for codes in draw.reviews.values())
    lines = [f"# Peer reviews of '{draw.assignment}'", "",
             f"{stored} reviews accepted from this download; {len(kept)} of {assigned} assigned reviews stored in "
             f"`peer/{draw.assignment}/reviews.csv`.", "", f"## Rejected: {len(rejected)}", ""]
    for reviewer, file, reason in sorted(rejected):
        lines.append(f"- {reviewer + ': ' if reviewer else ''}`{file}`: {reason}")
    missing = {r: sorted(c for c in codes if (r, c) not in kept) for r, codes in sorted(draw.reviews.items())}
    missing = {r: codes for r, codes in missing.items() if codes}
    lines += ["", f"## Not reviewed yet: {sum(len(c) for c in missing.values())} reviews of {len(missing)} reviewers",
              ""]
    lines += [f"- {r}: {', '.join(codes)}" for r, codes in missing.items()]
    text = "\n".join(lines) + "\n"
    (course.Layout(root).reports(draw.assignment) / "peer-collect-report.md").write_text(text)
    return text
