"""The Mach-O checks on real arm64/x86_64 Mach-O files linked by the pinned clang 19 and ld64.lld 19."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from conftest import Toolchain
from pydist.targets import all_rules
from pydist.validate.macho import check_macho, exported_symbols, is_macho
from pydist.validate.report import Report
from pydist.validate.roles import Role, classify

pytestmark = pytest.mark.integration

RULES = all_rules()["aarch64-apple-darwin"]
LIBPYTHON = "python/install/lib/libpython3.13.dylib"
INTERPRETER = "python/install/bin/python3.13"
EXTENSION = "python/install/lib/python3.13/lib-dynload/_x.cpython-313-darwin.so"
SSL_EXTENSION = "python/install/lib/python3.13/lib-dynload/_ssl.cpython-313-darwin.so"

# No macOS SDK exists here: the sources declare what they call, and text stubs (.tbd) stand in for the
# system dylibs, exactly as the linker would read them from an SDK.
SOURCES = {
    "libpython.c": """
int printf(const char *, ...);
__attribute__((visibility("hidden"))) int hidden_helper(void) { return 1; }
int hello(void) { return printf("hi\\n") + hidden_helper(); }
""",
    "main.c": "int hello(void);\nint main(void) { return hello(); }\n",
    "ext.c": "int hello(void);\nvoid *PyInit__x(void) { hello(); return 0; }\n",
    "ssl_user.c": "void *SSL_CTX_new(const void *);\nvoid *PyInit__ssl(void) { return SSL_CTX_new(0); }\n",
    # The same four OpenSSL-named functions, exported by default or hidden with -DHIDE.
    "leaky.c": """
#ifdef HIDE
#define API __attribute__((visibility("hidden")))
#else
#define API
#endif
API int SSL_new(void) { return 1; }
API int SSL_free(void) { return 2; }
API int SSL_read(void) { return 3; }
API int SSL_write(void) { return 4; }
void *PyInit__ssl(void) { return (void *)(long)(SSL_new() + SSL_free() + SSL_read() + SSL_write()); }
""",
    # Assembled by llvm-mc for a triple without an OS version: no LC_BUILD_VERSION at all.
    "bare.s": ".globl _f\n_f:\n  ret\n",
}


def _tbd(arch: str, install_name: str, symbols: str) -> str:
    return f"""--- !tapi-tbd
tbd-version: 4
targets: [ {arch}-macos ]
install-name: '{install_name}'
exports:
  - targets: [ {arch}-macos ]
    symbols: [ {symbols} ]
...
"""


STUBS = {
    "libSystem.tbd": _tbd("arm64", "/usr/lib/libSystem.B.dylib", "_printf, dyld_stub_binder"),
    "libSystem-x86_64.tbd": _tbd("x86_64", "/usr/lib/libSystem.B.dylib", "_printf, dyld_stub_binder"),
    "libssl.tbd": _tbd("arm64", "/opt/homebrew/lib/libssl.3.dylib", "_SSL_CTX_new"),
}

# Only the listed tools are on PATH in the sandbox; llvm-lipo and llvm-mc are called where they are.
BUILD = r"""
LLVM=/toolchain/usr/lib/llvm-19
LLVM="env LD_LIBRARY_PATH=$LLVM/lib:/toolchain/usr/lib/x86_64-linux-gnu $LLVM/bin"
ARM64="-arch arm64 -platform_version macos 11.0 14.0"
CC="clang --target=arm64-apple-macos11 -Xclang -target-sdk-version=14.0 -c"
ID="-install_name @rpath/libpython3.13.dylib"
mkdir -p good bad
for src in libpython main ext ssl_user leaky; do $CC $src.c -o $src.o; done
$CC -DHIDE leaky.c -o hidden.o
clang --target=arm64e-apple-macos11 -Xclang -target-sdk-version=14.0 -c libpython.c -o libpython-arm64e.o
clang --target=x86_64-apple-macos11 -c libpython.c -o libpython-x86_64.o

