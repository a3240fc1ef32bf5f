"""What each tuning= lever changes in the CPython action (configure arguments, flags, make variables, steps,
toolchain), that the levers compose with each minor's own release arguments (3.14's tail-calling interpreter),
and that they reach the CPython action's key only."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from declared_graph import declared_actions
from elftools.elf.elffile import ELFFile

from conftest import Toolchain
from hermetic.errors import ConfigError
from hermetic.lock import load_lock
from pydist import bolt, cpython, matrix, targets, tuning
from pydist.compile_env import CompileEnv
from pydist.paths import LOCK_FILE, PINS_SCHEMA
from pydist.platforms import load_platform
from pydist.tuning import NO_TUNING, Tuning

LOCK = load_lock(LOCK_FILE, PINS_SCHEMA)
X86_64 = "x86_64-unknown-linux-gnu"


def _request(py: str = "3.11.2", options: str = "pgo+lto", target: str = X86_64) -> matrix.BuildRequest:
    return matrix.validate_request(LOCK, target=target, py=py, options=options, planning=True)


def _ce(target: str = X86_64, build_host: str = "x86_64-linux") -> CompileEnv:
    return CompileEnv(platform=load_platform(target, build_host))


def _levers(*names: str) -> Tuning:
    return Tuning(frozenset(names), is_default=False)


def _make_variable(overrides: list[str], name: str) -> str:
    [value] = [o.split("=", 1)[1] for o in overrides if o.startswith(f"{name}=")]
    return value


def test_every_313_build_requires_mimalloc_and_311_builds_leave_configure_its_default() -> None:
    ce = _ce()
    for options in ("pgo+lto", "noopt", "freethreaded+pgo+lto"):
        args = cpython.configure_args(_request("3.13.15", options), ce, NO_TUNING)
        assert args.count("--with-mimalloc") == 1, options
    assert "--with-mimalloc" not in cpython.configure_args(_request("3.11.2", "noopt"), ce, NO_TUNING)


def test_without_levers_the_build_is_thin_lto_at_o2_with_the_targets_hardening() -> None:
    request, ce = _request(), _ce()
    args = cpython.configure_args(request, ce, NO_TUNING)
    assert "--with-lto=thin" in args and "--enable-optimizations" in args
    assert not any(a.startswith(("CFLAGS_NODIST=", "LDFLAGS_NODIST=", "--with-mimalloc")) for a in args)
    cflags = cpython.cpython_env(request, ce, "x", NO_TUNING)["CFLAGS"].split()
    assert cflags[0] == "-O2" and "-fstack-protector-strong" in cflags and "-fno-omit-frame-pointer" in cflags
    overrides = cpython.make_overrides(request, ce, NO_TUNING)
    assert "-no-pie" not in _make_variable(overrides, "LINKFORSHARED")
    assert _make_variable(overrides, "PROFILE_TASK") == "-m test --pgo --timeout=1200 -r --randseed=1"


def test_the_pgo_training_runs_alike_in_every_build() -> None:
    """Serial and seeded, fixed hashes, no address randomization (Linux), in the build and BOLT's training;
    a build without PGO runs make as before (its key unchanged)."""
    request, ce = _request(), _ce()
    task = _make_variable(cpython.make_overrides(request, ce, NO_TUNING), "PROFILE_TASK")
    assert "-j" not in task.split()[-1] and not any(word.startswith("-j") for word in task.split())
    steps = {s.name: s for s in cpython.cpython_steps(request, ce, "x", _levers("bolt"))}
    assert steps["build"].argv[:3] == ("setarch", "--addr-no-randomize", "make")
    assert steps["build"].env == {"PYTHONHASHSEED": "0"} == steps["bolt: training"].env
    assert steps["bolt: training"].argv[-1].startswith("setarch --addr-no-randomize make ")
    assert "sha256sum code.profclangd" in steps["keep the PGO profile"].argv[-1]
    noopt = {s.name: s for s in cpython.cpython_steps(_request(options="noopt"), ce, "x")}
    assert noopt["build"].argv[0] == "make" and noopt["build"].env == {} and "keep the PGO profile" not in noopt
    mac = _ce("aarch64-apple-darwin", "aarch64-macos")
    mac_steps = {s.name: s for s in cpython.cpython_steps(_request(target="aarch64-apple-darwin"), mac, "x")}
    assert mac_steps["build"].argv[0] == "make" and mac_steps["build"].env == {"PYTHONHASHSEED": "0"}


def test_a_given_profile_replaces_the_training_and_every_pgo_build_keeps_its_profile() -> None:
    request, ce = _request(), _ce()
    trained = {s.name: " ".join(s.argv) for s in cpython.cpython_steps(request, ce, "x")}
    given = [s.name for s in cpython.cpython_steps(request, ce, "x", given_profile=True)]
    assert "use the given PGO profile" not in trained
    assert given[given.index("build") - 1] == "use the given PGO profile"
    assert "python/build/pgo.profdata" in trained["keep the PGO profile"]
    use = {s.name: s.argv[-1] for s in cpython.cpython_steps(request, ce, "x", given_profile=True)}
    assert "/build/files/pgo.profdata code.profclangd" in use["use the given PGO profile"]
    assert "touch profile-run-stamp" in use["use the given PGO profile"]


def test_pgo_profile_is_an_input_known_by_its_digest_only(tmp_path: Path) -> None:
    """The profile's sha256 is in the CPython action's key, its host path and file name are not; a noopt
    build refuses one, and so does a lever that changes the training (the profile would skip it)."""
    first, second = tmp_path / "a" / "mine.profdata", tmp_path / "b" / "other-name.prof"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"profile bytes")
    name = "cpython-3.11.2-pgo+lto"
    plain = declared_actions(tmp_path, "default")[name]
    with_first = declared_actions(tmp_path, "default", pgo_profile=str(first))[name]
    with_second = declared_actions(tmp_path, "default", pgo_profile=str(second))[name]
    assert with_first.key() == with_second.key() != plain.key()
    files = {f["path"]: f["sha256"] for f in with_first.description()["files"]}
    assert files["pgo_profile"] == hashlib.sha256(b"profile bytes").hexdigest()
    second.write_bytes(b"another profile")
    assert declared_actions(tmp_path / "again", "default", pgo_profile=str(second))[name].key() != with_first.key()
    with pytest.raises(ConfigError, match="pgo builds only"):
        declared_actions(tmp_path, "default", options="noopt", pgo_profile=str(first))
    with pytest.raises(ConfigError, match="pgo-extended lever"):
        declared_actions(tmp_path, "pgo-extended,o3", pgo_profile=str(first))
    with_o3 = declared_actions(tmp_path, "o3", pgo_profile=str(first))
    assert {f["path"] for f in with_o3[f"{name}-tuning-o3"].description()["files"]} >= {"pgo_profile"}


def test_the_fixed_layout_prefix_really_fixes_the_layout() -> None:
    """Two runs under the Linux prefix map their stack at the same address; without it they do not."""
    prefix = _ce().platform.fixed_layout_prefix()
    probe = ["sh", "-c", "grep -F '[stack]' /proc/self/maps"]

    def stack(argv: list[str]) -> str:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout

    assert stack([*prefix, *probe]) == stack([*prefix, *probe])
    assert len({stack(probe) for _ in range(3)}) > 1


def test_each_lever_changes_what_it_names() -> None:
    request, ce = _request(), _ce()
    o3 = cpython.cpython_env(request, ce, "x", _levers("o3"))["CFLAGS"].split()
    assert o3[0] == "-O3" and "-O2" not in o3
    assert "LDFLAGS_NODIST=-O3" in cpython.configure_args(request, ce, _levers("o3"))
    full = _levers("full-lto")
    assert "--with-lto=full" in cpython.configure_args(request, ce, full)
    assert "-flto=full" in cpython._check_optimizations(request, full)
    nsi = cpython.configure_args(request, ce, _levers("no-semantic-interposition"))
    assert "CFLAGS_NODIST=-fno-semantic-interposition" in nsi
    assert "LDFLAGS_NODIST=-fno-semantic-interposition" in nsi
    swaps = _levers("stack-protector", "no-frame-pointer")
    expected = "CFLAGS_NODIST=-fstack-protector -fomit-frame-pointer -momit-leaf-frame-pointer"
    assert expected in cpython.configure_args(request, ce, swaps)
    assert cpython.cpython_env(request, ce, "x", swaps)["CFLAGS"] == cpython.cpython_env(request, ce, "x")["CFLAGS"]
    no_clash = cpython.configure_args(request, ce, _levers("no-stack-clash"))
    assert "CFLAGS_NODIST=-fno-stack-clash-protection" in no_clash
    overrides = cpython.make_overrides(request, ce, _levers("no-pie", "pgo-extended"))
    assert _make_variable(overrides, "LINKFORSHARED").endswith(" -no-pie")
    assert "--pgo-extended" in _make_variable(overrides, "PROFILE_TASK")
    ir_pgo = cpython.make_overrides(request, ce, _levers("ir-pgo"))
    assert _make_variable(ir_pgo, "PGO_PROF_GEN_FLAG") == "-fprofile-generate"
    limits = [f"-tail-dup-{kind}-size={cpython.TAIL_DUP_LIMIT}" for kind in ("pred", "succ")]
    tail_dup = cpython.configure_args(request, ce, _levers("tail-dup"))
    assert f"CFLAGS_NODIST=-mllvm {limits[0]} -mllvm {limits[1]}" in tail_dup
    assert f"LDFLAGS_NODIST=-Wl,-mllvm,{limits[0]} -Wl,-mllvm,{limits[1]}" in tail_dup  # LTO generates code at link
    layout = cpython.configure_args(request, ce, _levers("hot-text", "split-functions"))
    assert "CFLAGS_NODIST=-fsplit-machine-functions" in layout
    assert "LDFLAGS_NODIST=-Wl,-z,keep-text-section-prefix -fsplit-machine-functions" in layout
    isa = cpython.configure_args(request, ce, _levers("x86-64-v3"))
    assert "CFLAGS_NODIST=-march=x86-64-v3" in isa and "LDFLAGS_NODIST=-march=x86-64-v3" in isa
    assert "-march" not in cpython.cpython_env(request, ce, "x", _levers("x86-64-v3"))["CFLAGS"]
    block_layout = cpython.configure_args(request, ce, _levers("ext-tsp", "align-jumps"))
    tsp, align = cpython.EXT_TSP, cpython.ALIGN_JUMPS
    assert f"CFLAGS_NODIST=-mllvm {tsp} -mllvm {align}" in block_layout
    assert f"LDFLAGS_NODIST=-Wl,-mllvm,{tsp} -Wl,-mllvm,{align}" in block_layout
    linking = cpython.configure_args(request, ce, _levers("cdsort", "no-plt"))
    assert "CFLAGS_NODIST=-fno-plt" in linking
    assert "LDFLAGS_NODIST=-Wl,--call-graph-profile-sort=cdsort -fno-plt" in linking


def test_the_default_build_keeps_frame_pointers_a_stack_protector_pie_and_fortify_but_not_clash_probes() -> None:
    request, ce = _request(), _ce()
    levers = cpython.tuning_for("default", request, ce)
    [nodist] = [
        a.split("=", 1)[1].split() for a in cpython.configure_args(request, ce, levers) if "CFLAGS_NODIST=" in a
    ]
    assert nodist[-2:] == ["-fstack-protector", "-fno-stack-clash-protection"]
    assert not any("omit" in flag for flag in nodist)  # frame pointers stay, for perf and python -X perf
    # sysconfig's CFLAGS, which extensions built for this Python get, keep the target's hardening.
    cflags = cpython.cpython_env(request, ce, "x", levers)["CFLAGS"].split()
    assert {"-fstack-protector-strong", "-fstack-clash-protection", "-fno-omit-frame-pointer"} <= set(cflags)
    assert "-mno-omit-leaf-frame-pointer" in cflags
    assert "-D_FORTIFY_SOURCE=2" in cflags
    assert "-no-pie" not in _make_variable(cpython.make_overrides(request, ce, levers), "LINKFORSHARED")
    # macOS has neither flag to drop (arm64 keeps frame pointers by ABI): only the stack-protector swap applies.
    mac = cpython.tuning_for("default", _request(target="aarch64-apple-darwin"), _ce("aarch64-apple-darwin"))
    assert "stack-protector" in mac and "no-frame-pointer" not in mac and "no-stack-clash" not in mac


# A function the three hardening flags all change: an address-taken local (-strong's canary, not plain
# -fstack-protector's), a variable-length array (clash probes) and a call (frame set-up).
_HARDENED_FUNCTION = """
void use(int *value, char *buffer);
int hardened(int n) {
    int value = n;
    char buffer[n];
    use(&value, buffer);
    return value;
}
"""


@pytest.mark.integration
def test_the_swaps_in_cflags_nodist_override_the_targets_flags_in_the_pinned_clang(
    toolchain: Toolchain, tmp_path: Path
) -> None:
    """CFLAGS_NODIST comes after CFLAGS on CPython's compile lines: with the pinned clang the later flag of each
    pair must win, giving the same object as the target's flags with the swaps made in place."""
    target = load_platform(X86_64, "x86_64-linux").cflags
    added = [flag for _, new in tuning.FLAG_SWAPS.values() for flag in new]
    # Each swapped flag replaced where it stands (the leaf frame pointer goes with the frame pointer).
    in_place = {old: new[0] for old, new in tuning.FLAG_SWAPS.values()}
    in_place["-mno-omit-leaf-frame-pointer"] = "-momit-leaf-frame-pointer"
    variants = {
        "target": list(target),
        "overridden": [*target, *added],
        "swapped": [in_place.get(flag, flag) for flag in target],
    }
    (tmp_path / "f.c").write_text(_HARDENED_FUNCTION)
    compile_lines = [
        f"x86_64-linux-gnu-clang -O2 -c {' '.join(flags)} -o {name}.o f.c" for name, flags in variants.items()
    ]
    toolchain.run(tmp_path, "\n".join(compile_lines))
    objects = {name: (tmp_path / f"{name}.o").read_bytes() for name in variants}
    assert objects["overridden"] == objects["swapped"]
    assert objects["overridden"] != objects["target"]


