"""Materialized package sets: built from real .deb files, checked by content, cleaned after interruptions."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from pathlib import Path

import pytest

from conftest import make_pin
from hermetic import toolchain
from hermetic.content_store import ContentStore
from hermetic.errors import ConfigError
from hermetic.fetch import Fetcher
from hermetic.toolchain import PackageSet, materialize


def _deb(tmp_path: Path, files: dict[str, bytes]) -> bytes:
    """A real Debian package holding `files` (built by dpkg-deb)."""
    root = tmp_path / "pkgroot"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: demo\nVersion: 1.0\nArchitecture: all\nMaintainer: test <t@example.invalid>\nDescription: demo\n"
    )
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    out = tmp_path / "demo.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)], check=True)
    return out.read_bytes()


@pytest.fixture
def packages(tmp_path: Path) -> tuple[PackageSet, Fetcher]:
    data = _deb(tmp_path, {"usr/lib/demo/libdemo.so": b"\x7fELF" + b"x" * 4000, "usr/share/doc/demo/README": b"hi\n"})
    store = ContentStore(tmp_path / "cache")
    pin = make_pin(data, name="demo-deb")
    source = tmp_path / "distdir"
    source.mkdir()
    (source / pin.filename).write_bytes(data)
    fetcher = Fetcher(store, distdirs=[source])
    toolchain._VERIFIED.clear()  # a fresh process, as far as the digest check is concerned
    return PackageSet(kind="sysroot", packages=(pin,)), fetcher


def test_same_size_change_in_place_is_repaired(tmp_path: Path, packages: tuple[PackageSet, Fetcher]) -> None:
    package_set, fetcher = packages
    root = tmp_path / "toolchains"
    final = materialize(package_set, fetcher, root)
    library = final / "usr/lib/demo/libdemo.so"
    original = library.read_bytes()
    stat = library.stat()
    library.write_bytes(original[:-1] + b"Y")  # same size, then the old mtime back: only content tells
    os.utime(library, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    toolchain._VERIFIED.clear()  # the next build process
    assert materialize(package_set, fetcher, root) == final
    assert library.read_bytes() == original


def test_older_size_only_manifests_get_digests_recorded(tmp_path: Path, packages: tuple[PackageSet, Fetcher]) -> None:
    package_set, fetcher = packages
    root = tmp_path / "toolchains"
    final = materialize(package_set, fetcher, root)
    (final / ".materialized.sha256.json").unlink()  # as an older checkout sharing the cache left it
    toolchain._VERIFIED.clear()
    assert materialize(package_set, fetcher, root) == final
    assert (final / ".materialized.sha256.json").is_file()


def test_interrupted_unpacks_leave_nothing_behind(tmp_path: Path, packages: tuple[PackageSet, Fetcher]) -> None:
    package_set, fetcher = packages
    root = tmp_path / "toolchains"
    root.mkdir()
    # What a killed unpack of this set leaves, and what one killed two days ago (older random name) left.
    same = root / f".sysroot-{package_set.id}.staging"
    (same / "usr").mkdir(parents=True)
    old = root / ".compiler-k2j3h4"
    (old / "usr" / "bin").mkdir(parents=True)
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))
    recent = root / ".compiler-inuse.staging"  # another unpack, running right now
    recent.mkdir()

    materialize(package_set, fetcher, root)
    assert not same.exists() and not old.exists()
    assert recent.exists()
    assert sorted(p.name for p in root.iterdir()) == sorted([recent.name, f"sysroot-{package_set.id}"])


def _wheel(tmp_path: Path, files: dict[str, bytes]) -> bytes:
    """A real zip file (the shape of a wheel) holding `files`, written by the zip tool."""
    root = tmp_path / "wheelroot"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    out = tmp_path / "demo-1.0-py3-none-any.whl"
    subprocess.run(["zip", "-q", "-r", str(out), "."], cwd=root, check=True)
    return out.read_bytes()


STUB = b"""--- !tapi-tbd
tbd-version:     4
targets:         [ x86_64-macos, arm64e-macos,
                   arm64e.x1-macos ]
install-name:    '/usr/lib/libSystem.B.dylib'
exports:
  - targets:         [ x86_64-macos, arm64-macos, arm64e.x1-macos ]
    symbols:         [ _printf ]
