"""ELF rules, each against a real ELF file built by the pinned toolchain to break it (and good ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Toolchain
from pydist.targets import all_rules
from pydist.validate.elf import Linkage, check_elf, check_unversioned
from pydist.validate.report import Report
from pydist.validate.roles import Role

pytestmark = pytest.mark.integration

RULES = all_rules()["x86_64-unknown-linux-gnu"]
CC = "x86_64-linux-gnu-clang -O2 -fPIC"
HARDENED = "-fstack-protector-strong -D_FORTIFY_SOURCE=2"
LINK = "-fuse-ld=lld -Wl,-z,relro -Wl,-z,now -Wl,-z,noexecstack"

SOURCES = {
    "ext.c": "int PyInit_ext(void) { return 0; }\n",
    "ssl.c": "int SSL_new(void) { return 1; }\nint ERR_get_error(void) { return 2; }\n",
    "uses_ssl.c": "int SSL_new(void);\nint PyInit_uses(void) { return SSL_new(); }\n",
    "textrel.c": "int counter;\nint *PyInit_textrel(void) { return &counter; }\n",
    "main.c": (
        "#include <stdio.h>\n#include <string.h>\n"
        "int main(int argc, char **argv) {\n"
        '    char b[16]; strcpy(b, argv[0]); printf("%s\\n", b); return argc;\n}\n'
    ),
    "api.c": "void Py_Initialize(void) {}\nvoid *PyList_New(long n) { return 0; }\n"
    "void *Py_CompileString(const char *a, const char *b, int c) { return 0; }\n"
    "void *PyUnicode_FromString(const char *s) { return 0; }\n"
    "void *PyModule_Create2(void *d, int v) { return 0; }\n",
    "newglibc.c": "void fake_fn(void) {}\n",
    "newglibc.map": "GLIBC_2.99 { global: fake_fn; };\n",
    "private.map": "GLIBC_PRIVATE { global: fake_fn; };\n",
    "calls_fake.c": "void fake_fn(void);\nint PyInit_calls(void) { fake_fn(); return 0; }\n",
    "yields.c": "int pthread_yield(void);\nint PyInit_yields(void) { return pthread_yield(); }\n",
    # getrandom came with glibc 2.25: linked -shared against the 2.17 sysroot, which has no stub of it, it is left
    # undefined and without a version.
    "random.c": "long getrandom(void *b, unsigned long n, unsigned f);\n"
    "int PyInit_random(void) { char b[8]; return (int)getrandom(b, 8, 0); }\n",
    "defines_random.c": "long getrandom(void *b, unsigned long n, unsigned f) { return 0; }\n",
}

SCRIPT = f"""
{CC} {HARDENED} -shared {LINK} -o good-ext.so ext.c
{CC} {HARDENED} -shared {LINK} -o api.so api.c
{CC} {HARDENED} {LINK} -o good-python main.c
clang --target=aarch64-linux-gnu -fPIC -shared -nostdlib -fuse-ld=lld -Wl,-z,relro,-z,now,-z,noexecstack \\
    -o arm.so ext.c
{CC} -shared {LINK} -o libfoo.so ssl.c
{CC} -shared {LINK} -o needs-foo.so ext.c -L. -lfoo
{CC} -shared -fuse-ld=lld -Wl,-soname,libc.so.6 -Wl,--version-script=newglibc.map \\
    -o fakelibc/libc.so.6 newglibc.c
{CC} -shared {LINK} -o new-glibc.so calls_fake.c fakelibc/libc.so.6
{CC} -shared -fuse-ld=lld -Wl,-soname,libc.so.6 -Wl,--version-script=private.map \\
    -o privlibc/libc.so.6 newglibc.c
{CC} -shared {LINK} -o private-glibc.so calls_fake.c privlibc/libc.so.6
{CC} -shared {LINK} -Wl,-rpath,/opt/lib -o rpath.so ext.c
{CC} -shared {LINK} -Wl,--disable-new-dtags -Wl,-rpath,'$ORIGIN/../lib' -o origin-rpath.so ext.c
{CC} -shared -fuse-ld=lld -Wl,-z,relro -Wl,-z,now -Wl,-z,execstack -o execstack.so ext.c
{CC} -shared -fuse-ld=lld -Wl,-z,norelro -Wl,-z,now -Wl,-z,noexecstack -o norelro.so ext.c
{CC} -shared -fuse-ld=lld -Wl,-z,relro -Wl,-z,lazy -Wl,-z,noexecstack -o lazy.so ext.c
{CC} -shared -nostdlib {LINK} -Wl,--omagic -o omagic.so ext.c
x86_64-linux-gnu-clang -O2 -fno-pic -mcmodel=large -shared {LINK} -Wl,-z,notext \\
    -o textrel.so textrel.c
{CC} -fno-stack-protector -U_FORTIFY_SOURCE {LINK} -o plain-python main.c
{CC} {HARDENED} {LINK} -no-pie -o nopie-python main.c
{CC} {HARDENED} -shared {LINK} -o leaky-ext.so ext.c ssl.c
llvm-ar rcs libssl-static.a ssl.o 2>/dev/null || ({CC} -c ssl.c -o ssl.o && llvm-ar rcs libssl-static.a ssl.o)
{CC} {HARDENED} -shared {LINK} -Wl,--exclude-libs,ALL -o hidden-ext.so uses_ssl.c libssl-static.a
{CC} {HARDENED} -shared {LINK} -o yields.so yields.c -lpthread
{CC} -shared {LINK} -o unversioned-random.so random.c
{CC} -shared {LINK} -o defines-random.so defines_random.c
"""


@pytest.fixture(scope="module")
def built(toolchain: Toolchain, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("elf")
    for name, text in SOURCES.items():
        (work / name).write_text(text)
    (work / "fakelibc").mkdir()
    (work / "privlibc").mkdir()
    toolchain.run(work, SCRIPT)
    return work


def rules_of(path: Path, role: Role = Role.EXTENSION) -> dict[str, list[str]]:
    report = Report()
    check_elf(path, path.name, role, RULES, report)
    found: dict[str, list[str]] = {}
    for violation in report.violations:
        found.setdefault(violation.rule, []).append(violation.message)
    return found


def test_good_files_pass_clean(built: Path) -> None:
    assert rules_of(built / "good-ext.so") == {}
    assert rules_of(built / "origin-rpath.so") == {}
    assert rules_of(built / "good-python", Role.INTERPRETER) == {}
    assert rules_of(built / "api.so", Role.LIBPYTHON) == {}


@pytest.mark.parametrize(
    ("name", "role", "rule", "fragment"),
    [
        ("arm.so", Role.EXTENSION, "elf.machine", "EM_AARCH64"),
        ("needs-foo.so", Role.EXTENSION, "elf.needed", "libfoo.so"),
        ("new-glibc.so", Role.EXTENSION, "elf.glibc-floor", "GLIBC_2.99"),
        ("private-glibc.so", Role.EXTENSION, "elf.glibc-private", "GLIBC_PRIVATE"),
        ("rpath.so", Role.EXTENSION, "elf.rpath", "/opt/lib"),
        ("execstack.so", Role.EXTENSION, "elf.stack", "executable"),
        ("norelro.so", Role.EXTENSION, "elf.relro", "PT_GNU_RELRO"),
        ("lazy.so", Role.EXTENSION, "elf.bind-now", "BIND_NOW"),
        ("omagic.so", Role.EXTENSION, "elf.wx", "writable and executable"),
        ("textrel.so", Role.EXTENSION, "elf.textrel", "text relocations"),
        ("plain-python", Role.INTERPRETER, "elf.stack-protector", "__stack_chk_fail"),
        ("nopie-python", Role.INTERPRETER, "elf.pie", "ET_EXEC"),
        ("leaky-ext.so", Role.EXTENSION, "elf.dependency-symbols", "OpenSSL"),
        ("good-ext.so", Role.LIBPYTHON, "elf.python-api", "Py_Initialize"),
        ("yields.so", Role.EXTENSION, "elf.banned-symbol", "needs pthread_yield"),
    ],
)
def test_each_rule_reports_its_violation(built: Path, name: str, role: Role, rule: str, fragment: str) -> None:
    found = rules_of(built / name, role)
    assert rule in found, found
    assert any(fragment in message for message in found[rule]), found[rule]


def test_a_pristine_fips_module_is_not_asked_for_bind_now_and_nothing_else_is_waived(built: Path) -> None:
    # fips_provider=: the module is linked as its own tree's build links it, without our -z now.
    def rules(name: str, role: Role, pristine: bool) -> dict[str, list[str]]:
        report = Report()
        check_elf(built / name, name, role, RULES, report, pristine_module=pristine)
        return {v.rule: [v.message] for v in report.violations}

    assert "elf.bind-now" not in rules("lazy.so", Role.FIPS_MODULE, pristine=True)
    assert rules("lazy.so", Role.FIPS_MODULE, pristine=False)["elf.bind-now"] == [
        "not linked with -z now (no BIND_NOW); if it was built from its own tree, validate it with the build's "
        "full archive"
    ]
    assert "elf.bind-now" in rules("lazy.so", Role.EXTENSION, pristine=True)  # only the module
    assert "elf.relro" in rules("norelro.so", Role.FIPS_MODULE, pristine=True)
    assert "elf.stack" in rules("execstack.so", Role.FIPS_MODULE, pristine=True)


def test_hidden_static_dependency_is_not_reported(built: Path) -> None:
    # The same OpenSSL-named symbol, linked from a static archive with --exclude-libs,ALL (as the build
    # links its dependencies), is not exported and not reported.
    assert rules_of(built / "hidden-ext.so") == {}


def _linkage(path: Path) -> Linkage:
    linkage = check_elf(path, path.name, Role.EXTENSION, RULES, Report())
    assert linkage is not None
    return linkage


def test_an_unversioned_libc_symbol_nothing_shipped_defines_is_reported(built: Path) -> None:
    random = _linkage(built / "unversioned-random.so")
    assert "getrandom" in random.unversioned
    report = Report()
    check_unversioned({"unversioned-random.so": random, "good-ext.so": _linkage(built / "good-ext.so")}, report)
    [violation] = report.violations
    assert violation.rule == "elf.unversioned-symbol" and violation.file == "unversioned-random.so"
    assert "needs getrandom without a symbol version" in violation.message
    # Shipped beside a file that defines it (as libpython defines the C API its modules need), it is fine.
    report = Report()
    check_unversioned(
        {"unversioned-random.so": random, "defines-random.so": _linkage(built / "defines-random.so")}, report
    )
    assert report.violations == []


def test_versioned_libc_symbols_are_not_unversioned_and_the_highest_version_is_recorded(built: Path) -> None:
    report = Report()
    linkage = check_elf(built / "good-python", "good-python", Role.INTERPRETER, RULES, report)
    assert linkage is not None and linkage.unversioned == set()  # printf, strcpy: all GLIBC_x.y
    assert report.glibc_versions["good-python"].startswith("2.")
    assert f"needing at most GLIBC_{report.glibc_versions['good-python']} (good-python)" in report.summary()