# A function that runs hot with a branch never taken in training, and a function never called.
_PROFILED_PROGRAM = """
#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) long step(long x, long i) {
    if (x < 0) { fprintf(stderr, "negative %ld at %ld\\n", x, i); fflush(stderr); abort(); }
    return (x * 31 + i) ^ (x >> 3);
}
__attribute__((noinline)) long never_called(long x) { printf("never %ld\\n", x); return x * 7; }
volatile long bias = 0;
int main(int argc, char **argv) {
    long acc = argc;
    for (long i = 0; i < 3000000; i++) acc = step((acc & 0xffffff) - bias, i);
    if (argc > 5) acc += never_called(acc);
    printf("%ld\\n", acc & 1);
    return 0;
}
"""


@pytest.mark.integration
def test_the_code_layout_levers_reach_the_lto_code_generator(toolchain: Toolchain, tmp_path: Path) -> None:
    """Trained, then built by the pinned clang 19 through ThinLTO and lld (code generated at link time): with
    the hot-text and split-functions levers' flags, the hot function lands in .text.hot, its never-run block in
    .text.split as ``step.cold``, and the never-called function in .text.unlikely; without them all is one
    .text."""
    cflags, ldflags = cpython._nodist_flags(_levers("hot-text", "split-functions"))
    (tmp_path / "p.c").write_text(_PROFILED_PROGRAM)
    cc = "x86_64-linux-gnu-clang -O2 -fuse-ld=lld"
    toolchain.run(
        tmp_path,
        f"{cc} -fprofile-instr-generate p.c -o trainer\n"
        "LLVM_PROFILE_FILE=p.profraw ./trainer\nllvm-profdata merge -o p.profdata p.profraw\n"
        f"{cc} -flto=thin -fprofile-instr-use=p.profdata -c p.c -o plain.o\n{cc} -flto=thin plain.o -o plain\n"
        f"{cc} -flto=thin -fprofile-instr-use=p.profdata {' '.join(cflags)} -c p.c -o laid-out.o\n"
        f"{cc} -flto=thin {' '.join(ldflags)} laid-out.o -o laid-out\n",
    )

    def text_sections(name: str) -> list[str]:
        """The executable's .text sections, in file order."""
        with (tmp_path / name).open("rb") as f:
            return [section.name for section in ELFFile(f).iter_sections() if section.name.startswith(".text")]

    def home(name: str, symbol: str) -> str:
        """The section that holds `symbol`."""
        with (tmp_path / name).open("rb") as f:
            elf = ELFFile(f)
            [found] = elf.get_section_by_name(".symtab").get_symbol_by_name(symbol)
            return elf.get_section(found["st_shndx"]).name

    assert text_sections("plain") == [".text"]
    assert home("laid-out", "step") == ".text.hot"
    assert home("laid-out", "step.cold") == ".text.split"
    assert home("laid-out", "never_called") == ".text.unlikely"


