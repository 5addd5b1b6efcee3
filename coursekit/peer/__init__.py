"""Peer review of notebook reports: ``python -m coursekit peer-assign | peer-collect | peer-aggregate |
peer-participation``.

* :mod:`.store`: where peer review keeps its data (``peer/<assignment>/``), the rubric read from the source
  notebooks, the students' names;
* :mod:`.assign`: who reviews whose report (balanced, never one's own or one's group's, reproducible);
* :mod:`.anonymize`: a report without anything that names its author;
* :mod:`.packets`: each reviewer's reports as HTML and the review form (a self-contained HTML page);
* :mod:`.collect`: the filled forms from the learning platform's bulk download, checked;
* :mod:`.aggregate`: the median per report and criterion, agreement, flags, the teacher's override, feedback;
* :mod:`.participation`: who handed in and reviewed how many reports, against ``c.CourseKit.peer_rule``.
"""
