#!/usr/bin/env bash
# Build the Debian package of bgpwatch: a virtualenv in /opt/bgpwatch, assembled with dpkg-deb.
#
#   packaging/build-deb.sh [OUTDIR]        (default OUTDIR: dist/; prints the .deb's path last)
#
# Layout of the package (packaging/README.md says why this and not dh-virtualenv):
#   /opt/bgpwatch/                      CPython venv: bgpwatch (the wheel of this tree) and its dependencies
#   /opt/bgpwatch/exabgp-pypy/          PyPy venv with ExaBGP, only when pypy3 is on the build host
#                                       (bgpwatch finds it by itself: bgpwatch.collector.supervisor)
#   /usr/bin/bgpwatch                   -> /opt/bgpwatch/bin/bgpwatch
#   /lib/systemd/system/bgpwatch.service, /usr/lib/sysusers.d/bgpwatch.conf, /usr/lib/tmpfiles.d/bgpwatch.conf
#   /etc/bgpwatch/bgpwatch.yaml         conffile: config/bgpwatch.example.yaml
#   /usr/share/doc/bgpwatch/            copyright (LICENSE), README.md; the rest via `bgpwatch files`
# Every file comes from config/, systemd/ and the wheel: nothing is kept twice in the repository.
#
# Needs: dpkg-deb, Debian's python3 with python3-venv; pypy3 (optional); the Python package index.
# Environment: PYTHON (default /usr/bin/python3: the interpreter the venv is made with and the package
# depends on), PYPY (default pypy3; PYPY= disables the PyPy venv), PIP_* as pip reads them.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
OUTDIR=$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)
# Debian's own interpreter, never one from PATH (pyenv, a venv): the package depends on python3.X and
# the venv's bin/python points at it, so it must exist, readable by the service user, on every host.
PYTHON=${PYTHON:-/usr/bin/python3}
PYPY=${PYPY-/usr/bin/pypy3}
PREFIX=/opt/bgpwatch
t0=$(date +%s)
say() { echo "build-deb: $* ($(($(date +%s) - t0)) s)" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bgpwatch-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

version=$("$PYTHON" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
arch=$(dpkg --print-architecture)
debversion="${version}-1"

# 1. The wheel, from a clean copy of the sources: a shared build/ directory must not leak stale files.
mkdir -p "$work/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # tracked files plus new ones not ignored, as they are in the work tree
  git -C "$SRC" ls-files -z --cached --others --exclude-standard \
    | (cd "$SRC" && xargs -0 cp --parents -t "$work/src" 2>/dev/null || true)
else
  tar -C "$SRC" --exclude=./.venv --exclude=./build --exclude=./dist --exclude=./.git -cf - . | tar -C "$work/src" -xf -
fi

# 2. The venv, made inside the staging root, then moved to its real path: shebangs and scripts name
#    /opt/bgpwatch, and the byte code is compiled with the installed paths (tracebacks show real files).
relocate() {  # relocate VENV_DIR: rewrite the staging path to the installed one
  local venv=$1 staged=$root$PREFIX
  grep -rlI --null -F "$staged" "$venv/bin" "$venv/pyvenv.cfg" 2>/dev/null | xargs -0r sed -i "s|$staged|$PREFIX|g"
  find "$venv" -name direct_url.json -delete  # names the build's temporary wheel path
}
"$PYTHON" -m venv "$root$PREFIX"
# pip builds the wheel in an isolated environment of its own: nothing of the build lands in the venv.
"$root$PREFIX/bin/pip" wheel -q --disable-pip-version-check --no-deps -w "$work/wheel" "$work/src"
wheel=$(ls "$work"/wheel/bgpwatch-*.whl)
say "wheel $(basename "$wheel")"
"$root$PREFIX/bin/pip" install -q --disable-pip-version-check --no-compile "$wheel"
# pip and setuptools stay: an operator may add a plug-in or an extra with /opt/bgpwatch/bin/pip.
relocate "$root$PREFIX"
"$root$PREFIX/bin/python" -m compileall -q -j 0 -s "$root" -p / "$root$PREFIX/lib" >/dev/null
exabgp_version=$("$root$PREFIX/bin/python" -c 'from importlib.metadata import version; print(version("exabgp"))')
say "CPython $pyver venv (exabgp $exabgp_version)"

depends="python${pyver}, systemd | systemd-standalone-sysusers, systemd | systemd-standalone-tmpfiles"
pypy_note="no PyPy on the build host: ExaBGP runs under CPython"
if [ -n "$PYPY" ] && command -v "$PYPY" >/dev/null 2>&1 && "$PYPY" -c 'import venv' 2>/dev/null; then
  pypy_venv=$root$PREFIX/exabgp-pypy
  # ExaBGP is pure Python without dependencies: CPython's pip puts the same version straight into the
  # PyPy venv (its own pip, seeded by ensurepip under PyPy, took 20 s more and is not needed).
  "$PYPY" -m venv --without-pip "$pypy_venv"
  site=$("$pypy_venv/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
  "$root$PREFIX/bin/python" -m pip install -q --disable-pip-version-check --no-compile --no-deps \
    --target "$site" "exabgp==$exabgp_version"
  rm -rf "$site/bin"  # entry-point scripts for CPython; bgpwatch runs `python -m exabgp`
  relocate "$pypy_venv"
  "$pypy_venv/bin/python" -m exabgp version >/dev/null
  "$pypy_venv/bin/python" -m compileall -q -j 0 -s "$root" -p / "$pypy_venv/lib" >/dev/null
  depends="$depends, pypy3"
  pypy_note="ExaBGP $exabgp_version runs under PyPy $("$PYPY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)"
  say "PyPy venv for ExaBGP"
fi

# 3. The files an operator needs on the host, from the same snapshot of the repository as the wheel.
snap=$work/src
install -D -m 0644 "$snap/systemd/bgpwatch.service" "$root/lib/systemd/system/bgpwatch.service"
install -D -m 0644 "$snap/systemd/bgpwatch-sysusers.conf" "$root/usr/lib/sysusers.d/bgpwatch.conf"
install -D -m 0644 "$snap/systemd/bgpwatch-tmpfiles.conf" "$root/usr/lib/tmpfiles.d/bgpwatch.conf"
# 0640: the config holds secrets; tmpfiles gives it to group bgpwatch once the group exists (postinst).
install -D -m 0640 "$snap/config/bgpwatch.example.yaml" "$root/etc/bgpwatch/bgpwatch.yaml"
install -d "$root/usr/bin"
ln -s "$PREFIX/bin/bgpwatch" "$root/usr/bin/bgpwatch"
install -D -m 0644 "$snap/LICENSE" "$root/usr/share/doc/bgpwatch/copyright"
install -m 0644 "$snap/README.md" "$root/usr/share/doc/bgpwatch/README.md"

# 4. Control files and maintainer scripts.
install -d "$root/DEBIAN"
install -m 0755 "$snap"/packaging/debian/{postinst,prerm,postrm} "$root/DEBIAN/"
echo /etc/bgpwatch/bgpwatch.yaml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s#@VERSION@#$debversion#" -e "s#@ARCH@#$arch#" -e "s#@DEPENDS@#$depends#" \
    -e "s#@SIZE@#$size#" -e "s#@PYPY@#$pypy_note#" \
    "$snap/packaging/debian/control.in" > "$root/DEBIAN/control"

cp "$wheel" "$OUTDIR/"  # the same wheel, for pip/pipx installs (and .ci/package-check's fresh venv)
deb="$OUTDIR/bgpwatch_${debversion}_${arch}.deb"
# gzip: xz -6 on ~100 MB of venv costs tens of seconds for a few MB saved.
dpkg-deb --root-owner-group -Zgzip -z6 --build "$root" "$deb" >/dev/null
say "built $(du -h "$deb" | cut -f1) package, installed size $((size / 1024)) MiB"
echo "$deb"
