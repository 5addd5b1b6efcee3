"""The pinned environment: pip and conda pins agree, and this environment has them."""

from coursekit import env


def test_requirements_and_environment_yml_pin_the_same_versions():
    pip, conda = env.pip_pins(), env.conda_pins()
    assert pip == conda, {name: (pip.get(name), conda.get(name)) for name in set(pip) | set(conda)
                          if pip.get(name) != conda.get(name)}
    assert pip["torch"] == "2.14.1" and pip["torchvision"] == "0.29.1"


def test_this_environment_has_the_pinned_versions():
    assert env.problems() == []


def test_a_missing_or_wrong_package_is_named(tmp_path):
    (tmp_path / "requirements.txt").write_text("torch==0.0.1\nno-such-package-xyz==1.0\n")
    found = env.problems(tmp_path)
    assert any(p.startswith("torch: ") and "0.0.1 pinned" in p for p in found)
    assert "no-such-package-xyz: not installed (need 1.0)" in found