ld64.lld $ARM64 -dylib $ID -o good/libpython3.13.dylib libpython.o libSystem.tbd
ld64.lld $ARM64 -rpath @executable_path/../lib -o good/python3.13 main.o good/libpython3.13.dylib \
    libSystem.tbd
ld64.lld $ARM64 -bundle -o good/_x.so ext.o good/libpython3.13.dylib libSystem.tbd

ld64.lld -arch x86_64 -platform_version macos 11.0 14.0 -dylib $ID -o bad/x86_64.dylib \
    libpython-x86_64.o libSystem-x86_64.tbd
ld64.lld -arch arm64 -platform_version macos 10.15 14.0 -dylib $ID -o bad/minos-10.15.dylib \
    libpython.o libSystem.tbd
# Below 10.14 ld64.lld writes the older LC_VERSION_MIN_MACOSX (and x86_64 is the arch that still goes there).
ld64.lld -arch x86_64 -platform_version macos 10.13 14.0 -dylib $ID -o bad/minos-10.13-x86_64.dylib \
    libpython-x86_64.o libSystem-x86_64.tbd
$LLVM/llvm-mc -triple arm64-apple-darwin -filetype=obj bare.s -o bad/no-version.o
ld64.lld -arch arm64 -platform_version macos 11.0 13.0 -dylib $ID -o bad/sdk-13.0.dylib \
    libpython.o libSystem.tbd
ld64.lld $ARM64 -bundle -o bad/homebrew-ssl.so ssl_user.o libssl.tbd libSystem.tbd
ld64.lld $ARM64 -bundle -o bad/leaky.so leaky.o libSystem.tbd
ld64.lld $ARM64 -bundle -o good/hidden.so hidden.o libSystem.tbd
ld64.lld $ARM64 -dylib $ID -headerpad 0 -o bad/nopad-signed.dylib libpython.o libSystem.tbd
ld64.lld $ARM64 -dylib $ID -headerpad 0 -no_adhoc_codesign -o bad/nopad-unsigned.dylib \
    libpython.o libSystem.tbd
ld64.lld $ARM64 -dylib $ID -flat_namespace -o bad/flat.dylib libpython.o libSystem.tbd
$LLVM/llvm-lipo -create good/libpython3.13.dylib bad/x86_64.dylib -output bad/universal.dylib
# Two slices of the same CPU type (arm64 and arm64e): a universal file that breaks no other rule.
$LLVM/llvm-lipo -create libpython.o libpython-arm64e.o -output bad/universal-arm64-arm64e.o

