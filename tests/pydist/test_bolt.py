"""The BOLT steps for real: a C program built with the pinned clang the way the interpreter is (PIC, hardened,
relocations kept), rewritten by the pinned llvm-bolt (shown at /tools/bolt by the action's toolchain) with the
flags the CPython build uses, in the sandbox. The rewritten program must compute what the original did, pass the
validator's ELF checks of an interpreter, and come out byte-identical from a second rewrite with the same
inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import generated_sysroot_artifact
from hermetic.action import OUT, SRC, Action, ActionRunner, InputFile, sh
from hermetic.archive_extract import extract_tar
from hermetic.content_store import ContentStore
from hermetic.debian import archives_from_apt
from hermetic.fetch import Fetcher
from pydist import bolt
from pydist.graph import Sysroot
from pydist.platforms import load_platform
from pydist.settings import default_cache_root
from pydist.validate.elf import check_elf
from pydist.validate.report import Report
from pydist.validate.roles import Role

pytestmark = pytest.mark.integration

# Hot and cold branches, a computed-goto dispatch loop under the name of CPython's (on BOLT's skip list:
# LLVM 19 cannot rewrite computed gotos in PIC code), a fortified snprintf and a stack buffer (the
# validator wants __stack_chk_fail and a __*_chk function in an interpreter).
PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>

static int classify(int x) {
    if (x % 15 == 0) return 3;
    if (x % 5 == 0) return 2;
    if (x % 3 == 0) return 1;
    return 0;
}

int _PyEval_EvalFrameDefault(const unsigned char *code, int n) {
    static void *targets[] = {&&op_add, &&op_sub, &&op_end};
    int acc = 0, i = 0;
    goto *targets[code[i++]];
op_add:
    acc += n;
    goto *targets[code[i++]];
op_sub:
    acc -= 1;
    goto *targets[code[i++]];
op_end:
    return acc;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100;
    long counts[4] = {0};
    for (int i = 1; i <= n; i++) counts[classify(i)]++;
    unsigned char code[] = {0, 1, 0, 2};
    char line[128];
    snprintf(line, sizeof line, "%ld %ld %ld %ld %d", counts[0], counts[1], counts[2], counts[3],
             _PyEval_EvalFrameDefault(code, argc > 2 ? atoi(argv[2]) : n));
    puts(line);
    return 0;
}
"""


def test_bolt_rewrites_a_hardened_pic_program_correctly_and_reproducibly(tmp_path: Path) -> None:
    platform = load_platform("x86_64-unknown-linux-gnu", "x86_64-linux")
    source = tmp_path / "demo.c"
    source.write_text(PROGRAM)
    binary, work = f"{SRC}/demo", f"{SRC}/bolt"
    cc, _cxx = platform.compilers()
    compile_flags = ["-O2", "-g", "-fPIC", *platform.cflags, *bolt.COMPILE_FLAGS]
    link_flags = [*platform.ldflags, *bolt.LINK_FLAGS]
    compile_line = " ".join([cc, *compile_flags, "/build/files/demo.c", "-o", binary, *link_flags])
    steps = [
        sh("compile", f"{compile_line}\n{binary} 1000 > {SRC}/expected"),
        *bolt.bolt_steps(
            binary,
            training=f"{binary} 200000 > /dev/null\n{binary} 3000 7 > /dev/null",
            check=f"{binary} 1000 | cmp - {SRC}/expected",
        ),
        # The same command again (llvm-bolt records its command line, output path included, in the binary).
        sh(
            "rewrite again",
            f"mv {work}/bolted {work}/first\n"
            f"llvm-bolt {work}/prebolt -o {work}/bolted -data={work}/merged.fdata "
            + " ".join(f"'{flag}'" for flag in (*bolt.COMMON_FLAGS, *bolt.APPLY_FLAGS))
            + f"\ncmp {work}/first {work}/bolted",
        ),
        sh("keep", f"mkdir -p {OUT}/result && cp {binary} {work}/prebolt {SRC}/expected {OUT}/result/"),
    ]
    action = Action(
        name="bolt-demo",
        rule="test",
        rule_version=1,
        target=platform.triple,
        source=None,
        patches=(),
        deps=(),
        toolchain=platform.toolchain.with_tools((bolt.TOOL,)),
        env={},
        steps=tuple(steps),
        output=f"{OUT}/result",
        source_date_epoch=0,
        files=(InputFile(path=source, label="demo.c"),),
    )
    action = Sysroot(node=None).add_to(action)  # the glibc sysroot every compiling action gets
    cache = default_cache_root()
    runner = ActionRunner(
        fetcher=Fetcher(ContentStore(cache / "downloads"), resolve=archives_from_apt().resolve),
        toolchain_root=cache / "toolchains",
        work_root=tmp_path / "work",
        log_root=tmp_path / "logs",
        jobs=2,
    )
    runner.run(action, tmp_path / "demo.tar.zst", [generated_sysroot_artifact(platform.triple)])
    log = (tmp_path / "logs" / "bolt-demo.log").read_text()
    assert "BOLT-INFO" in log and "profiles" in log

    result = tmp_path / "result"
    extract_tar(tmp_path / "demo.tar.zst", result)
    rewritten, original = result / "demo", result / "prebolt"
    assert rewritten.read_bytes() != original.read_bytes()
    assert b".note.bolt_info" in rewritten.read_bytes()  # BOLT's own note: the program was rewritten
    report = Report()
    check_elf(rewritten, "bin/demo", Role.INTERPRETER, platform.validator_rules, report)
    assert report.ok, report.summary()
