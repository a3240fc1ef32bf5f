"""The macOS rules for real, on Linux: the dependency libraries and OpenSSL with fips.dylib cross-compiled for
arm64-apple-macos11 by the same recipes a Mac runs (pinned clang 19, ld64.lld, the pinned ziglang wheel's
macOS libc headers and libSystem.tbd), in bubblewrap; then the Mach-O validator on the results, and each of
its rules failing on an artifact built from them to break it.

The artifacts are cached by action key (``<cache>/macos-evidence``): a cold run builds them (OpenSSL takes
minutes), later runs reuse them.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import fipsmodule
from conftest import REPO_ROOT, run_scons
from hermetic.archive_extract import extract_tar
from hermetic.lock import load_lock
from hermetic.sandbox import Mount
from hermetic.toolchain import Materialized
from pydist import distribution
from pydist.compile_env import CompileEnv
from pydist.macos_evidence import LIBRARIES, EvidenceBuild, evidence_platform, make_fetcher, run_in_sandbox
from pydist.paths import LOCK_FILE, PINS_SCHEMA
from pydist.platforms.macos import DEPENDENCY_SYMBOLS, MacOSPlatform
from pydist.settings import default_cache_root
from pydist.targets import all_rules
from pydist.validate.fips import check_fips, module_exports
from pydist.validate.macho import check_macho, exported_symbols, is_macho
from pydist.validate.report import Report
from pydist.validate.roles import Role, classify

pytestmark = pytest.mark.integration

RULES = all_rules()["aarch64-apple-darwin"]
# What ld64.lld records as the SDK version when the SDK has no SDKSettings.json: the deployment target.
SDK = "11.0"
LIBPYTHON = "python/install/lib/libpython3.13.dylib"
FIPS = "python/install/share/ssl/ossl-modules/fips.dylib"
# A dylib held to every rule but the dependency-symbol one (which the interpreter, libpython and extensions get).
OTHER = "python/install/lib/libother.dylib"

# A stand-in for libpython: C API functions that pull in every cross-compiled dependency.
LIBPYTHON_C = r"""
#include <bzlib.h>
#include <expat.h>
#include <ffi.h>
#include <lzma.h>
#include <mpdecimal.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <zlib.h>
#include <zstd.h>
void *PyInit__hashlib(void) { return (void *)EVP_MD_fetch(NULL, "SHA2-256", NULL); }
void *PyInit__ssl(void) { return SSL_CTX_new(TLS_method()); }
const char *Py_GetVersion(void) {
    ffi_cif cif;
    ffi_prep_cif(&cif, FFI_DEFAULT_ABI, 0, &ffi_type_sint, NULL);
    return zlibVersion()[0] + BZ2_bzlibVersion()[0] + lzma_version_string()[0] + XML_ExpatVersion()[0]
        + mpd_version()[0] + (int)ZSTD_versionNumber() ? "3.13" : "";
}
"""
LIBS = "-lssl -lcrypto -lz -lbz2 -llzma -lffi -lexpat -lmpdec -lzstd"


@dataclass
class Evidence:
    """The cross-compiled artifacts, unpacked, and a sandbox with the evidence toolchain to link with."""

    platform: MacOSPlatform
    materialized: Materialized
    artifacts: dict[str, Path]
    deps: Path
    work: Path

    def run(self, script: str) -> str:
        """Run `script` in bubblewrap: /build/out is `work`, /build/deps the artifacts, /build/src scratch."""
        src = self.work / "src"
        src.mkdir(exist_ok=True)
        mounts = [Mount(self.deps, "/build/deps"), Mount(src, "/build/src", writable=True)]
        return run_in_sandbox(self.materialized, self.work, script, mounts=mounts)

    def flags(self) -> tuple[str, str]:
        """CFLAGS and LDFLAGS exactly as the macOS rules give every build."""
        ce = CompileEnv(platform=self.platform)
        return ce.cflags("evidence"), ce.ldflags()

    def link_libpython(self, name: str, *, hide: bool = True, extra: str = "", ldflags: str | None = None) -> Path:
        """Link the libpython stand-in against every dependency into ``/build/out/<name>``."""
        cflags, default_ldflags = self.flags()
        hiding = " ".join(self.platform.hide_dependency_symbols()) if hide else ""
        cc = self.platform.compilers()[0]
        self.run(
            f"test -f libpython.o || {cc} {cflags} -I/build/deps/include -c libpython.c -o libpython.o\n"
            f"mkdir -p $(dirname {name})\n"
            f"{cc} {ldflags if ldflags is not None else default_ldflags} -dynamiclib "
            f"-Wl,-install_name,/install/lib/libpython3.13.dylib -o {name} libpython.o -L/build/deps/lib {LIBS} "
            f"{hiding} {extra}"
        )
        return self.work / name


@pytest.fixture(scope="module")
def evidence(tmp_path_factory: pytest.TempPathFactory) -> Evidence:
    root = tmp_path_factory.mktemp("macos-evidence")
    build = EvidenceBuild(cache_root=default_cache_root(), work_root=root / "actions", jobs=2)
    platform = evidence_platform()
    artifacts = build.build(LIBRARIES, platform)
    deps = root / "deps"
    for artifact in artifacts.values():
        extract_tar(artifact, deps)
    work = root / "out"
    work.mkdir()
    (work / "libpython.c").write_text(LIBPYTHON_C)
    evidence = Evidence(platform, build.materialized(platform), artifacts, deps, work)
    # The list every CPython link gets, written by the platform's own step with the real llvm-nm.
    [step] = platform.cpython_prepare_steps()
    evidence.run(step.argv[-1])
    return evidence


def check(path: Path, member: str, *, sdk_version: str | None = SDK) -> Report:
    report = Report()
    check_macho(path, member, classify(member), RULES, report, sdk_version=sdk_version)
    return report


def rules_of(report: Report) -> set[str]:
    return {v.rule for v in report.violations}


def load_commands(evidence: Evidence, path: Path) -> str:
    """An independent reading of the load commands (llvm-otool), to show a file has what a test relies on."""
    if path.is_relative_to(evidence.deps):
        return evidence.run(f"otool -l /build/deps/{path.relative_to(evidence.deps)}")
    return evidence.run(f"otool -l /build/out/{path.relative_to(evidence.work)}")


# ------------------------------------------------------------------------------------- before any work


def test_the_macos_build_is_refused_on_linux_before_any_work(tmp_path: Path) -> None:
    result = run_scons(REPO_ROOT, "target=aarch64-apple-darwin", "py=3.11", f"build_dir={tmp_path / 'build'}")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert (
        "target aarch64-apple-darwin cannot be built on this host (x86_64-linux); "
        "run the build on a macOS host on Apple silicon (arm64) with the pinned Xcode"
    ) in output
    assert "Traceback" not in output
    assert "[start]" not in result.stdout
    assert not (tmp_path / "build" / "aarch64-apple-darwin").exists()


# ------------------------------------------------------------------------------------ what was built


def test_the_recipes_ran_in_bubblewrap_with_the_pinned_sdk(evidence: Evidence) -> None:
    sdk = evidence.platform.toolchain.sysroot
    assert sdk is not None and sdk.packages[0].name == "ziglang"
    for name, artifact in evidence.artifacts.items():
        record = json.loads(
            (evidence.deps / ".hermetic" / f"{artifact.name.rsplit('-', 1)[0]}.action.json").read_text()
        )
        description = record["description"]
        assert description["target"] == "aarch64-apple-darwin", name
        assert description["sandbox"] == {"kind": "bubblewrap", "network": False}
        assert record["sandbox"].startswith("bubblewrap")
        assert description["env"]["MACOSX_DEPLOYMENT_TARGET"] == "11.0"
        assert description["env"]["CC"] == "arm64-apple-macos11.0-clang"
        assert description["toolchain"]["sysroot"] == sdk.identity()


def test_every_object_is_arm64_for_macos_11(evidence: Evidence) -> None:
    evidence.run(
        "rm -rf objects && mkdir objects && cd objects\n"
        "for a in /build/deps/lib/*.a; do mkdir $(basename $a) && (cd $(basename $a) && llvm-ar x $a); done"
    )
    objects = sorted((evidence.work / "objects").rglob("*.o"))
    archives = {p.parent.name for p in objects}
    assert {"libcrypto.a", "libssl.a", "libz.a", "libbz2.a", "liblzma.a", "libffi.a", "libexpat.a"} <= archives
    assert {"libmpdec.a", "libzstd.a"} <= archives
    report = Report()
    for obj in objects:
        assert is_macho(obj), obj
        check_macho(obj, f"python/build/lib/{obj.parent.name}/{obj.name}", Role.OBJECT, RULES, report, sdk_version=None)
    assert report.violations == [] and report.checked_macho == len(objects) > 1000
    # Independently: an object of libcrypto says arm64 and macOS 11.0.
    sample = next(p for p in objects if p.parent.name == "libcrypto.a")
    text = load_commands(evidence, sample)
    assert re.search(r"cmd LC_BUILD_VERSION\n.*\n\s+platform 1\n.*\n\s+minos 11\.0", text)


def test_fips_dylib_is_signed_exports_only_its_entry_point_and_matches_its_mac(
    evidence: Evidence, tmp_path: Path
) -> None:
    module = evidence.deps / "lib/ossl-modules/fips.dylib"
    assert is_macho(module)
    report = check(module, FIPS)
    assert report.violations == [] and report.checked_macho == 1
    assert module_exports(module) == {"OSSL_provider_init"}
    text = load_commands(evidence, module)
    assert "cmd LC_CODE_SIGNATURE" in text and re.search(r"minos 11\.0\n", text)
    assert ad_hoc_flags(module) == {"adhoc", "linker-signed"}
    # fipsmodule.cnf as OpenSSL's build wrote it (over the signed module) is what our own writer makes of
    # the module's bytes, byte for byte; the validator agrees the MAC is right.
    shipped = (evidence.deps / "ssl/fipsmodule.cnf").read_text()
    ours = tmp_path / "fipsmodule.cnf"
    fipsmodule.write_fipsmodule_cnf(module, ours)
    assert ours.read_text() == shipped
    install = shipped_ssl(evidence, module, ours, tmp_path / "install")
    fips_report = Report()
    assert check_fips(install, "python/install/", fips_report)
    assert fips_report.violations == []


def shipped_ssl(evidence: Evidence, module: Path, module_cnf: Path, install: Path) -> Path:
    """share/ssl as the distribution ships it around `module`, with the fipsinstall step (the openssl program and
    the standard library's pystandalone_fips)."""
    (install / "share/ssl/ossl-modules").mkdir(parents=True)
    shutil.copy(module, install / "share/ssl/ossl-modules/fips.dylib")
    shutil.copy(module_cnf, install / "share/ssl/fipsmodule.cnf")
    (install / "share/ssl/openssl-fips.cnf").write_text(distribution.fips_config(module_cnf.read_text()))
    (install / "lib/python3.13").mkdir(parents=True)
    distribution.install_fipsinstall_step(install, install / "lib/python3.13", evidence.deps / "bin/openssl")
    return install


def ad_hoc_flags(path: Path) -> set[str]:
    """The flags of the code directory of a thin arm64 image, read here without the validator."""
    data = path.read_bytes()
    ncmds = struct.unpack_from("<I", data, 16)[0]
    offset = 32
    for _ in range(ncmds):
        cmd, size = struct.unpack_from("<II", data, offset)
        if cmd == 0x1D:  # LC_CODE_SIGNATURE
            dataoff = struct.unpack_from("<I", data, offset + 8)[0]
            count = struct.unpack_from(">I", data, dataoff + 8)[0]
            for index in range(count):
                slot, blob = struct.unpack_from(">II", data, dataoff + 12 + 8 * index)
                if slot == 0:
                    flags = struct.unpack_from(">I", data, dataoff + blob + 12)[0]
                    return {name for bit, name in ((0x2, "adhoc"), (0x20000, "linker-signed")) if flags & bit}
        offset += size
    return set()


# ------------------------------------------------------------- the CPython link rules, on real OpenSSL


def test_dependency_symbols_stay_local_with_the_platform_s_list(evidence: Evidence) -> None:
    listed = (evidence.work / "src" / Path(DEPENDENCY_SYMBOLS).name).read_text().split()
    assert "_EVP_MD_fetch" in listed and "_deflate" in listed and "_ZSTD_compress" in listed
    good = evidence.link_libpython("good/libpython3.13.dylib")
    assert check(good, LIBPYTHON).violations == []
    exported = exported_symbols(good)
    assert {"_PyInit__ssl", "_PyInit__hashlib", "_Py_GetVersion"} <= exported
    assert not exported & set(listed)
    # The same link without the list exports every dependency.
    leaky = evidence.link_libpython("bad/leaky/libpython3.13.dylib", hide=False)
    report = check(leaky, LIBPYTHON)
    assert rules_of(report) == {"macho.dependency-symbols"}
    leaked = {v.message.split(" symbol")[0].split()[-1] for v in report.violations}
    assert leaked == {"OpenSSL", "zlib", "liblzma", "bzip2", "mpdecimal", "zstd", "libffi"}
    # expat's own build (CMake) already makes its functions private externs in the static library.
    assert "_XML_ExpatVersion" in listed and not {n for n in exported_symbols(leaky) if n.startswith("_XML_")}


def test_install_names_and_stripping_keep_valid_signatures(evidence: Evidence) -> None:
    install = evidence.work / "install"
    (install / "lib").mkdir(parents=True, exist_ok=True)
    shutil.copy(evidence.link_libpython("good/libpython3.13.dylib"), install / "lib/libpython3.13.dylib")
    assert "name /install/lib/libpython3.13.dylib" in load_commands(evidence, install / "lib/libpython3.13.dylib")
    [step] = evidence.platform.cpython_install_steps("/build/out/install")
    evidence.run(step.argv[-1])
    text = load_commands(evidence, install / "lib/libpython3.13.dylib")
    assert "name @rpath/libpython3.13.dylib" in text
    # llvm-install-name-tool signed it again: the signature matches the new bytes.
    assert check(install / "lib/libpython3.13.dylib", LIBPYTHON).violations == []
    # The stripped archive: everything stripped and signed again, fips.dylib untouched.
    modules = install / "share/ssl/ossl-modules"
    modules.mkdir(parents=True, exist_ok=True)
    shutil.copy(evidence.deps / "lib/ossl-modules/fips.dylib", modules / "fips.dylib")
    before = {p: p.read_bytes() for p in (install / "lib/libpython3.13.dylib", modules / "fips.dylib")}
    script = evidence.platform.strip_script("/build/out/install", "*/share/ssl/ossl-modules/fips.dylib")
    evidence.run(f"bash -eo pipefail -c {shlex.quote(script)}")
    assert (modules / "fips.dylib").read_bytes() == before[modules / "fips.dylib"]
    stripped = install / "lib/libpython3.13.dylib"
    assert stripped.read_bytes() != before[stripped]
    assert check(stripped, LIBPYTHON).violations == []


# -------------------------------------------------------------- each rule fails on an artifact built to


def _changed_byte(path: Path, out: Path, where: int) -> Path:
    data = bytearray(path.read_bytes())
    data[where] ^= 0x01
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(bytes(data))
    return out


def _zlib_x86_64(evidence: Evidence) -> Path:
    """zlib's own sources, cross-compiled for x86_64 macOS instead of arm64 (a real library, wrong CPU)."""
    lock = load_lock(LOCK_FILE, PINS_SCHEMA)
    source = make_fetcher(default_cache_root()).fetch(lock.get("zlib"))
    zlib = evidence.work / "zlib-src"
    if not zlib.exists():
        extract_tar(source, zlib, strip="auto")
    cflags, _ = evidence.flags()
    cflags = cflags.replace("-arch arm64", "")
    evidence.run(
        "mkdir -p bad/cpu && cd zlib-src && "
        f"clang --target=x86_64-apple-macos11 --sysroot=/sysroot {cflags} -fuse-ld=lld -dynamiclib "
        "-Wl,-headerpad_max_install_names -Wl,-install_name,@rpath/libother.dylib "
        "-o ../bad/cpu/libother.dylib adler32.c crc32.c deflate.c inflate.c inftrees.c inffast.c trees.c "
        "zutil.c compress.c uncompr.c"
    )
    return evidence.work / "bad/cpu/libother.dylib"


def _fips_modified_after_signing(evidence: Evidence) -> tuple[Path, str]:
    module = evidence.deps / "lib/ossl-modules/fips.dylib"
    text = load_commands(evidence, module)
    text_offset = int(re.search(r"sectname __text\n.*\n.*\n.*\n\s+offset (\d+)", text)[1])
    return _changed_byte(module, evidence.work / "bad/modified/fips.dylib", text_offset + 100), FIPS


def _fips_stripped_after_its_mac(evidence: Evidence) -> tuple[Path, str]:
    # llvm-strip signs again: the signature is valid, but the MAC in fipsmodule.cnf no longer is.
    evidence.run(
        "mkdir -p bad/stripped && cp /build/deps/lib/ossl-modules/fips.dylib bad/stripped/ && "
        "llvm-strip -S -x bad/stripped/fips.dylib"
    )
    return evidence.work / "bad/stripped/fips.dylib", FIPS


def _provider_exporting_libcrypto(evidence: Evidence) -> tuple[Path, str]:
    _, ldflags = evidence.flags()
    cc = evidence.platform.compilers()[0]
    evidence.run(
        f"mkdir -p bad/exports && {cc} {ldflags} -bundle -o bad/exports/fips.dylib "
        "-Wl,-force_load,/build/deps/lib/libcrypto.a"
    )
    return evidence.work / "bad/exports/fips.dylib", FIPS


def _libpython_variant(name: str, **link: object) -> Callable[[Evidence], tuple[Path, str]]:
    def build(evidence: Evidence) -> tuple[Path, str]:
        return evidence.link_libpython(f"bad/{name}/libpython3.13.dylib", **link), LIBPYTHON  # type: ignore[arg-type]

    return build


def _no_headerpad(evidence: Evidence) -> tuple[Path, str]:
    # zlib's objects (4-byte aligned code, so no alignment gap hides the missing room), linked without the
    # platform's -headerpad_max_install_names and with no padding at all.
    _, ldflags = evidence.flags()
    assert "-Wl,-headerpad_max_install_names" in ldflags
    ldflags = ldflags.replace("-Wl,-headerpad_max_install_names", "-Wl,-headerpad,0")
    cc = evidence.platform.compilers()[0]
    evidence.run(
        f"mkdir -p bad/nopad && {cc} {ldflags} -dynamiclib -o bad/nopad/libother.dylib "
        "-Wl,-install_name,@rpath/libother.dylib -Wl,-force_load,/build/deps/lib/libz.a"
    )
    return evidence.work / "bad/nopad/libother.dylib", OTHER


def _truncated(evidence: Evidence) -> tuple[Path, str]:
    good = evidence.link_libpython("good/libpython3.13.dylib")
    out = evidence.work / "bad/truncated/libpython3.13.dylib"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(good.read_bytes()[:200])
    return out, LIBPYTHON


def _universal(evidence: Evidence) -> tuple[Path, str]:
    good = evidence.link_libpython("good/libpython3.13.dylib")
    _zlib_x86_64(evidence)
    evidence.run(
        f"mkdir -p bad/fat && lipo -create {good.relative_to(evidence.work)} bad/cpu/libother.dylib "
        "-output bad/fat/libother.dylib"
    )
    return evidence.work / "bad/fat/libother.dylib", OTHER


def _foreign_dylib(evidence: Evidence) -> tuple[Path, str]:
    # A real zlib dylib that claims to live where Homebrew keeps it, and libpython linked against it.
    _, ldflags = evidence.flags()
    cc = evidence.platform.compilers()[0]
    evidence.run(
        f"mkdir -p bad/foreign && {cc} {ldflags} -dynamiclib -o bad/foreign/libz.1.dylib "
        "-Wl,-install_name,/opt/homebrew/opt/zlib/lib/libz.1.dylib -Wl,-force_load,/build/deps/lib/libz.a"
    )
    path = evidence.link_libpython("bad/foreign/libpython3.13.dylib", extra="bad/foreign/libz.1.dylib")
    return path, LIBPYTHON


VIOLATIONS: dict[str, tuple[Callable[[Evidence], tuple[Path, str]], set[str], str]] = {
    "fips.dylib modified after signing": (
        _fips_modified_after_signing,
        {"macho.code-signature", "fips.module-mac"},
        "differs from its signed hash: the file changed after signing",
    ),
    "fips.dylib stripped after its MAC": (
        _fips_stripped_after_its_mac,
        {"fips.module-mac"},
        "module-mac in fipsmodule.cnf",
    ),
    "a provider exporting libcrypto": (
        _provider_exporting_libcrypto,
        {"fips.exports", "fips.module-mac"},
        "OSSL_provider_init is not exported",
    ),
    "dependency symbols exported": (
        _libpython_variant("leaky", hide=False),
        {"macho.dependency-symbols"},
        "OpenSSL symbol(s)",
    ),
    "minos 13.0": (
        _libpython_variant("minos", extra="-Wl,-platform_version,macos,13.0,11.0"),
        {"macho.minos"},
        "minos is 13.0 (LC_BUILD_VERSION), expected 11.0",
    ),
    "no header padding": (_no_headerpad, {"macho.headerpad"}, "expected at least 16"),
    "unsigned": (
        _libpython_variant("unsigned", extra="-Wl,-no_adhoc_codesign"),
        {"macho.code-signature"},
        "no code signature (LC_CODE_SIGNATURE)",
    ),
    "flat namespace": (
        _libpython_variant("flat", extra="-Wl,-flat_namespace"),
        {"macho.two-level"},
        "MH_TWOLEVEL is not set",
    ),
    "another SDK": (
        _libpython_variant("sdk", extra="-Wl,-platform_version,macos,11.0,14.0"),
        {"macho.sdk-version"},
        "sdk is 14.0",
    ),
    "a dylib outside the allowlist": (
        _foreign_dylib,
        {"macho.dylib-allowlist"},
        "loads /opt/homebrew/opt/zlib/lib/libz.1.dylib",
    ),
    "x86_64 instead of arm64": (
        lambda e: (_zlib_x86_64(e), OTHER),
        {"macho.cpu-type"},
        "CPU type x86_64 (0x1000007), expected arm64 (0x100000c)",
    ),
    "two architectures in one file": (
        _universal,
        {"macho.fat", "macho.cpu-type"},
        "a universal file with 2 architectures",
    ),
    "truncated": (_truncated, {"macho.unreadable"}, "not a readable Mach-O file"),
}


@pytest.mark.parametrize("case", list(VIOLATIONS))
def test_each_rule_fails_on_an_artifact_built_to_break_it(evidence: Evidence, case: str, tmp_path: Path) -> None:
    make, expected, message = VIOLATIONS[case]
    path, member = make(evidence)
    report = check(path, member)
    if classify(member) is Role.FIPS_MODULE:
        # The MAC OpenSSL's build took over the module as it was signed and installed.
        install = shipped_ssl(evidence, path, evidence.deps / "ssl/fipsmodule.cnf", tmp_path / "install")
        check_fips(install, "python/install/", report)
    assert rules_of(report) == expected, report.violations
    assert any(message in v.message for v in report.violations), report.violations