# An independent reading of every file, to show each one really has the property a test relies on.
for f in good/* bad/* hidden.o; do
    llvm-objdump --macho --private-headers "$f" > "$f.headers"
    llvm-nm -m "$f" > "$f.nm"
done
$LLVM/llvm-lipo -info bad/universal.dylib > bad/universal.dylib.info
$LLVM/llvm-lipo -info bad/universal-arm64-arm64e.o > bad/universal-arm64-arm64e.o.info
"""


@pytest.fixture(scope="module")
def built(toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every Mach-O file the tests look at, built once: good/ breaks no rule, bad/ one rule per file."""
    work = tmp_path_factory.mktemp("macho")
    for name, text in {**SOURCES, **STUBS}.items():
        (work / name).write_text(text)
    toolchain.run(work, BUILD)
    return work


def check(path: Path, member: str, *, sdk_version: str | None = "14.0") -> Report:
    report = Report()
    check_macho(path, member, classify(member), RULES, report, sdk_version=sdk_version)
    return report


def rules_of(report: Report) -> set[str]:
    return {v.rule for v in report.violations}


def only_message(report: Report, rule: str) -> str:
    assert rules_of(report) == {rule}, report.violations
    assert len(report.violations) == 1, report.violations
    return report.violations[0].message


def headers(path: Path) -> str:
    return path.with_name(path.name + ".headers").read_text()


def test_good_distribution_files_have_no_violation(built: Path) -> None:
    report = Report()
    members = {
        LIBPYTHON: built / "good/libpython3.13.dylib",
        INTERPRETER: built / "good/python3.13",
        EXTENSION: built / "good/_x.so",
    }
    for member, path in members.items():
        assert is_macho(path)
        check_macho(path, member, classify(member), RULES, report, sdk_version="14.0")
    assert report.violations == []
    assert report.checked_macho == 3
    # They are what they play: a dylib, an executable and a bundle, all signed arm64 for macOS 11.0/14.0,
    # loading only libSystem and libpython.
    filetypes = {path.name: headers(path).splitlines()[3].split()[4] for path in members.values()}
    assert filetypes == {"libpython3.13.dylib": "DYLIB", "python3.13": "EXECUTE", "_x.so": "BUNDLE"}
    for path in members.values():
        text = headers(path)
        assert "ARM64" in text and "TWOLEVEL" in text and "LC_CODE_SIGNATURE" in text
        assert re.search(r"minos 11\.0\n", text) and re.search(r"sdk 14\.0\n", text)
        loaded = set(re.findall(r"cmd LC_LOAD_DYLIB\n.*\n\s+name (\S+)", text))
        assert loaded <= {"/usr/lib/libSystem.B.dylib", "@rpath/libpython3.13.dylib"}
    assert "@rpath/libpython3.13.dylib" in headers(built / "good/_x.so")


def test_object_file_rules_exempt_objects(built: Path) -> None:
    # A compiler's object file: no MH_TWOLEVEL, no dylibs, no header padding to speak of, and still clean.
    obj = built / "libpython.o"
    assert is_macho(obj)
    assert check(obj, "python/build/objs/libpython.o").violations == []


def test_exported_symbols_of_the_good_dylib(built: Path) -> None:
    names = exported_symbols(built / "good/libpython3.13.dylib")
    assert "_hello" in names
    assert "_hidden_helper" not in names  # hidden: a private external after linking
    assert "_printf" not in names  # undefined, imported from libSystem
    nm = (built / "good/libpython3.13.dylib.nm").read_text()
    assert "(was a private external) _hidden_helper" in nm
    assert "_main" in exported_symbols(built / "good/python3.13")


def test_cpu_type_x86_64(built: Path) -> None:
    path = built / "bad/x86_64.dylib"
    assert "X86_64" in headers(path)
    message = only_message(check(path, LIBPYTHON), "macho.cpu-type")
    assert "x86_64 (0x1000007)" in message and "expected arm64 (0x100000c)" in message


def test_fat_file_with_two_architectures(built: Path) -> None:
    path = built / "bad/universal-arm64-arm64e.o"
    assert (built / "bad/universal-arm64-arm64e.o.info").read_text().split(":")[-1].split() == [
        "arm64",
        "arm64e",
    ]
    assert is_macho(path)
    member = "python/install/lib/python3.13/config-3.13-darwin/python.o"
    assert classify(member) is Role.OTHER
    message = only_message(check(path, member), "macho.fat")
    assert "2 architectures (arm64, arm64e)" in message and "expected a single architecture" in message
    # In build/ (the objects of a full archive) universal objects are allowed.
    assert check(path, "python/build/objs/python.o").violations == []


def test_fat_file_with_a_foreign_slice(built: Path) -> None:
    path = built / "bad/universal.dylib"
    assert sorted((built / "bad/universal.dylib.info").read_text().split(":")[-1].split()) == [
        "arm64",
        "x86_64",
    ]
    report = check(path, LIBPYTHON)
    assert report.checked_macho == 1
    assert rules_of(report) == {"macho.fat", "macho.cpu-type"}
    (cpu,) = [v.message for v in report.violations if v.rule == "macho.cpu-type"]
    assert "x86_64" in cpu and "in the x86_64 slice" in cpu
    assert rules_of(check(path, "python/build/lib/libpython3.13.dylib")) == {"macho.cpu-type"}


def test_two_level_namespace(built: Path) -> None:
    # ld64.lld -flat_namespace: a real linker-made flat-namespace dylib.
    path = built / "bad/flat.dylib"
    flags_line = headers(path).splitlines()[3]
    assert "DYLIB" in flags_line and "TWOLEVEL" not in flags_line
    message = only_message(check(path, LIBPYTHON), "macho.two-level")
    assert "MH_TWOLEVEL is not set" in message and "expected two-level" in message


def test_minos_too_old(built: Path) -> None:
    path = built / "bad/minos-10.15.dylib"
    assert re.search(r"cmd LC_BUILD_VERSION\n(.*\n){3}\s+minos 10\.15\n", headers(path))
    message = only_message(check(path, LIBPYTHON), "macho.minos")
    assert "minos is 10.15 (LC_BUILD_VERSION)" in message and "expected 11.0" in message


def test_minos_from_version_min_macosx(built: Path) -> None:
    path = built / "bad/minos-10.13-x86_64.dylib"
    assert "cmd LC_VERSION_MIN_MACOSX" in headers(path) and "LC_BUILD_VERSION" not in headers(path)
    report = check(path, LIBPYTHON)
    assert rules_of(report) == {"macho.minos", "macho.cpu-type"}  # the x86_64 is unavoidable here
    (minos,) = [v.message for v in report.violations if v.rule == "macho.minos"]
    assert "minos is 10.13 (LC_VERSION_MIN_MACOSX)" in minos and "expected 11.0" in minos


def test_minos_missing(built: Path) -> None:
    path = built / "bad/no-version.o"
    text = headers(path)
    assert "LC_BUILD_VERSION" not in text and "LC_VERSION_MIN" not in text
    message = only_message(check(path, "python/build/objs/bare.o"), "macho.minos")
    assert "no LC_BUILD_VERSION" in message and "expected minos 11.0" in message


def test_sdk_version(built: Path) -> None:
    path = built / "bad/sdk-13.0.dylib"
    assert re.search(r"sdk 13\.0\n", headers(path))
    message = only_message(check(path, LIBPYTHON, sdk_version="14.0"), "macho.sdk-version")
    assert "sdk is 13.0" in message and "expected 14.0" in message
    # The same file when the build's SDK is unknown: nothing to compare against.
    assert check(path, LIBPYTHON, sdk_version=None).violations == []
    assert check(path, LIBPYTHON, sdk_version="13.0.0").violations == []


def test_dylib_allowlist(built: Path) -> None:
    path = built / "bad/homebrew-ssl.so"
    assert "name /opt/homebrew/lib/libssl.3.dylib" in headers(path)
    message = only_message(check(path, SSL_EXTENSION), "macho.dylib-allowlist")
    assert "loads /opt/homebrew/lib/libssl.3.dylib" in message and "@rpath/libpython3.X.dylib" in message


def test_dependency_symbols_exported(built: Path) -> None:
    path = built / "bad/leaky.so"
    assert "external _SSL_new" in (built / "bad/leaky.so.nm").read_text()
    assert {"_SSL_new", "_SSL_free", "_SSL_read", "_SSL_write"} <= exported_symbols(path)
    message = only_message(check(path, SSL_EXTENSION), "macho.dependency-symbols")
    assert message == "exports 4 OpenSSL symbol(s) (SSL_free, SSL_new, SSL_read, ...), expected none"
    # Only the interpreter, libpython and extension modules are held to it.
    assert check(path, "python/install/share/other.so").violations == []


def test_dependency_symbols_hidden_are_not_reported(built: Path) -> None:
    path = built / "good/hidden.so"
    # The functions are there, compiled the same but with visibility("hidden"): private externals.
    nm = (built / "good/hidden.so.nm").read_text()
    assert "(was a private external) _SSL_new" in nm
    assert not {"_SSL_new", "_SSL_free", "_SSL_read", "_SSL_write"} & exported_symbols(path)
    assert "_PyInit__ssl" in exported_symbols(path)
    assert check(path, SSL_EXTENSION).violations == []
    # In the object file they were compiled to, hidden symbols are still external, but private (N_PEXT).
    assert "private external _SSL_new" in (built / "hidden.o.nm").read_text()
    assert not {"_SSL_new", "_SSL_free"} & exported_symbols(built / "hidden.o")
    assert {"_SSL_new", "_SSL_free"} <= exported_symbols(built / "leaky.o")


@pytest.mark.parametrize("name", ["nopad-signed.dylib", "nopad-unsigned.dylib"])
def test_headerpad(built: Path, name: str) -> None:
    # ld64.lld -headerpad 0 puts __text right after the load commands; signing exempts nothing.
    path = built / "bad" / name
    signed = "LC_CODE_SIGNATURE" in headers(path)
    assert signed == (name == "nopad-signed.dylib")
    report = check(path, LIBPYTHON)
    # The unsigned one also breaks the signature rule (tested on its own below).
    assert rules_of(report) == {"macho.headerpad"} | (set() if signed else {"macho.code-signature"})
    [message] = [v.message for v in report.violations if v.rule == "macho.headerpad"]
    match = re.match(r"(-?\d+) bytes free between the load commands \(end at (\d+)\) and __TEXT,__text", message)
    assert match, message
    free, end = int(match[1]), int(match[2])
    assert free < 16 and "expected at least 16" in message
    assert re.search(rf"sectname __text\n.*\n.*\n.*\n\s+offset {end + free}\n", headers(path))
    assert ("code-signed" in message) == signed


def test_code_signature_missing(built: Path) -> None:
    # ld64.lld -no_adhoc_codesign: an arm64 dylib without the signature Apple silicon requires.
    path = built / "bad/nopad-unsigned.dylib"
    assert "LC_CODE_SIGNATURE" not in headers(path)
    report = check(path, LIBPYTHON)
    [message] = [v.message for v in report.violations if v.rule == "macho.code-signature"]
    assert message.startswith("no code signature (LC_CODE_SIGNATURE)")
    # An unsigned x86_64 file is fine: only arm64 code must be signed.
    assert "LC_CODE_SIGNATURE" not in headers(built / "bad/x86_64.dylib")
    assert "macho.code-signature" not in rules_of(check(built / "bad/x86_64.dylib", LIBPYTHON))


def test_code_signature_covers_every_byte(built: Path, tmp_path: Path) -> None:
    # The linker's ad-hoc signature matches the file; one byte changed anywhere before it does not.
    good = built / "good/libpython3.13.dylib"
    assert "macho.code-signature" not in rules_of(check(good, LIBPYTHON))
    data = bytearray(good.read_bytes())
    text_offset = int(re.search(r"sectname __text\n.*\n.*\n.*\n\s+offset (\d+)\n", headers(good))[1])
    data[text_offset] ^= 0xFF
    changed = tmp_path / "libpython3.13.dylib"
    changed.write_bytes(bytes(data))
    message = only_message(check(changed, LIBPYTHON), "macho.code-signature")
    page = text_offset // 4096
    assert re.fullmatch(
        rf"page {page} \(bytes {page * 4096}-\d+\) differs from its signed hash: the file changed after signing",
        message,
    )


def test_unreadable_mach_o(built: Path, tmp_path: Path) -> None:
    # A truncated copy (the load commands cut off) still looks like Mach-O but cannot be parsed.
    cut = tmp_path / "libpython3.13.dylib"
    cut.write_bytes((built / "good/libpython3.13.dylib").read_bytes()[:100])
    assert is_macho(cut)
    report = check(cut, LIBPYTHON)
    assert rules_of(report) == {"macho.unreadable"} and report.checked_macho == 1


def test_is_macho(built: Path, tmp_path: Path) -> None:
    assert is_macho(built / "bad/universal.dylib")
    assert is_macho(built / "bad/no-version.o")
    link = tmp_path / "libpython3.dylib"
    link.symlink_to(built / "good/libpython3.13.dylib")
    assert not is_macho(link)
    assert not is_macho(tmp_path)
    (tmp_path / "empty").write_bytes(b"")
    assert not is_macho(tmp_path / "empty")
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert not is_macho(tmp_path / "script")
    # A Java class file (Java 17, major 61) shares the universal magic 0xCAFEBABE.
    (tmp_path / "A.class").write_bytes(bytes.fromhex("cafebabe0000003d") + bytes(32))
    assert not is_macho(tmp_path / "A.class")
    shutil.copy(built / "good/_x.so", tmp_path / "copy.so")
    assert is_macho(tmp_path / "copy.so")