...
"""


def test_a_wheel_is_unpacked_selectively_and_finished(tmp_path: Path) -> None:
    data = _wheel(
        tmp_path,
        {
            "zig/lib/include/any/stdio.h": b"int printf(const char *, ...);\n",
            "zig/lib/include/any/sys/types.h": b"typedef long ssize_t;\n",
            "zig/lib/darwin/libSystem.tbd": STUB,
            "zig/zig": b"\x7fELF not wanted",
            "demo-1.0.dist-info/METADATA": b"Name: demo\n",
        },
    )
    pin = make_pin(data, name="demo-wheel")
    pin = type(pin)(**{**pin.__dict__, "filename": "demo-1.0-py3-none-any.whl"})
    distdir = tmp_path / "distdir"
    distdir.mkdir()
    (distdir / pin.filename).write_bytes(data)
    fetcher = Fetcher(ContentStore(tmp_path / "cache"), distdirs=[distdir])
    sdk = PackageSet(
        kind="sdk",
        packages=(pin,),
        extract=(("zig/lib/include/any", "usr/include"), ("zig/lib/darwin/libSystem.tbd", "usr/lib/libSystem.tbd")),
        finish=("tbd-arm64e.x1-as-arm64",),
    )
    final = materialize(sdk, fetcher, tmp_path / "toolchains")
    files = sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file() and p.name[0] != ".")
    assert files == ["usr/include/stdio.h", "usr/include/sys/types.h", "usr/lib/libSystem.tbd"]
    stub = (final / "usr/lib/libSystem.tbd").read_text()
    assert "targets:         [ x86_64-macos, arm64e-macos, arm64-macos ]" in stub
    assert "targets:         [ x86_64-macos, arm64-macos ]\n    symbols" in stub and "x1" not in stub
    # What is taken and how it is changed are part of the identity: without the rewrite, another directory.
    plain = PackageSet(kind="sdk", packages=(pin,), extract=sdk.extract)
    assert plain.id != sdk.id and plain.identity() != sdk.identity()
    unchanged = materialize(plain, fetcher, tmp_path / "toolchains") / "usr/lib/libSystem.tbd"
    assert unchanged.read_bytes() == STUB


def test_deb_sets_keep_their_ids(packages: tuple[PackageSet, Fetcher]) -> None:
    # The fields zip packages added change nothing for .deb sets: the cached compilers and sysroots stay valid.
    package_set, _fetcher = packages
    assert (
        package_set.id
        == toolchain._digest(
            [toolchain.MATERIALIZER_VERSION, "sysroot", [package_set.packages[0].sha256], ["", (), (), ()]]
        )[:20]
    )
    assert package_set.identity() == [package_set.packages[0].identity()]


def test_unknown_finishing_steps_are_refused(packages: tuple[PackageSet, Fetcher]) -> None:
    package_set, _fetcher = packages
    with pytest.raises(toolchain.ToolchainError, match="unknown finishing step"):
        PackageSet(kind="sdk", packages=package_set.packages, finish=("make-it-work",))


def test_selecting_members_of_a_deb_is_refused(tmp_path: Path, packages: tuple[PackageSet, Fetcher]) -> None:
    package_set, fetcher = packages
    selective = PackageSet(kind="sysroot", packages=package_set.packages, extract=(("usr/lib", "lib"),))
    with pytest.raises(toolchain.ToolchainError, match="only zip packages"):
        materialize(selective, fetcher, tmp_path / "toolchains")
    assert not any((tmp_path / "toolchains").iterdir())


# ------------------------------------------------------------------------------------- the pinned Xcode

XCODE_PIN = {
    "xcode_version": "16.4",
    "clang_version": "Apple clang version 17.0.0 (clang-1700.0.13.5)",
    "sdk_version": "15.5",
}


def _fake_xcrun(
    tmp_path: Path, *, xcode: str = "16.4", sdk: str = "15.5", clang: str = XCODE_PIN["clang_version"]
) -> Path:
    """An ``xcrun`` that answers like one of a given Xcode (these machines have no Mac)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "xcrun").write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        f'  "xcodebuild -version") printf "Xcode {xcode}\\nBuild version 16F6\\n";;\n'
        f'  "--sdk macosx --show-sdk-version") echo "{sdk}";;\n'
        f'  "clang --version") printf "{clang}\\nTarget: arm64-apple-darwin24.5.0\\n";;\n'
        '  *) echo "xcrun: error: unable to find utility" >&2; exit 72;;\n'
        "esac\n"
    )
    (bin_dir / "xcrun").chmod(0o755)
    return bin_dir


def _xcode_toolchain() -> toolchain.Toolchain:
    from pydist.paths import PINS_SCHEMA, TOOLCHAINS_DIR

    return toolchain.load_toolchain(TOOLCHAINS_DIR, "aarch64-apple-darwin", PINS_SCHEMA, build_host="aarch64-macos")


