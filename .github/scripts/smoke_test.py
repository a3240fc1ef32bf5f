"""Run install_only archives natively on a CI runner: unpack each one and check that its interpreter starts,
turns FIPS mode on with the shipped configuration, refuses MD5 for security use, completes the FIPS checks of
hashlib, and creates a venv. Standard library only (it runs before anything is installed).

    python3 smoke_test.py ARCHIVE.tar.gz...
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import textwrap
from pathlib import Path

FIPS_CHECK = textwrap.dedent(
    """
    import _hashlib, hashlib, hmac, sqlite3, ssl, sys
    assert _hashlib.get_fips_mode() == 1, "FIPS mode is off"
    try:
        hashlib.md5()
    except ValueError:
        pass
    else:
        raise AssertionError("md5 for security use was allowed in FIPS mode")
    hashlib.md5(b"x", usedforsecurity=False)
    assert hashlib.sha256(b"abc").hexdigest().startswith("ba7816bf")
    assert hmac.new(b"k", b"m", "sha256").hexdigest()
    ssl.create_default_context()
    print(sys.version.split()[0], ssl.OPENSSL_VERSION, "sqlite", sqlite3.sqlite_version, "FIPS on")
    """
)


def check(archive: Path) -> None:
    """Unpack `archive` and run the checks with its interpreter; raise CalledProcessError on a failure."""
    with tempfile.TemporaryDirectory() as temp:
        with tarfile.open(archive) as tar:
            tar.extractall(temp, filter="tar")
        root = Path(temp) / "python"
        python = root / "bin" / "python3"
        env = {"PATH": "/usr/bin:/bin", "OPENSSL_CONF": str(root / "share" / "ssl" / "openssl-fips.cnf")}
        subprocess.run([str(python), "-I", "-c", FIPS_CHECK], env=env, check=True)
        subprocess.run([str(python), "-I", "-m", "venv", "--without-pip", str(Path(temp) / "venv")], check=True)
        subprocess.run(
            [str(Path(temp) / "venv" / "bin" / "python"), "-c", "import sys; assert sys.prefix != sys.base_prefix"],
            check=True,
        )
    print(f"ok: {archive.name}")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        check(Path(path))