def _disassembled_with_and_without(
    toolchain: Toolchain, tmp_path: Path, lever: str, program: str, symbol: str, link: str = ""
) -> tuple[str, str]:
    """Build `program` with the pinned clang 19 through ThinLTO and lld twice, as ``plain`` and as ``tuned`` with
    the `lever`'s flags (compile and link), and return `symbol`'s disassembly in each; `link` ends both links."""
    cflags, ldflags = cpython._nodist_flags(_levers(lever))
    (tmp_path / "p.c").write_text(program)
    cc = "x86_64-linux-gnu-clang -O2 -fuse-ld=lld -flto=thin -Wl,-z,now"
    result = toolchain.run(
        tmp_path,
        f"{cc} -c p.c -o plain.o\n{cc} plain.o -o plain {link}\n"
        f"{cc} {' '.join(cflags)} -c p.c -o tuned.o\n{cc} {' '.join(ldflags)} tuned.o -o tuned {link}\n"
        'for b in plain tuned; do echo "== $b"; '
        f"llvm-objdump -d --no-show-raw-insn --disassemble-symbols={symbol} $b; done",
    )
    plain, tuned = result.stdout.split("== plain", 1)[1].split("== tuned", 1)
    return plain, tuned


# A shift by a variable count: x86-64-v3's BMI2 has a flag-free form (shrx) that the baseline lacks.
_SHIFTING_PROGRAM = """
__attribute__((noinline)) unsigned long shift(unsigned long x, unsigned n) { return x >> n; }
int main(int argc, char **argv) { return (int)shift((unsigned long)argv, (unsigned)argc) & 1; }
"""