def test_the_pinned_xcode_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pins = _xcode_toolchain()
    assert pins.xcode == XCODE_PIN
    monkeypatch.setenv("PATH", str(_fake_xcrun(tmp_path)))
    toolchain.check_xcode(pins)


@pytest.mark.parametrize(
    ("found", "message"),
    [
        ({"xcode": "16.2"}, "Xcode 16.2 found, 16.4 pinned"),
        ({"sdk": "15.4"}, "macOS SDK 15.4 found, 15.5 pinned"),
        (
            {"clang": "Apple clang version 16.0.0 (clang-1600.0.26.6)"},
            "xcrun clang is 'Apple clang version 16.0.0 (clang-1600.0.26.6)', "
            "'Apple clang version 17.0.0 (clang-1700.0.13.5)' pinned",
        ),
    ],
)
def test_another_xcode_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, found: dict[str, str], message: str
) -> None:
    monkeypatch.setenv("PATH", str(_fake_xcrun(tmp_path, **found)))
    with pytest.raises(toolchain.ToolchainError) as error:
        toolchain.check_xcode(_xcode_toolchain())
    assert error.value.one_line().startswith(message)
    assert "select Xcode 16.4 with xcode-select" in error.value.one_line()


def test_no_xcode_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no xcrun at all
    with pytest.raises(toolchain.ToolchainError, match="Xcode is not installed"):
        toolchain.check_xcode(_xcode_toolchain())
    # Only the command line tools: xcrun exists, xcodebuild does not.
    bin_dir = tmp_path / "clt"
    bin_dir.mkdir()
    (bin_dir / "xcrun").write_text('#!/bin/sh\necho "xcrun: error: unable to find utility \\"$1\\"" >&2\nexit 72\n')
    (bin_dir / "xcrun").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(toolchain.ToolchainError, match="the command line tools alone are not enough"):
        toolchain.check_xcode(_xcode_toolchain())


def test_a_tool_pin_gets_launchers_for_its_own_mount_and_an_id_of_its_own(
    tmp_path: Path, packages: tuple[PackageSet, Fetcher]
) -> None:
    _demo, fetcher = packages
    (tmp_path / "tool").mkdir()
    files = {"usr/lib/demo/bin/demo-tool": b"#!/bin/sh\necho demo\n", "usr/lib/demo/lib/x.so": b"x"}
    data = _deb(tmp_path / "tool", files)
    pin = make_pin(data, name="demo-tool")
    (tmp_path / "distdir" / pin.filename).write_bytes(data)
    tool = PackageSet(
        kind="tool-demo",
        packages=(pin,),
        tools=(("demo-tool", "demo-tool"),),
        tools_dir="usr/lib/demo/bin",
        lib_dirs=("usr/lib/demo/lib",),
        mount="/tools/demo",
    )
    unpacked = materialize(tool, fetcher, tmp_path / "toolchains")
    launcher = (unpacked / "bin" / "demo-tool").read_text()
    assert "LD_LIBRARY_PATH=/tools/demo/usr/lib/demo/lib exec /tools/demo/usr/lib/demo/bin/demo-tool" in launcher
    assert "/toolchain" not in launcher
    # The mount is part of the id: the same packages shown elsewhere are another directory.
    assert tool.id != dataclasses.replace(tool, mount=toolchain.COMPILER_MOUNT).id


def test_only_a_toolchain_that_uses_a_tool_has_it_in_its_identity_path_and_packages(
    packages: tuple[PackageSet, Fetcher],
) -> None:
    package_set, _fetcher = packages
    tool = toolchain.ToolPin(name="demo", version="1", packages=dataclasses.replace(package_set, mount="/tools/demo"))
    plain = toolchain.Toolchain(
        triple="x86_64-unknown-linux-gnu",
        os="linux",
        arch="x86_64",
        build_hosts=("x86_64-linux",),
        build_host="x86_64-linux",
        target={},
        compiler=toolchain.Compiler(
            name="c", version="1", build_host="x86_64-linux", min_host_glibc="2.0", packages=package_set
        ),
        sysroot=package_set,
        xcode=None,
        source=Path("t.toml"),
        available_tools={"demo": tool},
    )
    used = plain.with_tools(("demo",))
    assert "tools" not in plain.identity() and plain.bin_path() == "/toolchain/bin"
    assert used.identity()["tools"] == [tool.identity()] and used.identity_digest() != plain.identity_digest()
    assert used.bin_path() == "/toolchain/bin:/tools/demo/bin"
    assert len(used.all_packages()) == len(plain.all_packages()) + 1
    with pytest.raises(ConfigError, match="pins no bolt for the build host x86_64-linux") as error:
        plain.with_tools(("bolt",))
    assert "demo" in (error.value.hint or "")
