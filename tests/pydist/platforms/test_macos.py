"""What the macOS rules generate for a Mac with the pinned Xcode (these machines have none): configure
arguments, environments, the signing and install-name steps and their order, the dependency-symbol list, and
the scripts run for real with stand-ins for Xcode's tools that record how they were called.

The same rules run for real, cross-compiled on Linux, in tests/integration/test_macos_cross.py.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hermetic.action import Step
from hermetic.lock import load_lock
from pydist import cpython, graph, matrix
from pydist.compile_env import CompileEnv
from pydist.openssl import OPENSSL
from pydist.paths import LOCK_FILE, PINS_SCHEMA
from pydist.platforms import load_platform
from pydist.platforms.macos import DEPENDENCY_SYMBOLS, MacOSPlatform

TRIPLE = "aarch64-apple-darwin"
LOCK = load_lock(LOCK_FILE, PINS_SCHEMA)


@pytest.fixture
def mac() -> MacOSPlatform:
    platform = load_platform(TRIPLE, build_host="aarch64-macos")
    assert isinstance(platform, MacOSPlatform)
    return platform


def request(options: str = "pgo+lto", py: str = "3.13") -> matrix.BuildRequest:
    return matrix.validate_request(LOCK, target=TRIPLE, py=py, options=options, planning=True)


def names(steps: list[Step]) -> list[str]:
    return [s.name for s in steps]


def script(step: Step) -> str:
    assert step.argv[0] in ("/bin/sh", "/bin/bash"), step.argv
    return step.argv[-1]


# ------------------------------------------------------------------------------------------ the toolchain


def test_a_mac_builds_natively_with_xcode(mac: MacOSPlatform) -> None:
    assert mac.native and mac.xcode
    assert (mac.build_triple, mac.host_triple) == ("aarch64-apple-darwin", "aarch64-apple-darwin")
    assert mac.compilers() == ("clang", "clang++")
    assert mac.binutils() == {"AR": "ar", "RANLIB": "ranlib", "NM": "nm", "STRIP": "strip"}
    assert mac.toolchain.sandbox == "unsandboxed" and mac.toolchain.compiler is None
    assert mac.object_format == "macho" and mac.fips_module == "fips.dylib"
    # Room for install_name_tool, and Apple's linker (no -fuse-ld).
    assert "-Wl,-headerpad_max_install_names" in mac.ldflags
    assert not any("fuse-ld" in flag for flag in mac.ldflags)
    assert not mac.uses_library("util-linux") and mac.uses_library("libffi")


def test_every_compile_targets_macos_11(mac: MacOSPlatform) -> None:
    env = CompileEnv(platform=mac).autotools_env("zlib-1.3.1")
    assert env["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
    assert env["CC"] == "clang"
    assert "-arch arm64 -mmacosx-version-min=11.0" in env["CFLAGS"]
    assert "-mmacosx-version-min=11.0" in env["LDFLAGS"]


def test_library_actions_of_a_mac(mac: MacOSPlatform) -> None:
    ce = CompileEnv(platform=mac)
    recipes = [r.name for r in graph.library_recipes(mac)]
    assert "util-linux" not in recipes and recipes[-1] == "openssl"
    for recipe in graph.library_recipes(mac):
        action = graph.library_action(recipe, LOCK.get(recipe.name), ce, LOCK)
        assert action.description()["sandbox"] == {"kind": "unsandboxed", "network": False}
        assert action.full_env()["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
        configure = [s for s in action.steps if s.name == "configure"]
        if configure and recipe.name not in ("zlib", "expat", "openssl"):
            assert "--host=aarch64-apple-darwin" in " ".join(configure[0].argv)


# ---------------------------------------------------------------------------------------------- OpenSSL


def test_openssl_builds_signs_then_macs_the_module(mac: MacOSPlatform) -> None:
    ce = CompileEnv(platform=mac)
    steps = OPENSSL.steps(ce, "openssl-3.5.7")
    assert names(steps) == [
        "configure",
        "build",
        "sign the FIPS module",
        "MAC the signed FIPS module",
        "install",
        "collect fipsmodule.cnf",
    ]
    configure = steps[0].argv
    assert configure[:4] == ("perl", "./Configure", "darwin64-arm64-cc", "enable-fips")
    assert not any("visibility" in arg for arg in configure)
    # The target adds -arch arm64 itself; Configure would take a bare "arm64" for a second target.
    assert "-arch" not in configure and "arm64" not in configure
    assert "-mmacosx-version-min=11.0" in configure
    # Only the module is linked with DSO_LDFLAGS: it exports its entry point and nothing else.
    export_only = "DSO_LDFLAGS=-bundle $(CNF_LDFLAGS) $(LDFLAGS) -Wl,-exported_symbol,_OSSL_provider_init"
    assert steps[1].argv == ("make", export_only, "build_sw")
    assert steps[4].argv[:2] == ("make", export_only)
    sign, mac_step = script(steps[2]), script(steps[3])
    assert sign.splitlines()[0] == 'codesign --force --sign - "providers/fips.dylib"'
    # The MAC is computed by OpenSSL's own rule, over the signed file, which make must not relink.
    lines = mac_step.splitlines()
    assert lines[0] == 'cp providers/fips.dylib "$TMPDIR/fips-module.signed"'
    assert lines[1:3] == ["rm -f providers/fipsmodule.cnf", f"make '{export_only}' providers/fipsmodule.cnf"]
    assert lines[3] == 'cmp providers/fips.dylib "$TMPDIR/fips-module.signed"'


def test_openssl_on_linux_is_unchanged() -> None:
    linux = load_platform("x86_64-unknown-linux-gnu", build_host="x86_64-linux")
    steps = OPENSSL.steps(CompileEnv(platform=linux), "openssl-3.5.7")
    assert names(steps) == ["configure", "build", "install", "collect fipsmodule.cnf"]
    assert steps[1].argv == ("make", "build_sw")


# ----------------------------------------------------------------------------------------------- CPython


@pytest.mark.parametrize("options", ["pgo+lto", "freethreaded+pgo+lto"])
def test_cpython_configure_on_a_mac(mac: MacOSPlatform, options: str) -> None:
    ce = CompileEnv(platform=mac)
    req = request(options)
    args = cpython.configure_args(req, ce)
    assert "--build=aarch64-apple-darwin" in args and "--host=aarch64-apple-darwin" in args
    assert "--enable-optimizations" in args and "--with-lto=thin" in args and "--enable-shared" in args
    assert ("--disable-gil" in args) == options.startswith("freethreaded")
    assert not any(a.startswith("--with-build-python") for a in args)  # native: no build Python
    env = cpython.cpython_env(req, ce, "cpython-3.13.15")
    assert env["CC"] == "clang" and env["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
    assert env["LDFLAGS"].endswith(f"-Wl,-unexported_symbols_list,{DEPENDENCY_SYMBOLS}")
    assert "CONFIG_SITE" not in env
    # llvm-profdata is left to configure, which finds Xcode's as `/usr/bin/xcrun llvm-profdata` on Darwin:
    # nothing names another one, and the PATH's /toolchain/bin does not exist on a Mac (no compiler mount).
    assert "LLVM_PROFDATA" not in env
    action = graph.cpython_action(req, ce, LOCK, ("openssl",))
    assert action.toolchain.compiler is None
    assert action.description()["sandbox"]["kind"] == "unsandboxed"
    assert "LINKFORSHARED=-Wl,-stack_size,1000000 -framework CoreFoundation -Wl,-rpath,@executable_path/../lib" in (
        cpython.make_overrides(req, ce)
    )


def test_cpython_steps_in_order(mac: MacOSPlatform) -> None:
    steps = cpython.cpython_steps(request(), CompileEnv(platform=mac), "cpython-3.13.15")
    assert names(steps) == [
        "list dependency symbols",
        "write Setup.local",
        "configure",
        "check modules",
        "check optimizations",
        "build",
        "keep the PGO profile",
        "install",
        "install names",
        "python symlink",
        "collect build facts",
    ]
    # _scproxy is built; what a Mac never has is left out with its reason.
    setup = script(steps[1])
    disabled = setup.split("*disabled*")[1]
    assert "_scproxy" not in disabled and "spwd" in disabled and "ossaudiodev" in disabled
    assert "_crypt" not in cpython.not_built(request(py="3.11.2"), CompileEnv(platform=mac))


def test_macos_rules_leave_linux_cpython_alone() -> None:
    linux = load_platform("x86_64-unknown-linux-gnu", build_host="x86_64-linux")
    steps = cpython.cpython_steps(request(), CompileEnv(platform=linux), "cpython-3.13.15")
    assert "list dependency symbols" not in names(steps) and "install names" not in names(steps)


# ------------------------------------------------- the scripts, run with stand-ins for Xcode's tools

MACHO = bytes.fromhex("cffaedfe0c000001") + bytes(56)

# Each stand-in appends its name and arguments to $CALLS; otool prints what the steps grep for.
FAKES = {
    "strip": 'echo "strip $*" >> "$CALLS"',
    "codesign": 'echo "codesign $*" >> "$CALLS"',
    "install_name_tool": 'echo "install_name_tool $*" >> "$CALLS"',
    "otool": 'echo "otool $*" >> "$CALLS"\n'
    'case "$1" in -D) echo "$2:"; echo "@rpath/$2";; -l) echo "      cmd LC_CODE_SIGNATURE";; esac',
    "nm": 'echo "nm $*" >> "$CALLS"\n'
    'for f in "$@"; do case $f in -*) ;; *) echo; echo "$f(a.o):"; echo _EVP_MD_fetch; echo _deflate;; esac; done',
}


@pytest.fixture
def tools(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp_path / "xcode-bin"
    bin_dir.mkdir()
    for name, body in FAKES.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.touch()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), "TMPDIR": str(tmp_path), "LC_ALL": "C"}
    return env, calls


def run(step_or_script: Step | str, env: dict[str, str], cwd: Path) -> None:
    text = step_or_script if isinstance(step_or_script, str) else script(step_or_script)
    subprocess.run(["/bin/bash", "-eo", "pipefail", "-c", text], env=env, cwd=cwd, check=True)


def test_install_names_then_signatures(mac: MacOSPlatform, tools: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, calls = tools
    install = tmp_path / "install"
    (install / "lib").mkdir(parents=True)
    (install / "lib/libpython3.13.dylib").write_bytes(MACHO)
    (install / "lib/libpython3.dylib").symlink_to("libpython3.13.dylib")
    [step] = mac.cpython_install_steps(str(install))
    run(step, env, tmp_path)
    assert calls.read_text().splitlines() == [
        "install_name_tool -id @rpath/libpython3.13.dylib libpython3.13.dylib",
        "codesign --force --sign - libpython3.13.dylib",
        "otool -D libpython3.13.dylib",
    ]


def test_strip_keeps_the_fips_module_and_signs_what_it_stripped(
    mac: MacOSPlatform, tools: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, calls = tools
    tree = tmp_path / "python"
    files = {
        "bin/python3.13": MACHO,
        "lib/libpython3.13.dylib": MACHO,
        "lib/python3.13/lib-dynload/_testcapi.cpython-313-darwin.so": MACHO,
        "share/ssl/ossl-modules/fips.dylib": MACHO + b"signed",
        "lib/python3.13/os.py": b"import abc\n",
    }
    for rel, data in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(data)
    run(mac.strip_script(str(tree), "*/share/ssl/ossl-modules/fips.dylib"), env, tmp_path)
    lines = calls.read_text().splitlines()
    stripped = sorted(line.split('"')[0].rsplit(" ", 1)[-1] for line in lines if line.startswith("strip"))
    assert stripped == sorted(str(tree / rel) for rel in files if files[rel] == MACHO)
    for index, line in enumerate(lines):  # every strip is followed by the signing of the same file
        if line.startswith("strip -S -x "):
            assert lines[index + 1] == "codesign --force --sign - " + line.removeprefix("strip -S -x ")
    assert "fips.dylib" not in calls.read_text()
    assert (tree / "share/ssl/ossl-modules/fips.dylib").read_bytes() == MACHO + b"signed"


def test_dependency_symbol_list(mac: MacOSPlatform, tools: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, calls = tools
    [step] = mac.cpython_prepare_steps()
    deps = tmp_path / "deps" / "lib"
    deps.mkdir(parents=True)
    for name in ("libcrypto.a", "libz.a"):
        (deps / name).write_bytes(b"!<arch>\n")
    src = tmp_path / "src"
    src.mkdir()
    text = script(step).replace("/build/deps", str(tmp_path / "deps")).replace("/build/src", str(src))
    run(text, env, tmp_path)
    assert calls.read_text().split() == ["nm", "-g", "-U", "-j", str(deps / "libcrypto.a"), str(deps / "libz.a")]
    assert (src / "dependency-symbols.txt").read_text() == "_EVP_MD_fetch\n_deflate\n"
    # No library, no list: the build stops instead of exporting everything.
    for lib in deps.iterdir():
        lib.unlink()
    (deps / "libempty.a").write_bytes(b"!<arch>\n")
    env_empty = {**env, "PATH": f"{tmp_path / 'empty-nm'}:{env['PATH']}"}
    (tmp_path / "empty-nm").mkdir()
    (tmp_path / "empty-nm" / "nm").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "empty-nm" / "nm").chmod(0o755)
    with pytest.raises(subprocess.CalledProcessError):
        run(text, env_empty, tmp_path)


def test_fips_module_signed_before_its_mac(
    mac: MacOSPlatform, tools: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    env, calls = tools
    tree = tmp_path / "openssl"
    (tree / "providers").mkdir(parents=True)
    (tree / "providers/fips.dylib").write_bytes(MACHO)
    # OpenSSL's rule, reduced to what matters: it reads the module and writes the MAC file.
    (tree / "Makefile").write_text(
        'providers/fipsmodule.cnf: providers/fips.dylib\n\techo "make $@ DSO_LDFLAGS=$(DSO_LDFLAGS)" >> $$CALLS\n'
        "\tsha256sum providers/fips.dylib > $@\n"
    )
    for step in mac.fips_module_steps("providers/fips.dylib"):
        run(step, env, tree)
    lines = calls.read_text().splitlines()
    assert lines[0] == "codesign --force --sign - providers/fips.dylib"
    assert lines[1] == "otool -l providers/fips.dylib"
    assert lines[2].startswith("make providers/fipsmodule.cnf DSO_LDFLAGS=-bundle")
    assert "-Wl,-exported_symbol,_OSSL_provider_init" in lines[2]


# ------------------------------------------------------------------------------------------ PYTHON.json


def test_python_json_records_the_pinned_sdk(mac: MacOSPlatform) -> None:
    assert mac.python_json_extras() == {
        "apple_sdk_platform": "macosx",
        "apple_sdk_version": "15.5",
        "apple_sdk_canonical_name": "macosx15.5",
        "apple_sdk_deployment_target": "11.0",
    }
    assert mac.crt_features(Path("/nonexistent")) == ["libSystem"]


def test_build_only_flags_are_scrubbed_from_recorded_settings(mac: MacOSPlatform) -> None:
    recorded = f"-arch arm64 -Wl,-unexported_symbols_list,{DEPENDENCY_SYMBOLS} -L/usr/lib"
    for pattern in mac.build_only_flags():
        recorded = re.sub(pattern, "", recorded)
    assert recorded == "-arch arm64 -L/usr/lib"


# ------------------------------------------------------------------------------------------------ the graph


def fake_xcode(tmp_path: Path) -> Path:
    """An xcrun answering like the pinned Xcode 16.4 (the pin check's logic is what is exercised)."""
    bin_dir = tmp_path / "xcode"
    bin_dir.mkdir()
    (bin_dir / "xcrun").write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  "xcodebuild -version") echo "Xcode 16.4";;\n'
        '  "--sdk macosx --show-sdk-version") echo 15.5;;\n'
        '  "clang --version") echo "Apple clang version 17.0.0 (clang-1700.0.13.5)";;\n'
        "  *) exit 72;;\nesac\n"
    )
    (bin_dir / "xcrun").chmod(0o755)
    return bin_dir


