"""A cross build reads no host header or library: with poisoned ones on the host's default search paths (in a
private mount namespace), the aarch64 zlib artifact comes out byte for byte as without them."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

import pytest

from conftest import copy_repository, scons_command

pytestmark = pytest.mark.integration

POISON_HEADER = "#error poisoned host header: a cross build must only see its sysroot\n"
GARBAGE_ARCHIVE = b"!<arch>\nnot an archive member: a cross build must only link its sysroot\n"
# Host files a careless cross build would pick up: the C library's headers and archives.
HOST_FILES = ("/usr/include/stdio.h", "/usr/include/zlib.h", "/usr/lib/x86_64-linux-gnu/libc.a")


def _poisoning(poison: Path) -> list[str]:
    """Shell commands (for a private mount namespace) that cover the host's files and /usr/local with poison."""
    commands = []
    for path in HOST_FILES:
        if Path(path).exists():
            source = poison / ("poison.h" if path.endswith(".h") else "garbage.a")
            commands.append(f"mount --bind {source} {path}")
    commands.append(f"mount -t tmpfs tmpfs /usr/local/include && cp {poison / 'poison.h'} /usr/local/include/zlib.h")
    commands.append(f"mount -t tmpfs tmpfs /usr/local/lib && cp {poison / 'garbage.a'} /usr/local/lib/libc.a")
    # Proof that the poison bites whatever does look at the host: the host's own compiler fails on it.
    commands.append("! echo '#include <stdio.h>' | gcc -E - >/dev/null 2>&1")
    return commands


def _build(repo: Path, build_dir: Path, poison: Path | None) -> subprocess.CompletedProcess[str]:
    scons = " ".join(shlex.quote(a) for a in scons_command())
    build = f"{scons} -Q zlib target=aarch64-unknown-linux-gnu scons_cache=off build_dir={shlex.quote(str(build_dir))}"
    script = " && ".join([*(_poisoning(poison) if poison else []), build])
    argv = ["unshare", "-m", "sh", "-c", script] if poison else ["sh", "-c", script]
    return subprocess.run(argv, cwd=repo, capture_output=True, text=True, timeout=1800)


def test_poisoned_host_headers_and_libraries_change_nothing(tmp_path: Path) -> None:
    assert Path("/usr/include/stdio.h").exists(), "the host needs its libc headers for the poison to mean anything"
    repo = copy_repository(tmp_path / "repo")
    poison = tmp_path / "poison"
    poison.mkdir()
    (poison / "poison.h").write_text(POISON_HEADER)
    (poison / "garbage.a").write_bytes(GARBAGE_ARCHIVE)

    clean = _build(repo, tmp_path / "clean", None)
    assert clean.returncode == 0, clean.stdout[-3000:] + clean.stderr[-3000:]
    poisoned = _build(repo, tmp_path / "poisoned", poison)
    assert poisoned.returncode == 0, poisoned.stdout[-3000:] + poisoned.stderr[-3000:]

    name = "aarch64-unknown-linux-gnu/deps/zlib-1.3.1.tar.zst"
    clean_digest, poisoned_digest = (
        hashlib.sha256((tmp_path / k / name).read_bytes()).hexdigest() for k in ("clean", "poisoned")
    )
    assert clean_digest == poisoned_digest
