"""The files bgpwatch ships beside its code: example config, Prometheus, Alertmanager, Grafana, systemd.

The repository's config/ and systemd/ are the only copy.  A wheel carries them as data files
(pyproject.toml, [tool.setuptools.data-files]), which pip installs under ``<prefix>/share/bgpwatch/``;
the installed distribution's file list says where.  From a source checkout (an editable install,
where pip installs no data files) they are read from the checkout itself.
"""

from __future__ import annotations

import filecmp
import shutil
from importlib import metadata
from pathlib import Path

SHARE = "share/bgpwatch/"
# The top-level folders of the repository that are shipped (config/ and systemd/).
FOLDERS = ("config", "systemd")


def _from_distribution() -> dict[str, Path]:
    """Return the shipped files of the installed distribution: relative name -> path on disk."""
    try:
        dist = metadata.distribution("bgpwatch")
    except metadata.PackageNotFoundError:
        return {}
    found: dict[str, Path] = {}
    for entry in dist.files or ():
        text = entry.as_posix()
        at = text.find(SHARE)
        if at < 0:
            continue
        path = Path(str(dist.locate_file(entry))).resolve()
        if path.is_file():
            found[text[at + len(SHARE) :]] = path
    return found


def _from_checkout() -> dict[str, Path]:
    """Return the files of config/ and systemd/ of the source checkout this package runs from."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "pyproject.toml").is_file():
        return {}
    found: dict[str, Path] = {}
    for folder in FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and not path.name.startswith("."):
                found[path.relative_to(root).as_posix()] = path
    return found


def shipped_files() -> dict[str, Path]:
    """Return every shipped file, by its name relative to the share directory (e.g. systemd/bgpwatch.service)."""
    return dict(sorted((_from_distribution() or _from_checkout()).items()))


def copy_files(files: dict[str, Path], target: Path, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Copy the files under `target`, keeping their layout; return (copied, kept).

    A file already there with other contents is kept, unless `force`: an operator's edited copy is
    never overwritten silently.
    """
    copied: list[Path] = []
    kept: list[Path] = []
    for name, source in files.items():
        destination = target / name
        if destination.exists() and not force:
            if not filecmp.cmp(source, destination, shallow=False):
                kept.append(destination)
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        copied.append(destination)
    return copied, kept
