"""The data the graded notebooks read is fetched into the places they read it from."""

from pathlib import Path

import pytest

from coursekit import course, download, offline


@pytest.fixture
def data_env(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("COURSE_DATA_DIR", str(data))
    monkeypatch.setenv("TORCH_HOME", str(data / "torch"))
    return data


def test_offline_fixtures_are_exactly_the_files_the_notebooks_read(data_env):
    # the fixtures are written where torchvision and the notebooks' own download code put the real files
    assert [r.name for r in download.missing(data_env)] == [r.name for r in download.RESOURCES]
    offline.prepare(data_env)
    assert download.missing(data_env) == []
    assert download.warning(data_env, ["3_svhn_cnn", "1_gradcam"]) is None


def test_missing_data_is_named_per_notebook(data_env):
    offline.prepare(data_env)
    (data_env / "train_32x32.mat").unlink()
    assert [r.name for r in download.missing(data_env)] == ["svhn"]
    assert download.missing(data_env, ["2_elman_gender", "4_true_false_quiz"]) == []
    message = download.warning(data_env, ["3_svhn_cnn"])
    assert "SVHN" in message and "download-data" in message


def test_download_fetches_only_what_is_missing_and_reports_failures(data_env, monkeypatch):
    offline.prepare(data_env)
    (data_env / "name_gender_dataset.csv").unlink()
    (data_env / "cifar-10-batches-py" / "test_batch").unlink()
    fetched = []

    def fake(resource):
        def fetch(data_dir: Path, torch_home: Path):
            fetched.append(resource.name)
            if resource.name == "cifar10":
                raise OSError("no network")
            (data_dir / "name_gender_dataset.csv").write_text("Name,Gender,Count,Probability\n")
        return fetch

    monkeypatch.setattr(download, "RESOURCES", tuple(
        download.Resource(r.name, r.what, r.files, fake(r), r.size, r.fixture) for r in download.RESOURCES))
    failures = download.download(data_env, say=lambda line: None)
    assert sorted(fetched) == ["cifar10", "names"]
    assert failures == ["cifar10: OSError: no network"]
    assert [r.name for r in download.missing(data_env)] == ["cifar10"]


def test_every_resource_has_an_offline_stand_in_where_the_notebooks_read_it(offline_env):
    """One row per dataset: its download and its fixture; the offline folder holds every file a notebook reads."""
    data_dir = Path(offline_env["COURSE_DATA_DIR"])
    assert all(r.present(data_dir, Path(offline_env["TORCH_HOME"])) for r in download.RESOURCES)
    configured = {nb for notebooks in course.assignments(course.ROOT).values() for nb in notebooks}
    assert set(download.NEEDS) <= configured  # no row for a notebook that is not in the course