@pytest.mark.integration
def test_the_isa_level_lever_reaches_the_lto_code_generator(toolchain: Toolchain, tmp_path: Path) -> None:
    """Built by the pinned clang 19 through ThinLTO and lld with the x86-64-v3 lever's flags, the code uses
    v3 instructions; built without them, it does not."""
    plain, v3 = _disassembled_with_and_without(toolchain, tmp_path, "x86-64-v3", _SHIFTING_PROGRAM, "shift")
    assert "shrx" in v3 and "shrx" not in plain and "shr" in plain


def test_the_hardening_levers_leave_the_libraries_flags_alone() -> None:
    ce = _ce()
    assert "-fstack-protector-strong" in ce.autotools_env("zlib")["CFLAGS"].split()


def test_bolt_links_with_relocations_and_rewrites_the_interpreter_between_build_and_install() -> None:
    request, ce = _request(), _ce()
    levers = _levers("bolt")
    assert "-Wl,--emit-relocs" in _make_variable(cpython.make_overrides(request, ce, levers), "LINKFORSHARED")
    assert "-fdebug-default-version=4" in cpython.cpython_env(request, ce, "x", levers)["CFLAGS"].split()
    names = [s.name for s in cpython.cpython_steps(request, ce, "x", levers)]
    build, install = names.index("build"), names.index("install")
    assert names[build + 1 : install] == [
        "keep the PGO profile",
        "bolt: instrument",
        "bolt: training",
        "bolt: merge profiles",
        "bolt: optimize",
        "bolt: check",
    ]
    steps = {s.name: " ".join(s.argv) for s in cpython.cpython_steps(request, ce, "x", levers)}
    assert "run_profile_task" in steps["bolt: training"] and "--pgo" in steps["bolt: training"]
    assert all(test in steps["bolt: check"] for test in ("test_hashlib", "test_hmac", "test_ssl"))
    assert "-use-gnu-stack" not in steps["bolt: optimize"] and "-frame-opt" not in steps["bolt: optimize"]
    assert "fips" not in " ".join(steps[n] for n in steps if n.startswith("bolt"))  # only bin/python is rewritten
    assert not any(n.startswith("bolt") for n in (s.name for s in cpython.cpython_steps(request, ce, "x")))


