"""Actions under real bubblewrap: no network, no caller environment, no writes outside the output."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from hermetic.action import Action, ActionRunner, Step
from hermetic.content_store import ContentStore
from hermetic.debian import archives_from_apt
from hermetic.errors import ActionError
from hermetic.fetch import Fetcher
from hermetic.sandbox import Bubblewrap, Mount
from hermetic.toolchain import Toolchain, load_toolchain
from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR
from pydist.settings import default_cache_root

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def toolchain() -> Toolchain:
    return load_toolchain(TOOLCHAINS_DIR, "x86_64-unknown-linux-gnu", PINS_SCHEMA)


@pytest.fixture
def runner(tmp_path: Path) -> ActionRunner:
    cache = default_cache_root()
    fetcher = Fetcher(ContentStore(cache / "downloads"), resolve=archives_from_apt().resolve)
    return ActionRunner(
        fetcher=fetcher,
        toolchain_root=cache / "toolchains",
        work_root=tmp_path / "work",
        log_root=tmp_path / "logs",
        jobs=2,
    )


def script_action(toolchain: Toolchain, script: str, name: str = "probe") -> Action:
    return Action(
        name=name,
        rule="test",
        rule_version=1,
        target=toolchain.triple,
        source=None,
        patches=(),
        deps=(),
        toolchain=toolchain,
        env={},
        steps=(Step(name="probe", argv=("/bin/bash", "-c", script), cwd="/build/out"),),
        output="/build/out",
        source_date_epoch=1767225600,
    )


def run_and_unpack(runner: ActionRunner, action: Action, tmp_path: Path) -> Path:
    artifact = tmp_path / f"{action.name}.tar.zst"
    runner.run(action, artifact, [])
    unpacked = tmp_path / "unpacked"
    subprocess.run(["tar", "--zstd", "-xf", str(artifact), "-C", str(tmp_path)], check=True)
    unpacked.mkdir(exist_ok=True)
    return tmp_path


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP server on loopback that records whether anyone connected."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(10)
    connected: list[bool] = []

    def accept() -> None:
        try:
            conn, _ = server.accept()
            connected.append(True)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    server.close()
    assert connected == [], "a sandboxed action reached a server on the host's loopback"


def test_no_network(runner: ActionRunner, toolchain: Toolchain, tmp_path: Path, listener: int) -> None:
    archive = archives_from_apt().main[0]
    host = urllib.parse.urlparse(archive).hostname
    assert host is not None
    address = socket.getaddrinfo(host, 80, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    socket.create_connection((address, 80), timeout=10).close()  # reachable from outside the sandbox
    script = f"""
        probe() {{
            if timeout 5 bash -c "echo > /dev/tcp/$1/$2" 2>/dev/null; then echo open; else echo closed; fi
        }}
        echo "loopback=$(probe 127.0.0.1 {listener})" >> net.txt
        echo "archive=$(probe {address} 80)" >> net.txt
        echo "interfaces=$(ls /sys/class/net 2>/dev/null | tr '\\n' ' ')" >> net.txt
    """
    out = run_and_unpack(runner, script_action(toolchain, script), tmp_path)
    lines = dict(line.split("=", 1) for line in (out / "net.txt").read_text().splitlines())
    assert lines["loopback"] == "closed"
    assert lines["archive"] == "closed"


def test_caller_environment_is_not_visible(
    runner: ActionRunner, toolchain: Toolchain, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HERMETIC_TEST_SECRET", "s3cr3t")
    monkeypatch.setenv("CFLAGS", "-O0 -DLEAKED")
    out = run_and_unpack(runner, script_action(toolchain, "env > env.txt"), tmp_path)
    env = dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines() if "=" in line)
    assert "HERMETIC_TEST_SECRET" not in env
    assert "CFLAGS" not in env
    assert env["SOURCE_DATE_EPOCH"] == "1767225600"
    assert env["LC_ALL"] == "C" and env["TZ"] == "UTC"
    assert env["PATH"].startswith("/toolchain/bin:")
    allowed = set(json.loads(json.dumps(script_action(toolchain, "").full_env())))
    assert set(env) - allowed <= {"PWD", "SHLVL", "_", "MAKEFLAGS", "OLDPWD"}


def test_cannot_write_outside_the_output(runner: ActionRunner, toolchain: Toolchain, tmp_path: Path) -> None:
    checkout = str(REPO_ROOT)
    script = f"""
        try() {{ if ( eval "$2" ) 2>/dev/null; then echo "$1=allowed"; else echo "$1=denied"; fi; }}
        {{
        try deps 'touch /build/deps/x'
        try patches 'touch /build/patches/x'
        try toolchain 'touch /toolchain/x'
        try sysroot 'touch /sysroot/x'
        try usr 'touch /usr/x'
        try etc 'touch /etc/x'
        try root 'touch /x'
        try checkout 'ls {checkout} > /dev/null'
        try home 'ls {Path.home()}/.cache > /dev/null'
        try host_gcc 'gcc --version'
        try output 'touch /build/out/written'
        }} > results.txt
    """
    out = run_and_unpack(runner, script_action(toolchain, script), tmp_path)
    results = dict(line.split("=") for line in (out / "results.txt").read_text().splitlines())
    assert results.pop("output") == "allowed"
    assert results == dict.fromkeys(results, "denied"), results
    assert (out / "written").exists()
    assert not (REPO_ROOT / "x").exists()


def test_failing_step_shows_log_tail_and_path(
    runner: ActionRunner, toolchain: Toolchain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    action = script_action(toolchain, "echo the-last-words; exit 3", name="doomed")
    with pytest.raises(ActionError) as error:
        runner.run(action, tmp_path / "doomed.tar.zst", [])
    message = error.value.one_line()
    assert "step 'probe' failed (exit code 3)" in message
    assert str(runner.log_path(action)) in message
    assert "the-last-words" in capsys.readouterr().out
    assert not (tmp_path / "doomed.tar.zst").exists()


def test_bubblewrap_command_mounts_inputs_read_only(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    sandbox = Bubblewrap(tmp_path / "scratch")
    command = sandbox.command(["true"], [Mount(tmp_path, "/build/deps"), Mount(tmp_path, "/build/out", True)], "/")
    assert ["--ro-bind", str(tmp_path), "/build/deps"] == command[command.index("/build/deps") - 2 :][:3]
    assert ["--bind", str(tmp_path), "/build/out"] == command[command.index("/build/out") - 2 :][:3]
    assert "--unshare-all" in command and "--die-with-parent" in command


def test_progress_lines_and_heartbeat(
    runner: ActionRunner,
    toolchain: Toolchain,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hermetic import log

    monkeypatch.setattr(log, "HEARTBEAT_SECONDS", 0.5)
    run_and_unpack(runner, script_action(toolchain, "echo compiling-step-1; sleep 2", name="slow"), tmp_path)
    out = capsys.readouterr().out
    assert "[start] build slow (x86_64-unknown-linux-gnu)" in out
    assert re.search(
        r"\.\. build slow \(x86_64-unknown-linux-gnu\): still running after \d+\.\ds \(probe: compiling-step-1\)", out
    )
    assert re.search(r"\[ ok  \] build slow \(x86_64-unknown-linux-gnu\) in \d+\.\ds", out)
    log_text = runner.log_path(script_action(toolchain, "", name="slow")).read_text()
    assert "$ /bin/bash -c echo compiling-step-1; sleep 2\ncompiling-step-1\n# finished in" in log_text


def test_a_sandbox_that_cannot_be_set_up_is_not_a_failed_step(tmp_path: Path) -> None:
    from hermetic.errors import SandboxError

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    log = tmp_path / "log"
    log.write_text("")
    sandbox = Bubblewrap(scratch)
    # A step that itself fails is an exit status...
    assert (
        sandbox.run(["/bin/sh", "-c", "exit 3"], mounts=[], env={"PATH": "/usr/bin:/bin"}, cwd="/", log_file=log) == 3
    )
    # ...but a mount bubblewrap cannot make means the step never ran: bubblewrap's own words, as an error.
    missing = Mount(tmp_path / "does-not-exist", "/build/deps")
    with pytest.raises(SandboxError, match="the sandbox could not be set up: bwrap: Can't find source path"):
        sandbox.run(["/bin/true"], mounts=[missing], env={"PATH": "/usr/bin:/bin"}, cwd="/", log_file=log)


def test_named_host_etc_files_are_shown_and_nothing_else_of_etc(tmp_path: Path) -> None:
    """CPython's test suite looks up service names; a build step sees none of the host's /etc."""
    if not Path("/etc/services").is_file():
        pytest.fail("this host has no /etc/services to show (Debian's netbase; ./scripts/bootstrap installs it)")
    script = "grep -c '^http\\s' /etc/services && test ! -e /etc/hostname && test ! -e /etc/os-release"
    outputs = {}
    for host_etc in ((), ("services", "no-such-file")):
        scratch = tmp_path / f"scratch{len(host_etc)}"
        scratch.mkdir()
        log = tmp_path / f"log{len(host_etc)}"
        log.write_text("")
        env = {"PATH": "/usr/bin:/bin"}
        rc = Bubblewrap(scratch, host_etc=host_etc).run(
            ["/bin/sh", "-c", script], mounts=[], env=env, cwd="/", log_file=log
        )
        outputs[host_etc] = (rc, log.read_text())
    assert outputs[()][0] != 0 and "No such file" in outputs[()][1]
    assert outputs[("services", "no-such-file")] == (0, "1\n")
