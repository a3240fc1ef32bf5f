"""The graph each build host declares for a target: which toolchain pins, emulator and build Python it uses.

Declared with real SCons (nothing is built), for hosts these machines are not: a native aarch64 Linux host,
and the x86_64 host that cross-builds aarch64.
"""

from __future__ import annotations

from pathlib import Path

from declared_graph import declared_actions

from hermetic.action import Action


def _declared(tmp_path: Path, target: str, build_host: str, options: str = "pgo+lto") -> list[Action]:
    directories = {"build_dir": str(tmp_path / f"build-{target}"), "dist_dir": str(tmp_path / f"dist-{target}")}
    return list(
        declared_actions(tmp_path, "default", target, "3.13", build_host, options=options, **directories).values()
    )


def _packages(action: Action) -> list[str]:
    return [p.filename for p in action.toolchain.all_packages()]


def test_a_native_aarch64_host_builds_with_its_own_compiler_and_no_emulator(tmp_path: Path) -> None:
    actions = _declared(tmp_path, "aarch64-unknown-linux-gnu", "aarch64-linux")
    assert {a.target for a in actions} == {"aarch64-unknown-linux-gnu"}  # no build Python of another target
    cpython = next(a for a in actions if a.rule == "cpython")
    assert "build-python" not in cpython.deps and cpython.dep_mounts == {"sysroot": ("", "/sysroot")}
    assert cpython.deps[0] == "sysroot"  # the generated glibc sysroot, every compiling action's first input
    configure = next(s for s in cpython.steps if s.name == "configure")
    assert "--build=aarch64-linux-gnu" in configure.argv and "--host=aarch64-linux-gnu" in configure.argv
    assert not any(arg.startswith("--with-build-python") for arg in configure.argv)
    for action in actions:
        assert action.toolchain.emulator is None
        assert "emulator" not in action.description()["toolchain"]
        native = ("_arm64.deb", "_all.deb", "_aarch64.whl")  # the sysroot's generator: the aarch64 zig wheel
        assert all(name.endswith(native) for name in _packages(action)), _packages(action)


def test_an_x86_64_host_cross_builds_aarch64_with_qemu_and_a_build_python(tmp_path: Path) -> None:
    actions = _declared(tmp_path, "aarch64-unknown-linux-gnu", "x86_64-linux")
    by_target = {t: [a for a in actions if a.target == t] for t in {a.target for a in actions}}
    cpython = next(a for a in by_target["aarch64-unknown-linux-gnu"] if a.rule == "cpython")
    build_python = next(a for a in by_target["x86_64-unknown-linux-gnu"] if a.rule == "cpython")
    # The build Python: the host's own noopt CPython of the same version, shown at the target's prefix.
    assert build_python.name == "cpython-3.13.15-noopt" and build_python.toolchain.emulator is None
    assert cpython.deps[-1] == "build-python"
    assert cpython.dep_mounts == {"sysroot": ("", "/sysroot"), "build-python": ("install", "/install")}
    assert cpython.tmpfs == ("/install/lib/python3.13/site-packages",)
    configure = next(s for s in cpython.steps if s.name == "configure")
    assert "--with-build-python=/install/bin/python3" in configure.argv
    assert "--build=x86_64-linux-gnu" in configure.argv and "--host=aarch64-linux-gnu" in configure.argv
    # The sysroot's generator runs no program of the target; everything else may, under qemu.
    [sysroot] = [a for a in by_target["aarch64-unknown-linux-gnu"] if a.rule == "sysroot"]
    assert sysroot.toolchain.emulator is None and sysroot.toolchain.guest is None
    for action in (a for a in by_target["aarch64-unknown-linux-gnu"] if a.rule != "sysroot"):
        assert action.toolchain.emulator is not None and action.toolchain.emulator.programs == {
            "aarch64": "usr/bin/qemu-aarch64-static"
        }
        # The x86_64 compiler, with the aarch64 compiler runtimes PGO links.
        packages = _packages(action)
        assert "clang-19_19.1.7-3~deb12u1_amd64.deb" in packages
        assert "libclang-rt-19-dev_19.1.7-3~deb12u1_arm64.deb" in packages
    # The host's own actions keep the host's plain toolchain, so their keys are those of a native build.
    for action in by_target["x86_64-unknown-linux-gnu"]:
        assert "libclang-rt-19-dev_19.1.7-3~deb12u1_arm64.deb" not in _packages(action)


def test_the_build_python_side_is_exactly_the_native_noopt_build(tmp_path: Path) -> None:
    native = {a.name: a.key() for a in _declared(tmp_path, "x86_64-unknown-linux-gnu", "x86_64-linux", "noopt")}
    cross = _declared(tmp_path, "aarch64-unknown-linux-gnu", "x86_64-linux")
    host_side = {a.name: a.key() for a in cross if a.target == "x86_64-unknown-linux-gnu"}
    assert host_side == {name: key for name, key in native.items() if name in host_side}
    assert set(host_side) == set(native)


def test_a_cross_builds_provenance_reads_the_build_python_and_its_libraries(tmp_path: Path) -> None:
    import SCons.Node.FS

    _declared(tmp_path, "aarch64-unknown-linux-gnu", "x86_64-linux")
    fs = SCons.Node.FS.get_default_fs()
    dist = tmp_path / "dist-aarch64-unknown-linux-gnu" / "cpython-3.13.15-aarch64-unknown-linux-gnu-pgo+lto-t"
    host_dir = tmp_path / "build-aarch64-unknown-linux-gnu" / "x86_64-unknown-linux-gnu"

    def host_sources(name: str) -> set[str]:
        sources = {Path(s.get_abspath()) for s in fs.File(str(dist / name)).sources}
        return {str(p.relative_to(host_dir)) for p in sources if p.is_relative_to(host_dir)}

    # Its actions ran for this build, so the provenance lists them (and the audit finds who made what the
    # aarch64 CPython consumed); the SBOM lists what ships, which the build Python is not.
    provenance = host_sources("provenance.json")
    assert "cpython-3.13.15-noopt.tar.zst" in provenance
    assert {"deps/openssl-3.5.7.tar.zst", "deps/zlib-1.3.1.tar.zst"} <= provenance
    assert host_sources("sbom.cdx.json") == set()
