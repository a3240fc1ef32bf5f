"""Sandboxed execution of one build step.

Linux: bubblewrap, with new user/pid/net/ipc/uts namespaces (no network at all), an environment built from
scratch, the host's ``/usr`` read-only for basic tools (make, perl, sh) but with its compilers, headers and
GCC runtime hidden, and every input mounted read-only at the same fixed path on every machine. Only the
directories mounted writable survive the step.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hermetic import cancel, host_tools
from hermetic.errors import ConfigError, SandboxError

# The user and host name builds see; fixed so nothing host-specific leaks into outputs.
SANDBOX_UID = 1000
SANDBOX_HOSTNAME = "hermetic"

# Host programs that must not be used by accident: every compile and link goes through the pinned toolchain.
_POISONED_PATTERNS = (
    "gcc",
    "gcc-[0-9]*",
    "g++",
    "g++-[0-9]*",
    "cc",
    "c++",
    "c89",
    "c99",
    "cpp",
    "cpp-[0-9]*",
    "as",
    "ld",
    "ld.bfd",
    "ld.gold",
    "clang",
    "clang-[0-9]*",
    "clang++",
    "clang++-[0-9]*",
    "*-linux-gnu-gcc*",
    "*-linux-gnu-g++*",
    "*-linux-gnu-cpp*",
    "*-linux-gnu-as",
    "*-linux-gnu-ld*",
)
# Host directories hidden behind empty ones: headers, GCC's runtime and local installs.
_HIDDEN_DIRS = ("/usr/include", "/usr/lib/gcc", "/usr/local", "/usr/libexec/gcc")

# Host programs that can shape outputs: their identities (releases) are part of every action key.
HOST_TOOLS = (
    "sh",
    "bash",
    "make",
    "perl",
    "sed",
    "awk",
    "grep",
    "patch",
    "m4",
    "pkg-config",
    "tar",
    "xz",
    "gzip",
    "zstd",
    "unshare",
    "install",
    "cp",
    "env",
    "cmake",
)


@dataclass(frozen=True)
class Mount:
    """A host path shown inside the sandbox (an empty tmpfs when `source` is None)."""

    source: Path | None
    target: str
    writable: bool = False


@functools.cache
def host_tools_identity() -> dict[str, str]:
    """What each host tool the sandbox exposes is (its release, see :mod:`hermetic.host_tools`; "missing" when
    absent): part of every action key."""
    return host_tools.identify(HOST_TOOLS)


def _poisoned_programs() -> list[str]:
    usr_bin = Path("/usr/bin")
    found: set[str] = set()
    for pattern in _POISONED_PATTERNS:
        # Symlinks need no cover: they point at a covered file, or into /etc/alternatives, absent inside.
        found.update(str(p) for p in usr_bin.glob(pattern) if not p.is_symlink() and p.is_file())
    return sorted(found)


class Sandbox(Protocol):
    """Runs one build step with exactly the given mounts and environment."""

    kind: str

    def run(
        self, argv: Sequence[str], *, mounts: Sequence[Mount], env: Mapping[str, str], cwd: str, log_file: Path
    ) -> int:
        """Run `argv`, appending its output to `log_file`; return its exit status."""
        ...

    def version(self) -> str:
        """What ran the step, for the provenance."""
        ...


@dataclass(frozen=True)
class Emulator:
    """A user-mode emulator that runs another architecture's programs transparently inside the sandbox.

    Attributes:
        arch: (str) the guest architecture (e.g. ``aarch64``), naming the rule.
        program: (Path) the host path of the statically linked emulator (e.g. qemu-aarch64-static).
        sysroot: (str) where the guest's dynamic loader and libraries are, inside the sandbox.
        machine: (int) the guest's ELF ``e_machine`` (183 for AArch64): the files the rule sends to the emulator.
    """

    arch: str
    program: Path
    sysroot: str
    machine: int

    def registration(self) -> str:
        """The binfmt_misc rule: ELF files of this machine run through the emulator. The F flag opens the
        emulator now, so it needs no path inside the sandbox."""
        return f":hermetic-{self.arch}:M::{_elf_magic(self.machine)}:{_ELF_MASK}:{self.program}:F"


def _elf_magic(machine: int) -> str:
    """The first 20 bytes of a 64-bit little-endian ELF executable of `machine`, escaped for binfmt_misc."""
    header = b"\x7fELF\x02\x01\x01" + bytes(9) + b"\x02\x00" + machine.to_bytes(2, "little")
    return "".join(f"\\x{byte:02x}" for byte in header)


# What of those bytes must match: every byte but the OS ABI version, and e_type 2 or 3 (executable or shared
# object, so PIE programs match too).
_ELF_MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff"

# Runs the rest of its arguments in a private user and mount namespace whose own binfmt_misc instance (Linux
# 6.7 and newer) sends foreign ELF files to the emulators: the host's binfmt_misc is neither read nor changed.
_WITH_EMULATORS = (
    "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || exit 125\n"
    'for rule in "$@"; do case $rule in :*) printf "%s" "$rule" > /proc/sys/fs/binfmt_misc/register || exit 125;'
    " shift;; *) break;; esac; done\n"
    'exec "$@"\n'
)


def run_logged(
    command: Sequence[str], *, env: Mapping[str, str], cwd: str | None, log_file: Path, pass_fds: Sequence[int] = ()
) -> int:
    """Run `command` with exactly `env`, appending its output to `log_file`; a stop request ends it and its whole
    process group (it gets one of its own)."""
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
        return cancel.wait(process)


def _last_line(log_file: Path, prefix: str) -> str | None:
    """The last line of `log_file` that starts with `prefix` (bubblewrap's own messages do)."""
    lines = [line for line in log_file.read_text(errors="replace").splitlines() if line.startswith(prefix)]
    return lines[-1] if lines else None


def require_bubblewrap() -> str:
    """The path of ``bwrap``; a one-line ConfigError when it is not installed."""
    found = shutil.which("bwrap")
    if found is None:
        raise ConfigError(
            "bubblewrap (bwrap) is not installed; every build action runs in it",
            hint="install it with: apt-get install bubblewrap (or run ./scripts/bootstrap)",
        )
    return found


def bubblewrap_version() -> str:
    """bubblewrap's version string, or "missing" (recorded in provenance)."""
    found = shutil.which("bwrap")
    if found is None:
        return "missing"
    return subprocess.run([found, "--version"], capture_output=True, text=True).stdout.strip()


class Bubblewrap:
    """Runs commands under bubblewrap; the sandbox of every Linux build."""

    kind = "bubblewrap"

    def __init__(
        self,
        scratch: Path,
        emulators: Sequence[Emulator] = (),
        host_etc: Sequence[str] = (),
        host_compilers: bool = False,
    ) -> None:
        """`scratch` holds the generated /etc files and the poison script; it must exist. `emulators` run
        foreign programs (a cross build's target programs) transparently inside the sandbox.

        For steps that run programs the way a user's machine does (CPython's test suite), never for builds:
        `host_etc` names files of the host's /etc copied into the generated one where present (/etc/services,
        the loader's cache), and `host_compilers` shows the host's compilers, headers and GCC runtime instead
        of blocking them (the suite builds C extensions and asks gcc where libraries are)."""
        self.bwrap = require_bubblewrap()
        self.emulators = tuple(emulators)
        self.host_etc = tuple(host_etc)
        self.host_compilers = host_compilers
        self.scratch = scratch
        self._etc = scratch / "etc"
        self._poison = scratch / "host-compiler-blocked"

    def version(self) -> str:
        """bubblewrap's version string (recorded in provenance)."""
        return bubblewrap_version()

    def _prepare(self) -> None:
        self._etc.mkdir(parents=True, exist_ok=True)
        (self._etc / "passwd").write_text(
            f"root:x:0:0:root:/root:/bin/sh\nbuild:x:{SANDBOX_UID}:{SANDBOX_UID}:build:/build/tmp:/bin/sh\n"
        )
        (self._etc / "group").write_text(f"root:x:0:\nbuild:x:{SANDBOX_UID}:\n")
        (self._etc / "hosts").write_text(f"127.0.0.1 localhost {SANDBOX_HOSTNAME}\n::1 localhost\n")
        (self._etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
        for name in self.host_etc:
            if (Path("/etc") / name).is_file():
                shutil.copyfile(Path("/etc") / name, self._etc / name)
        # Debian's alternatives (awk -> mawk, ...) are shown; the compilers they lead to stay blocked.
        (self._etc / "alternatives").mkdir(exist_ok=True)
        self._link_guest_roots()
        message = "sandbox: the host program $0 is blocked; use the pinned toolchain"
        self._poison.write_text(f'#!/bin/sh\necho "{message}" >&2\nexit 127\n')
        self._poison.chmod(0o755)

    def _link_guest_roots(self) -> None:
        """Point each emulator at its guest's root through /etc/qemu-binfmt/<arch>, the prefix Debian's qemu-user
        reads when QEMU_LD_PREFIX is not set: a program that starts its children with a scrubbed environment
        (the runtime tests, CPython's own test suite) must still find the guest's dynamic loader."""
        links = self._etc / "qemu-binfmt"
        if links.exists():
            shutil.rmtree(links)
        if not self.emulators:
            return
        links.mkdir()
        for emulator in self.emulators:
            (links / emulator.arch).symlink_to(emulator.sysroot)

    def command(self, argv: Sequence[str], mounts: Sequence[Mount], cwd: str) -> list[str]:
        """The full bwrap command line that runs `argv` with `mounts`, starting in `cwd`."""
        assert self.bwrap is not None
        self._prepare()
        cmd = [
            self.bwrap,
            "--unshare-all",
            "--unshare-user",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            SANDBOX_HOSTNAME,
            "--die-with-parent",
            "--new-session",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for name in ("bin", "sbin", "lib", "lib64", "lib32"):
            host = Path("/") / name
            if host.is_symlink():
                cmd += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                cmd += ["--ro-bind", str(host), f"/{name}"]
        for hidden in () if self.host_compilers else _HIDDEN_DIRS:
            if Path(hidden).is_dir():
                cmd += ["--tmpfs", hidden]
        for program in [] if self.host_compilers else _poisoned_programs():
            cmd += ["--ro-bind", str(self._poison), program]
        cmd += ["--ro-bind", str(self._etc), "/etc"]
        if Path("/etc/alternatives").is_dir():
            cmd += ["--ro-bind", "/etc/alternatives", "/etc/alternatives"]
        cmd += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for mount in sorted(mounts, key=lambda m: m.target):
            if mount.source is None:
                cmd += ["--tmpfs", mount.target]
            else:
                cmd += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
        # The root itself (bubblewrap's tmpfs) becomes read-only; only the writable mounts and /tmp remain.
        cmd += ["--remount-ro", "/", "--chdir", cwd, "--", *argv]
        return cmd

    def run(
        self,
        argv: Sequence[str],
        *,
        mounts: Sequence[Mount],
        env: Mapping[str, str],
        cwd: str,
        log_file: Path,
    ) -> int:
        """Run `argv` in the sandbox with exactly `env`, appending its output to `log_file`.

        A sandbox that could not be set up (a mount bubblewrap refuses, no user namespaces) raises SandboxError
        with bubblewrap's own message, so it is never taken for a failure of the step itself.
        """
        status_read, status_write = os.pipe()
        command = self.command(argv, mounts, cwd)
        command[1:1] = ["--json-status-fd", str(status_write)]
        if self.emulators:
            # The guest's dynamic loader and libraries come from the target's sysroot.
            env = {**env, "QEMU_LD_PREFIX": self.emulators[0].sysroot}
            registrations = [e.registration() for e in self.emulators]
            namespace = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _WITH_EMULATORS, "sh"]
            command = [*namespace, *registrations, *command]
        try:
            rc = run_logged(command, env=env, cwd=None, log_file=log_file, pass_fds=(status_write,))
        finally:
            os.close(status_write)
            with os.fdopen(status_read, "rb") as status:
                started = b'"exit-code"' in status.read()  # written once the step itself has ended
        if not started and not cancel.cancelled():
            raise SandboxError(
                f"the sandbox could not be set up: {_last_line(log_file, 'bwrap:') or f'exit status {rc}'}",
                hint=f"full log: {log_file}",
            )
        return rc


class Unsandboxed:
    """Runs commands directly on the host, for hosts without bubblewrap (macOS): the environment is still built
    from scratch, but nothing isolates the step, and the provenance records that.

    The fixed in-sandbox paths an action uses (``/build/src``, ``/toolchain``, ...) cannot be created on such a
    host, so each mount's target is replaced by its host path in the step's argv, environment and directory.
    """

    kind = "unsandboxed"

    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch

    def version(self) -> str:
        """No sandbox program ran the step."""
        return "none (unsandboxed)"

    @staticmethod
    def rewrite(text: str, mounts: Sequence[Mount]) -> str:
        """`text` with every mount target replaced by its host path (longest target first)."""
        for mount in sorted(mounts, key=lambda m: len(m.target), reverse=True):
            if mount.source is not None:
                text = text.replace(mount.target, str(mount.source))
        return text

    def run(
        self,
        argv: Sequence[str],
        *,
        mounts: Sequence[Mount],
        env: Mapping[str, str],
        cwd: str,
        log_file: Path,
    ) -> int:
        """Run `argv` on the host with `env`, its sandbox paths mapped to the mounts' host paths."""
        command = [self.rewrite(arg, mounts) for arg in argv]
        host_env = {name: self.rewrite(value, mounts) for name, value in env.items()}
        return run_logged(command, env=host_env, cwd=self.rewrite(cwd, mounts), log_file=log_file)