def test_levers_compose_with_3_14s_tail_calling_interpreter() -> None:
    request, ce = _request("3.14"), _ce()
    chosen = cpython.tuning_for("default", request, ce)
    every = cpython.tuning_for(",".join(name for name in tuning.LEVERS if name != "tail-dup"), request, ce)
    with pytest.raises(ConfigError, match="no computed-goto dispatch"):
        cpython.tuning_for("tail-dup", request, ce)
    for levers in (chosen, every):
        args = cpython.configure_args(request, ce, levers)
        assert args.count("--with-tail-call-interp") == 1
        assert {"--enable-optimizations", f"--with-lto={cpython.lto_mode(levers)}"} <= set(args)
    args = cpython.configure_args(request, ce, every)
    assert "--with-lto=full" in args
    swaps = "-fstack-protector -fomit-frame-pointer -momit-leaf-frame-pointer -fno-stack-clash-protection"
    split, isa = "-fsplit-machine-functions", "-march=x86-64-v3"
    tsp, align = f"-mllvm {cpython.EXT_TSP}", f"-mllvm {cpython.ALIGN_JUMPS}"
    assert f"CFLAGS_NODIST=-fno-semantic-interposition {split} {tsp} {align} -fno-plt {isa} {swaps}" in args
    link_tsp, link_align = f"-Wl,-mllvm,{cpython.EXT_TSP}", f"-Wl,-mllvm,{cpython.ALIGN_JUMPS}"
    cdsort = "-Wl,--call-graph-profile-sort=cdsort"
    assert (
        f"LDFLAGS_NODIST=-fno-semantic-interposition -O3 -Wl,-z,keep-text-section-prefix {split} {link_tsp} "
        f"{cdsort} {link_align} -fno-plt {isa}"
    ) in args
    assert "bolt: optimize" in [s.name for s in cpython.cpython_steps(request, ce, "x", every)]
    # A noopt 3.14 build gets neither the tail-calling interpreter nor any lever.
    noopt = _request("3.14", "noopt")
    assert "--with-tail-call-interp" not in cpython.configure_args(noopt, ce, cpython.tuning_for("default", noopt, ce))


