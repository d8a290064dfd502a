"""Check systemd/bgpwatch.service: systemd accepts it, its hardening score, and its key directives."""

from __future__ import annotations

import errno
import os
import pwd
import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "bgpwatch.service"
MAX_EXPOSURE = 2.0
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
# Plain, uncoloured, unpaged output whatever the CI terminal is.
ANALYZE_ENV = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "LC_ALL": "C.UTF-8"}
EXPOSURE_RE = re.compile(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)")

needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Return {section: {key: [values]}} with systemd's rule that an empty assignment resets a list."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"directive outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {raw!r}"
        value = value.strip()
        if not value:
            current[key.strip()] = []
            continue
        current.setdefault(key.strip(), []).append(value)
    return sections


def verifiable_copy(directory: Path, unit_text: str | None = None) -> Path:
    """Write the unit under its own name with ExecStart pointing at /bin/true, otherwise unchanged."""
    text = UNIT.read_text() if unit_text is None else unit_text
    true = shutil.which("true") or "/bin/true"
    replaced, count = re.subn(r"(?m)^ExecStart=.*$", f"ExecStart={true}", text)
    assert count == 1, "the unit must have exactly one ExecStart= line"
    copy = directory / UNIT.name
    copy.write_text(replaced)
    return copy


def verify_problems(unit: Path) -> tuple[int, list[str]]:
    """Run systemd-analyze verify and return its exit code and the output lines naming the unit."""
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        env=ANALYZE_ENV,
        timeout=60,
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    return proc.returncode, [line for line in lines if unit.name in line]


def exposure(unit: Path) -> float:
    """Return the overall exposure level systemd-analyze security gives the unit file, offline."""
    assert SYSTEMD_ANALYZE is not None
    proc = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        env=ANALYZE_ENV,
        timeout=60,
    )
    match = EXPOSURE_RE.search(proc.stdout + proc.stderr)
    assert match, f"no exposure level in systemd-analyze output (rc {proc.returncode}): {proc.stderr!r}"
    return float(match.group(1))


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return parse_unit(UNIT.read_text())["Service"]


@needs_analyze
def test_verify_is_clean(tmp_path: Path) -> None:
    rc, problems = verify_problems(verifiable_copy(tmp_path))
    assert rc == 0
    assert problems == []


@needs_analyze
def test_verify_check_catches_a_typo(tmp_path: Path) -> None:
    # Unknown keys only warn (exit 0): this proves the warning filter above can fail.
    text = UNIT.read_text().replace("Type=notify", "Tpye=notify")
    _, problems = verify_problems(verifiable_copy(tmp_path, text))
    assert any("Tpye" in line for line in problems)


@needs_analyze
def test_exposure_level_is_low() -> None:
    assert exposure(UNIT) <= MAX_EXPOSURE


@needs_analyze
def test_exposure_parser_sees_an_unhardened_unit(tmp_path: Path) -> None:
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    assert exposure(bare) > 5.0


def test_lifecycle_directives(service: dict[str, list[str]]) -> None:
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert service["WatchdogSec"] == ["30s"]
    assert service["ExecStart"] == ["/opt/bgpwatch/bin/bgpwatch run --config /etc/bgpwatch/bgpwatch.yaml"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    assert service["KillMode"] == ["mixed"]
    assert service["StateDirectory"] == ["bgpwatch"]
    assert service["RuntimeDirectory"] == ["bgpwatch"]
    assert service["ConfigurationDirectory"] == ["bgpwatch"]


def test_privilege_directives(service: dict[str, list[str]]) -> None:
    assert service["User"] == ["bgpwatch"]
    assert service["Group"] == ["bgpwatch"]
    assert "DynamicUser" not in service
    assert service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert service["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["UMask"] == ["0077"]
    assert sorted(" ".join(service["RestrictAddressFamilies"]).split()) == ["AF_INET", "AF_INET6", "AF_UNIX"]


def test_settings_that_would_break_the_daemon_stay_off(service: dict[str, list[str]]) -> None:
    # PrivateUsers: capabilities in a child user namespace don't count for port 179 on the host.
    assert service.get("PrivateUsers", ["no"]) == ["no"]
    # MemoryDenyWriteExecute: PyPy's JIT aborts without W+X memory (ExaBGP may run under PyPy).
    assert service.get("MemoryDenyWriteExecute", ["no"]) == ["no"]
    # ProcSubset=pid hides /proc/stat: prometheus-client then exports no process_* metrics.
    assert service.get("ProcSubset", ["all"]) == ["all"]


SETPRIV = shutil.which("setpriv")
SYSTEM_PYTHON = "/usr/bin/python3"
# What ExaBGP does as the daemon's child: bind the BGP port and set a TCP MD5 key.
CHILD = r"""
import errno, socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
addr = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s", 179, socket.inet_aton("127.0.0.1"))
key = b"not-a-real-secret"
s.setsockopt(socket.IPPROTO_TCP, 14, addr.ljust(128, b"\0") + struct.pack("=BBHI", 0, 0, len(key), 0)
             + key.ljust(80, b"\0"))
try:
    socket.socket().bind((sys.argv[1], 179))
    print("bound")
except OSError as exc:
    print(errno.errorcode[exc.errno])
"""
PARENT = (
    "import subprocess, sys; subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], check=True)"
)


def run_as_nobody(caps: list[str], address: str) -> str:
    """Run PARENT -> CHILD as nobody with only `caps` (setpriv names), as systemd would start the unit."""
    assert SETPRIV is not None
    nobody = pwd.getpwnam("nobody")
    cap_list = "".join(f",+{cap}" for cap in caps)
    cmd = [
        SETPRIV,
        f"--reuid={nobody.pw_uid}",
        f"--regid={nobody.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        f"--inh-caps=-all{cap_list}",
        f"--bounding-set=-all{cap_list}",
    ]
    if caps:
        cmd.append("--ambient-caps=" + ",".join(f"+{cap}" for cap in caps))
    cmd += [SYSTEM_PYTHON, "-c", PARENT, CHILD, address]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to nobody with chosen capabilities")
@pytest.mark.skipif(SETPRIV is None, reason="setpriv (util-linux) is not installed")
@pytest.mark.skipif(not os.access(SYSTEM_PYTHON, os.X_OK), reason=f"{SYSTEM_PYTHON} is not installed")
def test_unit_capabilities_let_the_exabgp_child_bind_port_179(service: dict[str, list[str]]) -> None:
    caps = [cap.lower().removeprefix("cap_") for cap in " ".join(service["AmbientCapabilities"]).split()]
    address = f"127.179.{os.getpid() % 250 + 1}.1"
    # EADDRINUSE means the permission check passed and something else owns the port.
    assert run_as_nobody(caps, address) in {"bound", errno.errorcode[errno.EADDRINUSE]}
    unprivileged_start = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if unprivileged_start.exists() and int(unprivileged_start.read_text()) <= 179:
        pytest.skip("port 179 is unprivileged on this host: the control run would prove nothing")
    assert run_as_nobody([], address) == errno.errorcode[errno.EACCES]