def test_a_linux_host_is_refused_naming_the_host_it_needs() -> None:
    from hermetic.errors import ConfigError

    platform = load_platform(TRIPLE, build_host="x86_64-linux")
    with pytest.raises(ConfigError) as error:
        graph.check_host(platform)
    assert error.value.one_line() == (
        "target aarch64-apple-darwin cannot be built on this host (x86_64-linux); "
        "run the build on a macOS host on Apple silicon (arm64) with the pinned Xcode"
    )


def test_a_mac_with_the_pinned_xcode_is_accepted(
    mac: MacOSPlatform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_xcode(tmp_path)))
    graph.check_host(mac)  # no refusal: the macOS rules exist


@pytest.mark.parametrize("options", ["pgo+lto", "freethreaded+pgo+lto"])
def test_the_full_macos_build_is_declared_and_runs_unsandboxed(
    mac: MacOSPlatform, tmp_path: Path, options: str
) -> None:
    from SCons.Environment import Environment

    from hermetic import scons_glue
    from hermetic.action import _sandbox
    from hermetic.sandbox import Unsandboxed
    from pydist import fips_provider
    from pydist import settings as build_settings

    config = build_settings.resolve(
        {
            "target": TRIPLE,
            "py": "3.13",
            "options": options,
            "build_dir": str(tmp_path / "build"),
            "dist_dir": str(tmp_path / "dist"),
            "cache_root": str(tmp_path / "cache"),
        }
    )
    env = Environment(ENV={}, tools=[])
    req = request(options)
    before = set(scons_glue._REGISTRY)
    provider = fips_provider.select(LOCK, config.fips_provider, mac)
    ctx = graph.GraphContext(
        env=env, settings=config, lock=LOCK, fetcher=graph.make_fetcher(config), fips_provider=provider
    )
    nodes = graph.declare_python(ctx, req, mac, named=True)
    graph.declare_dist(ctx, req, mac, nodes)
    declared = {path: action for path, (action, _runner) in scons_glue._REGISTRY.items() if path not in before}
    by_name = {action.name: action for action in declared.values()}
    libraries = [r.name for r in graph.library_recipes(mac)]
    assert sorted(by_name) == sorted([LOCK.get(name).id for name in libraries] + [f"cpython-3.13.15-{options}"])
    assert "util-linux" not in " ".join(by_name) and "build-python" not in " ".join(by_name)
    for path, action in declared.items():
        assert path.startswith(str(tmp_path / "build" / TRIPLE))
        assert action.target == TRIPLE
        assert action.description()["sandbox"] == {"kind": "unsandboxed", "network": False}
        assert action.description()["toolchain"]["xcode"]["sdk_version"] == "15.5"
        assert isinstance(_sandbox(action.toolchain, tmp_path, None, action), Unsandboxed)
    cpython_action = by_name[f"cpython-3.13.15-{options}"]
    assert set(cpython_action.deps) == set(libraries)  # native: no build Python
    # The distribution half is declared too: its archives, checksums and provenance are the default targets.
    tag = build_settings.release_tag(config.tag, LOCK.source_date_epoch)
    # (SCons aliases are global: only this test's outputs, under its own dist_dir, are looked at.)
    children = [Path(n.get_abspath()) for n in env.Alias("dist")[0].children()]
    dist = sorted(path.name for path in children if path.is_relative_to(tmp_path / "dist"))
    flavor = "freethreaded-" if options.startswith("freethreaded") else ""
    assert dist == sorted(
        [
            f"cpython-3.13.15-{TRIPLE}-{options}-{tag}.tar.zst",
            f"cpython-3.13.15-{TRIPLE}-{flavor}install_only-{tag}.tar.gz",
            f"cpython-3.13.15-{TRIPLE}-{flavor}install_only_stripped-{tag}.tar.gz",
            "SHA256SUMS",
            "provenance.json",
            "sbom.cdx.json",
        ]
    )