def test_bolt_is_refused_where_the_target_pins_no_llvm_bolt() -> None:
    request = _request("3.13", target="aarch64-unknown-linux-gnu")
    for build_host in ("x86_64-linux", "aarch64-linux"):
        ce = _ce("aarch64-unknown-linux-gnu", build_host)
        assert "bolt" not in cpython.tuning_for("default", request, ce)
        with pytest.raises(Exception, match="no llvm-bolt"):
            cpython.tuning_for("bolt", request, ce)


def test_levers_reach_the_cpython_action_only_and_name_its_artifact(tmp_path: Path) -> None:
    plain = declared_actions(tmp_path, "o3")
    tuned = declared_actions(tmp_path, "o3,bolt")
    assert "cpython-3.11.2-pgo+lto-tuning-o3" in plain and "cpython-3.11.2-pgo+lto-tuning-o3+bolt" in tuned
    libraries = {name for name, a in plain.items() if a.rule == "library"}
    assert libraries and {n: plain[n].key() for n in libraries} == {n: tuned[n].key() for n in libraries}
    cpython_tuned = tuned["cpython-3.11.2-pgo+lto-tuning-o3+bolt"]
    assert [t["name"] for t in cpython_tuned.description()["toolchain"]["tools"]] == [bolt.TOOL]
    assert "tools" not in plain["cpython-3.11.2-pgo+lto-tuning-o3"].description()["toolchain"]
    assert "/tools/bolt/bin" in cpython_tuned.full_env()["PATH"]
    packages = [p.filename for p in cpython_tuned.toolchain.all_packages()]
    assert "bolt-19_19.1.7-3~deb12u1_amd64.deb" in packages and "libbolt-19-dev_19.1.7-3~deb12u1_amd64.deb" in packages


def test_the_default_tuning_keeps_the_plain_artifact_name_and_a_cross_build_declares(tmp_path: Path) -> None:
    assert "cpython-3.11.2-pgo+lto" in declared_actions(tmp_path, "default")
    cross = declared_actions(tmp_path, "default", "aarch64-unknown-linux-gnu")
    assert "cpython-3.11.2-pgo+lto" in cross and "cpython-3.11.2-noopt" in cross


