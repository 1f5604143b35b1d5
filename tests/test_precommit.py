"""The `ropedoctor-check` pre-commit hook, installed by pre-commit itself from this repository's
`.pre-commit-hooks.yaml`, rejects a commit of a broken config.json and lets a healthy one through.

pre-commit installs a `language: python` hook with `pip install .` into a fresh virtualenv. To do
that offline, pip gets no index (PIP_NO_INDEX) and a wheelhouse built here from the distributions
already installed in the test environment: each one's files (from its RECORD) zipped back into a
wheel with its own tag. The hook repository is a git copy of this working tree, so the hook that
is tested is the one being developed, uncommitted changes included.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import Distribution, distribution
from pathlib import Path

from packaging.requirements import Requirement
from packaging.tags import sys_tags
from pre_commit.clientlib import load_manifest

from conftest import FIXTURES, ROOT

# What pip needs besides ropedoctor's own requirements: the build backend pyproject.toml names.
BUILD_REQUIREMENTS = ("setuptools",)
SUPPORTED_TAGS = {str(tag) for tag in sys_tags()}
# Not part of the installed package's metadata files a wheel must carry.
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


def requirement_closure(names: list[str]) -> dict[str, Distribution]:
    """The installed distributions ``names`` need, transitively (no extras)."""
    found: dict[str, Distribution] = {}
    pending = list(names)
    while pending:
        name = pending.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        dist = distribution(name)
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return found


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack_wheel(dist: Distribution, out: Path) -> Path:
    """A wheel of an installed distribution: its site-packages files, the tag from its WHEEL file."""
    files = [f for f in dist.files or [] if not str(f).startswith("..") and "__pycache__" not in f.parts]
    dist_info = next(f.parts[0] for f in files if f.parts[0].endswith(".dist-info"))
    tags = [line.split(":", 1)[1].strip() for line in (dist.read_text("WHEEL") or "").splitlines()
            if line.startswith("Tag:")]
    tag = next(tag for tag in tags if tag in SUPPORTED_TAGS)  # py2-none-any and py3-none-any: the one pip takes
    wheel = out / f"{dist_info.removesuffix('.dist-info')}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as archive:
        for file in files:
            if file.parts[0] == dist_info and file.name in _INSTALLER_FILES:
                continue
            data = Path(str(file.locate())).read_bytes()
            archive.writestr(file.as_posix(), data)
            writer.writerow([file.as_posix(), _record_hash(data), len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        archive.writestr(f"{dist_info}/RECORD", record.getvalue())
    return wheel


def build_wheelhouse(out: Path) -> None:
    out.mkdir()
    needs = [Requirement(text).name for text in distribution("ropedoctor").requires or []
             if Requirement(text).marker is None]
    for dist in requirement_closure([*needs, *BUILD_REQUIREMENTS]).values():
        repack_wheel(dist, out)


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-c", "user.name=ropedoctor tests", "-c", "user.email=tests@example.invalid",
                           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def hook_repository(out: Path) -> str:
    """A git repository holding what `pip install .` needs of this working tree; its commit id."""
    for name in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy2(ROOT / name, out / name)
    shutil.copytree(ROOT / "ropedoctor", out / "ropedoctor", ignore=shutil.ignore_patterns("__pycache__"))
    assert git(out, "init", "-q").returncode == 0
    git(out, "add", ".")
    assert git(out, "commit", "-q", "-m", "hook").returncode == 0
    return git(out, "rev-parse", "HEAD").stdout.strip()


def test_manifest_declares_the_hook() -> None:
    [hook] = load_manifest(str(ROOT / ".pre-commit-hooks.yaml"))  # pre-commit's own reader, which validates
    assert {key: hook[key] for key in ("id", "name", "entry", "language", "files", "pass_filenames")} == {
        "id": "ropedoctor-check", "name": "ropedoctor check", "entry": "ropedoctor check", "language": "python",
        "files": r"(^|/)config\.json$", "pass_filenames": True}
    files = re.compile(hook["files"])
    assert files.search("config.json") and files.search("models/qwen/config.json")
    assert not files.search("models/qwen/generation_config.json") and not files.search("config.json.bak")


def test_precommit_installs_the_hook_and_guards_commits(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheels"
    build_wheelhouse(wheelhouse)
    (tmp_path / "hooks").mkdir()
    rev = hook_repository(tmp_path / "hooks")

    project = tmp_path / "project"
    project.mkdir()
    assert git(project, "init", "-q").returncode == 0
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {tmp_path / 'hooks'}\n    rev: {rev}\n    hooks:\n      - id: ropedoctor-check\n")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "cache"), "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(wheelhouse), "VIRTUALENV_NO_PERIODIC_UPDATE": "1", "NO_COLOR": "1"}
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    installed = subprocess.run([sys.executable, "-m", "pre_commit", "install", "--install-hooks"], cwd=project,
                               env=env, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    def commit(folder: str, source: Path) -> subprocess.CompletedProcess[str]:
        (project / folder).mkdir(parents=True)
        shutil.copy2(source / "config.json", project / folder / "config.json")
        git(project, "add", ".")
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c",
                               "commit.gpgsign=false", "commit", "-m", folder], cwd=project, env=env,
                              capture_output=True, text=True, timeout=300)

    broken = commit("models/broken", FIXTURES / "broken" / "yarn-legacy-type-conflict")
    output = broken.stdout + broken.stderr
    assert broken.returncode != 0, output
    assert "ropedoctor check" in output and "Failed" in output
    assert "RD201 legacy-type-conflict" in output and "models/broken/config.json" in output
    assert git(project, "rev-parse", "--verify", "-q", "HEAD").returncode != 0  # nothing was committed

    git(project, "rm", "-q", "--cached", "-r", "models/broken")
    shutil.rmtree(project / "models" / "broken")
    healthy = commit("models/qwen", FIXTURES / "qwen2.5-7b-instruct")
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert re.search(r"ropedoctor check\.+Passed", healthy.stdout + healthy.stderr)
    assert git(project, "log", "--format=%s").stdout.split() == ["models/qwen"]
