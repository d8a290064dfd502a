"""Packaging: LICENSE, the wheel's shipped files (config/ and systemd/, no copy kept by hand), the
`bgpwatch files` command, and the wheel installed into a fresh venv running `files` and `demo`.

The fresh venv gets bgpwatch from the wheel and nothing else; its dependencies are those of the
test venv, seen through a .pth line (installing them from the index takes ~40 s: .ci/package-check
does that, with the Debian package). The systemd snippets are checked with systemd's own tools.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgpwatch.cli import main
from bgpwatch.shipped import copy_files, shipped_files

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_DIRS = ("config", "systemd")
DATA_PREFIX = "bgpwatch-0.1.0.data/data/share/bgpwatch/"


def repository_files() -> dict[str, Path]:
    """Return the files of config/ and systemd/ as git knows them (or as they are, outside git)."""
    try:
        listed = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard", *SHIPPED_DIRS],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [
            p.relative_to(ROOT).as_posix() for d in SHIPPED_DIRS for p in (ROOT / d).rglob("*") if p.is_file()
        ]
    return {name: ROOT / name for name in sorted(listed) if (ROOT / name).is_file()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_license_is_the_apache_2_0_text():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License")
    assert "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert "9. Accepting Warranty or Additional Liability." in text and len(text) > 10_000
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "Apache-2.0"' in pyproject


def test_files_lists_the_checkout_in_a_source_tree():
    result = CliRunner().invoke(main, ["files", "--list"])
    assert result.exit_code == 0, result.output
    listed = [Path(line) for line in result.output.splitlines()]
    assert set(listed) == set(repository_files().values())
    assert ROOT / "systemd" / "bgpwatch-sysusers.conf" in listed


def test_files_copy_keeps_an_edited_copy_unless_forced(tmp_path):
    files = shipped_files()
    copied, kept = copy_files(files, tmp_path)
    assert len(copied) == len(files) and not kept
    unit = tmp_path / "systemd" / "bgpwatch.service"
    assert filecmp.cmp(unit, ROOT / "systemd" / "bgpwatch.service", shallow=False)
    unit.write_text("edited by the operator\n")
    copied, kept = copy_files(files, tmp_path)
    assert copied == [] and kept == [unit] and unit.read_text() == "edited by the operator\n"
    result = CliRunner().invoke(main, ["files", "--copy", str(tmp_path), "--force"])
    assert result.exit_code == 0 and f"copied {unit}" in result.output
    assert filecmp.cmp(unit, ROOT / "systemd" / "bgpwatch.service", shallow=False)
    assert CliRunner().invoke(main, ["files", "--list", "--copy", str(tmp_path)]).exit_code == 2


@pytest.mark.skipif(not shutil.which("systemd-sysusers"), reason="systemd-sysusers not installed")
def test_sysusers_and_tmpfiles_snippets_make_the_units_user_and_directories(tmp_path):
    unit = (ROOT / "systemd" / "bgpwatch.service").read_text()
    assert (
        "User=bgpwatch" in unit and "StateDirectory=bgpwatch" in unit and "RuntimeDirectory=bgpwatch" in unit
    )
    (tmp_path / "etc" / "bgpwatch").mkdir(parents=True)
    (tmp_path / "etc" / "bgpwatch" / "bgpwatch.yaml").write_text("collector: {}\n")
    for kind in ("sysusers", "tmpfiles"):
        target = tmp_path / "usr" / "lib" / f"{kind}.d" / "bgpwatch.conf"
        target.parent.mkdir(parents=True)
        shutil.copy(ROOT / "systemd" / f"bgpwatch-{kind}.conf", target)
    run = {"capture_output": True, "text": True, "timeout": 30}
    done = subprocess.run(["systemd-sysusers", f"--root={tmp_path}", "bgpwatch.conf"], **run)
    assert done.returncode == 0, done.stderr
    user = next(
        line
        for line in (tmp_path / "etc" / "passwd").read_text().splitlines()
        if line.startswith("bgpwatch:")
    )
    _name, _pw, uid, gid, _gecos, home, shell = user.split(":")
    assert int(uid) < 1000 and home == "/var/lib/bgpwatch" and shell == "/usr/sbin/nologin"
    assert f"bgpwatch:x:{gid}:" in (tmp_path / "etc" / "group").read_text()
    done = subprocess.run(["systemd-tmpfiles", f"--root={tmp_path}", "--create", "bgpwatch.conf"], **run)
    assert done.returncode == 0, done.stderr
    for directory in ("var/lib/bgpwatch", "run/bgpwatch"):
        info = (tmp_path / directory).stat()
        assert (info.st_uid, info.st_gid, info.st_mode & 0o777) == (int(uid), int(gid), 0o750), directory
    config = (tmp_path / "etc" / "bgpwatch" / "bgpwatch.yaml").stat()
    assert (config.st_uid, config.st_gid, config.st_mode & 0o777) == (0, int(gid), 0o640)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Build the wheel from a clean copy of the sources (the shared build/ directory must not leak in)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the clean copy of the sources needs git ls-files")
    for name in listed.stdout.splitlines():
        path = ROOT / name
        if path.is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, src / name)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    if done.returncode != 0 and "No matching distribution" in done.stderr:
        pytest.skip(f"cannot get the build backend (setuptools>=68) from the index: {done.stderr[-300:]}")
    assert done.returncode == 0, done.stderr
    (built,) = (tmp / "dist").glob("bgpwatch-*.whl")
    return built


def test_the_wheel_carries_config_and_systemd_byte_for_byte(wheel):
    expected = repository_files()
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n[len(DATA_PREFIX) :]: n for n in archive.namelist() if n.startswith(DATA_PREFIX)}
        assert set(shipped) == set(expected), "pyproject.toml's data-files globs and config/, systemd/ differ"
        for name, member in shipped.items():
            assert archive.read(member) == expected[name].read_bytes(), name
        names = archive.namelist()
    assert "bgpwatch/data/paris.jsonl.gz" in names and "bgpwatch/data/paris.yaml" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)


def test_the_wheel_in_a_fresh_venv_lists_its_files_and_runs_the_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies, not bgpwatch: a plain path line is not a site dir, so the test venv's editable
    # bgpwatch (its own .pth) stays out, and the wheel's bgpwatch comes first on sys.path.
    Path(site, "zz-test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run = {"capture_output": True, "text": True, "timeout": 120, "cwd": tmp_path, "env": env}
    where = subprocess.run([str(python), "-c", "import bgpwatch; print(bgpwatch.__file__)"], **run)
    assert where.stdout.strip().startswith(site), where.stdout + where.stderr
    listed = subprocess.run([str(venv / "bin" / "bgpwatch"), "files", "--list"], **run)
    assert listed.returncode == 0, listed.stderr
    paths = [Path(line) for line in listed.stdout.splitlines()]
    share = venv / "share" / "bgpwatch"
    assert {p.relative_to(share).as_posix() for p in paths} == set(repository_files())
    demo = subprocess.run(
        [str(venv / "bin" / "bgpwatch"), "demo", "--pace", "500", "--api", f"127.0.0.1:{free_port()}"], **run
    )
    assert demo.returncode == 0, demo.stderr
    assert "FIRING" in demo.stdout and "site_down" in demo.stdout and "resolved" in demo.stdout