def _computed_goto_loop(handlers: int) -> str:
    """C source of a small interpreter with CPython's loop name: `handlers` opcodes, each dispatching the next
    one through a computed goto, as ceval.c does."""
    labels = ", ".join(f"&&op{i}" for i in range(handlers))
    bodies = "".join(
        f"op{i}: acc = acc * {2 * i + 3} + {i}; if (acc == {i}) return {i}; DISPATCH();\n" for i in range(handlers)
    )
    return (
        "#define DISPATCH() goto *table[code[pc++] % " + str(handlers) + "]\n"
        "long _PyEval_EvalFrameDefault(const unsigned char *code, long acc) {\n"
        f"  static void *table[] = {{{labels}}};\n  long pc = 0;\n  DISPATCH();\n{bodies}}}\n"
        "int main(int argc, char **argv) {\n"
        "  return (int)_PyEval_EvalFrameDefault((const unsigned char *)argv[0], argc);\n}\n"
    )


def _dispatch_checks(toolchain, tmp_path: Path, build: str, target: str = X86_64) -> int:
    """Write the 150-opcode loop and the dispatch check, run the shell `build` (which makes ``merged`` without
    the tail-dup flags and ``duplicated`` with ``$TAIL_DUP``), check both; assert that the check refused the first
    and passed the second, and return the second's count of indirect jumps."""
    cflags, ldflags = cpython._nodist_flags(_levers("tail-dup"))
    (tmp_path / "loop.c").write_text(_computed_goto_loop(150))
    jump = targets.all_targets()[target].dispatch_jump
    (tmp_path / "check.sh").write_text(cpython._check_dispatch('"$1"', jump).argv[-1])
    toolchain.run(
        tmp_path,
        f"TAIL_DUP='{' '.join(cflags)}'; TAIL_DUP_LINK='{' '.join(ldflags)}'\n{build}\n"
        "for name in merged duplicated; do\n"
        "  if sh -e check.sh $name > $name.out 2>&1; then echo passed; else echo refused; fi >> $name.out\n"
        "done",
    )
    merged, duplicated = ((tmp_path / f"{name}.out").read_text() for name in ("merged", "duplicated"))
    assert merged.endswith("refused\n") and "did not reach the code generator" in merged, merged
    assert duplicated.endswith("passed\n"), duplicated
    return int(duplicated.split(": ")[1].split()[0])


@pytest.mark.integration
def test_the_dispatch_check_tells_a_duplicated_loop_from_a_merged_one(toolchain, tmp_path: Path) -> None:
    """Built by the pinned clang 19 through ThinLTO and lld (code generated at link time) with the tail-dup
    lever's flags, a 150-opcode loop keeps a jump per opcode and passes the check; built without them it shares
    one jump and the check fails the build."""
    build = 'build() { x86_64-linux-gnu-clang -O2 -flto=thin -fuse-ld=lld "$@" loop.c; }\n'
    jumps = _dispatch_checks(
        toolchain, tmp_path, build + "build -o merged && build -o duplicated $TAIL_DUP $TAIL_DUP_LINK"
    )
    assert jumps >= 150  # one per opcode at least


@pytest.mark.integration
def test_the_dispatch_check_reads_aarch64_code_too(toolchain, tmp_path: Path) -> None:
    """AArch64 dispatches with ``br xN``: objects compiled for it (code generated at compile time) pass with the
    lever's flags and are refused without them."""
    compile_ = "aarch64-linux-gnu-clang -O2 -c loop.c"
    build = f"{compile_} -o merged && {compile_} $TAIL_DUP -o duplicated"
    jumps = _dispatch_checks(toolchain, tmp_path, build, "aarch64-unknown-linux-gnu")
    assert jumps >= 150


def _handler_addresses(path: Path) -> list[int]:
    """Where the dispatch table of the computed-goto loop in the PIE `path` points: the addends of its
    relative relocations that fall inside ``_PyEval_EvalFrameDefault``."""
    with path.open("rb") as f:
        elf = ELFFile(f)
        [loop] = elf.get_section_by_name(".symtab").get_symbol_by_name("_PyEval_EvalFrameDefault")
        start, end = loop["st_value"], loop["st_value"] + loop["st_size"]
        relocations = elf.get_section_by_name(".rela.dyn").iter_relocations()
        return [r["r_addend"] for r in relocations if start < r["r_addend"] < end]


@pytest.mark.integration
def test_the_align_jumps_lever_aligns_the_opcode_handlers(toolchain: Toolchain, tmp_path: Path) -> None:
    """Built by the pinned clang 19 through ThinLTO and lld (code generated at link time) with the align-jumps
    lever's flags, the handlers of a 150-opcode computed-goto loop start on 16-byte boundaries; without them
    most do not. (A handler placed right after an indirect jump that can reach it counts as reached by falling
    through and stays unaligned: 2 of the 150 here.)"""
    cflags, ldflags = cpython._nodist_flags(_levers("align-jumps"))
    (tmp_path / "loop.c").write_text(_computed_goto_loop(150))
    cc = "x86_64-linux-gnu-clang -O2 -flto=thin -fuse-ld=lld -pie -fPIE"
    toolchain.run(tmp_path, f"{cc} loop.c -o plain\n{cc} {' '.join(cflags)} {' '.join(ldflags)} loop.c -o aligned")
    plain, aligned = (_handler_addresses(tmp_path / name) for name in ("plain", "aligned"))
    assert len(plain) >= 150 and len(aligned) >= 150
    assert sum(address % 16 == 0 for address in aligned) >= 0.95 * len(aligned)
    assert sum(address % 16 == 0 for address in plain) < len(plain) / 2


_CALLING_LIBM = """
#include <math.h>
int main(int argc, char **argv) { return (int)cos((double)argc + (double)(long)argv); }
"""


@pytest.mark.integration
def test_the_no_plt_lever_calls_shared_libraries_through_the_got(toolchain: Toolchain, tmp_path: Path) -> None:
    """Built by the pinned clang 19 through ThinLTO and lld with the no-plt lever's flags, a call into libm is an
    indirect call through the GOT and the PLT has no stub for it; built without them, it calls ``cos@plt``."""
    plain, got = _disassembled_with_and_without(toolchain, tmp_path, "no-plt", _CALLING_LIBM, "main", link="-lm")
    assert "<cos@plt>" in plain and "<cos@plt>" not in got
    assert any(line.split()[1:2] == ["callq"] and "*" in line for line in got.splitlines()[1:] if line.strip())

    def plt_symbols(name: str) -> set[str]:
        """The symbols the executable's PLT binds (the C runtime's start-up code may keep a stub of its own)."""
        with (tmp_path / name).open("rb") as f:
            elf = ELFFile(f)
            relocations = elf.get_section_by_name(".rela.plt")
            symbols = elf.get_section(relocations["sh_link"])
            return {symbols.get_symbol(r["r_info_sym"]).name for r in relocations.iter_relocations()}

    assert "cos" in plt_symbols("plain") and "cos" not in plt_symbols("tuned")


@pytest.mark.integration
def test_the_layout_levers_options_are_known_to_lld_and_its_code_generator(
    toolchain: Toolchain, tmp_path: Path
) -> None:
    """lld and the LTO code generator behind it take the ext-tsp and cdsort levers' options, and a misspelled
    one fails the link, so neither lever can be silently ignored."""
    _, ldflags = cpython._nodist_flags(_levers("ext-tsp", "cdsort"))
    (tmp_path / "loop.c").write_text(_computed_goto_loop(20))
    cc = "x86_64-linux-gnu-clang -O2 -flto=thin -fuse-ld=lld"
    misspelled = [f"{flag}x" for flag in ldflags]
    result = toolchain.run(
        tmp_path,
        f"{cc} -c loop.c -o loop.o\n{cc} {' '.join(ldflags)} loop.o -o laid-out\n"
        + "".join(f"if {cc} {flag} loop.o -o bad 2>&1; then echo 'accepted {flag}'; fi\n" for flag in misspelled),
    )
    assert (tmp_path / "laid-out").is_file()
    assert "accepted" not in result.stdout, result.stdout
    assert "Unknown command line argument" in result.stdout and "cdsortx" in result.stdout
