"""Recipe of CPython: configure, PGO/LTO build, install, and the facts the distribution needs.

Choices (see pbs-facts in the design notes for why python-build-standalone makes the same ones):

- Every stdlib extension is built into libpython (``MODULE_BUILDTYPE=static``), so ``_ssl`` and
  ``_hashlib`` share one copy of the static OpenSSL; only the test modules (and ``_crypt`` up to 3.12, which
  needs the system libcrypt) are shared objects (``python_minors``). The platform's linker flags keep every
  symbol of the static dependency libraries out of the dynamic symbol tables.
- ``--enable-shared`` ships ``libpython3.X.so`` for embedders, but the interpreter links the libpython
  objects directly (``LINK_PYTHON_OBJS``), as Debian and python-build-standalone do, for speed.
- A module configure finds missing or disabled fails the build unless the Python minor or the platform
  leaves it out deliberately, with the reason.
- A cross build (a target the build host cannot run) configures with the build host's own CPython as the build
  Python; the target's programs it still runs (the PGO training) run under the sandbox's emulator.
- A pgo+lto build gets the speed levers ``tuning=`` names (``pydist.tuning``): optimization level, LTO mode,
  hardening variants, a non-PIE interpreter, the PGO training task and instrumentation, BOLT (``pydist.bolt``),
  and the interpreter loop's tail duplication (checked in the built binary).
- From 3.13 the object allocator is mimalloc unless ``PYTHONMALLOC`` says otherwise (``python_minors``; the minor's
  patch series makes it the default), and configure must find it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from hermetic.action import DEPS, FILES, OUT, SRC, InputFile, Step, sh
from pydist import bolt, catalog, tuning
from pydist.buildpaths import PREFIX
from pydist.compile_env import CompileEnv
from pydist.matrix import BuildRequest
from pydist.paths import IN_SANDBOX, repo_label
from pydist.python_minors import TAIL_CALLING_INTERPRETER
from pydist.tuning import NO_TUNING, Tuning

# The CPython artifact's layout: /build/out/python/{install,build,build-info.json}.
ARTIFACT_ROOT = f"{OUT}/python"
# A cross build's build Python (the build host's own CPython artifact) is shown at the prefix the target is
# configured for, so what it installs for the target (pip, by ensurepip) lands in the target's layout.
BUILD_PYTHON = f"{PREFIX}/bin/python3"
BUILD_PYTHON_DEP = "build-python"

# The merged PGO profile: where CPython's Makefile writes and reads it (clang), and its name in the
# sandbox's files and in the artifact's build directory.
MERGED_PROFILE = "code.profclangd"
PGO_PROFILE = "pgo.profdata"
# Helper files the CPython action reads (their hashes are part of its key).
HELPER_FILES = tuple(
    InputFile(path=IN_SANDBOX / name, label=repo_label(IN_SANDBOX / name))
    for name in ("collect_build_info.py", "printvar.mk")
)


def tuning_for(text: str, request: BuildRequest, ce: CompileEnv) -> Tuning:
    """The levers ``tuning=`` `text` gives `request` on this target (a ConfigError for one it cannot have)."""
    platform = ce.platform
    facts = tuning.BuildFacts(
        release=request.options.release,
        minor=request.minor.version,
        cflags=tuple(platform.cflags),
        arch=platform.toolchain.arch,
        elf=platform.object_format == "elf",
        bolt_tool=bolt.TOOL in platform.toolchain.available_tools,
        native=platform.native,
        tail_calling=TAIL_CALLING_INTERPRETER in request.minor.release_configure,
    )
    return tuning.resolve(text, facts)


def build_python_mounts(request: BuildRequest, ce: CompileEnv) -> tuple[dict[str, tuple[str, str]], tuple[str, ...]]:
    """For a cross build: the build Python dependency shown at the prefix, and its site-packages hidden (so
    ensurepip, which runs under it, installs pip for the target instead of finding its own). Native: none."""
    if ce.platform.native:
        return {}, ()
    # The build Python is a noopt build with the GIL: its stdlib directory has no "t" suffix.
    installed = PREFIX.lstrip("/")  # the artifact holds the install tree under install/
    return {BUILD_PYTHON_DEP: (installed, PREFIX)}, (f"{PREFIX}/lib/python{request.python_minor}/site-packages",)


def not_built(request: BuildRequest, ce: CompileEnv) -> Mapping[str, str]:
    """Modules deliberately left out of this build, with why: the minor's and the platform's."""
    return {**request.minor.not_built, **ce.platform.modules_not_built()}


def configure_args(request: BuildRequest, ce: CompileEnv, levers: Tuning = NO_TUNING) -> list[str]:
    """The ./configure command line for `request` with the speed `levers`."""
    args = [
        f"--prefix={PREFIX}",
        f"--build={ce.build_triple}",
        f"--host={ce.host_triple}",
        "--enable-shared",
        f"--with-openssl={DEPS}",
        "--with-openssl-rpath=no",
        *(option for library in _libraries(ce) for option in library.cpython_configure),
        "--with-ensurepip=install",
        "--with-dbmliborder=",
        *(["MODULE_BUILDTYPE=static"] if request.minor.setup_stdlib else []),
        "PKG_CONFIG=pkg-config --static",
        *request.minor.configure,
    ]
    if request.options.pgo:
        args.append("--enable-optimizations")
    if request.options.lto:
        args.append(f"--with-lto={lto_mode(levers)}")
    if request.options.debug:
        args.append("--with-pydebug")
    if request.freethreaded:
        args.append("--disable-gil")
    if request.options.release:
        args += request.minor.release_configure
    if not ce.platform.native:
        args.append(f"--with-build-python={BUILD_PYTHON}")
    # Flags for CPython's own build that sysconfig does not hand on to extension modules built later.
    cflags_nodist, ldflags_nodist = _nodist_flags(levers)
    if cflags_nodist:
        args.append(f"CFLAGS_NODIST={' '.join(cflags_nodist)}")
    if ldflags_nodist:
        args.append(f"LDFLAGS_NODIST={' '.join(ldflags_nodist)}")
    return args


# Above the number of opcode handlers of any supported CPython's interpreter loop.
TAIL_DUP_LIMIT = 5000
# The code generator's options of the block-layout levers (log2 of 16 bytes for the alignment).
EXT_TSP = "-enable-ext-tsp-block-placement"
ALIGN_JUMPS = "-align-all-nofallthru-blocks=4"


def lto_mode(levers: Tuning) -> str:
    """``--with-lto``'s value: ThinLTO unless the full-lto lever is on."""
    return "full" if "full-lto" in levers else "thin"


def _llvm_options(*options: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(compile flags, link flags) that hand `options` to LLVM's code generator: at compile time, and at link
    time, where LTO generates the code."""
    return tuple(flag for option in options for flag in ("-mllvm", option)), tuple(f"-Wl,-mllvm,{o}" for o in options)


def _compile_and_link(*flags: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The same `flags` at compile time and at link time (where LTO generates the code)."""
    return flags, flags


# lever -> (CFLAGS_NODIST, LDFLAGS_NODIST) it adds, in command-line order.
_LEVER_FLAGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # What configure adds for gcc only: calls between libpython's own functions need no PLT.
    "no-semantic-interposition": _compile_and_link("-fno-semantic-interposition"),
    # LLVM 19 caps tail duplication at 16 predecessors and successors (llvm/llvm-project#78582), so the ~250
    # opcode handlers of the computed-goto loop share one `jmp *` again and the branch predictor loses the
    # per-opcode history (upstream: llvm/llvm-project#106846, lifted for indirect branches in LLVM 20).
    "tail-dup": _llvm_options(*(f"-tail-dup-{kind}-size={TAIL_DUP_LIMIT}" for kind in ("pred", "succ"))),
    # The LTO code generator runs at link time, at the link command's level (-O2 when it names none).
    "o3": ((), ("-O3",)),
    # The profile puts hot functions in .text.hot.* and never-run ones in .text.unlikely.*; lld merges every
    # .text.* into one .text in input order unless told to keep the prefixes as separate runs of code.
    "hot-text": ((), ("-Wl,-z,keep-text-section-prefix",)),
    "split-functions": _compile_and_link("-fsplit-machine-functions"),
    # LLVM's own block placement, extended travelling salesman over the profile's branch counts, also inside the
    # interpreter loop, which BOLT has to leave alone (pydist.bolt).
    "ext-tsp": _llvm_options(EXT_TSP),
    # The profile's call graph (.llvm.call-graph-profile) orders functions at link time; lld 19 uses hfsort
    # unless told otherwise.
    "cdsort": ((), ("-Wl,--call-graph-profile-sort=cdsort",)),
    # gcc aligns jump targets that nothing falls into (-falign-jumps), the computed-goto loop's opcode handlers
    # among them; clang aligns loop headers only (161 of 3.11's 183 handlers, BENCHMARKS.md).
    "align-jumps": _llvm_options(ALIGN_JUMPS),
    # Every link is BIND_NOW (the validator's check), so a lazy-binding stub only adds a jump per call into
    # libc and libm.
    "no-plt": _compile_and_link("-fno-plt"),
    # Only CPython's own code: sysconfig's CFLAGS stay at the target's baseline, so extensions built later run
    # wherever the interpreter does.
    "x86-64-v3": _compile_and_link("-march=x86-64-v3"),
}


def _nodist_flags(levers: Tuning) -> tuple[list[str], list[str]]:
    """(CFLAGS_NODIST, LDFLAGS_NODIST) the levers add."""
    chosen = [flags for lever, flags in _LEVER_FLAGS.items() if lever in levers]
    cflags = [flag for compile_flags, _ in chosen for flag in compile_flags]
    ldflags = [flag for _, link_flags in chosen for flag in link_flags]
    # The hardening swaps come after CFLAGS, whose target flags they override (the last of a pair wins), and
    # stay out of sysconfig's CFLAGS: extensions built later for this Python keep the target's full hardening.
    cflags += [flag for lever, (_, new) in tuning.FLAG_SWAPS.items() if lever in levers for flag in new]
    return cflags, ldflags


def make_overrides(request: BuildRequest, ce: CompileEnv, levers: Tuning = NO_TUNING) -> list[str]:
    """Make variables: link the interpreter with libpython's objects (and the platform's way to find the
    shipped libpython), byte-compile the stdlib reproducibly, and the PGO training task."""
    overrides = [
        "LINK_PYTHON_OBJS=$(LIBRARY_OBJS)",
        f"LINKFORSHARED={' '.join(interpreter_link_flags(ce, levers))}",
        # Byte-compile the stdlib in one process: a .pyc depends on what the compiling process interned and
        # merged before it (e.g. whether a string constant is marshalled as interned), so -j0's workers,
        # which get files in a timing-dependent order, gave different .pyc files from build to build.
        "COMPILEALL_OPTS=-j1",
    ]
    if request.options.pgo:
        overrides.append(f"PROFILE_TASK={profile_task(levers)}")
    if "ir-pgo" in levers:
        # Counters placed in LLVM's IR after its early clean-ups instead of on the C syntax tree; the training's
        # file names and merge stay CPython's, and -fprofile-instr-use reads either kind of profile.
        overrides.append("PGO_PROF_GEN_FLAG=-fprofile-generate")
    return overrides


def profile_task(levers: Tuning) -> str:
    """The PGO training run's arguments to the interpreter (the BOLT training runs the same).

    The profile decides the code, so two builds must train alike: the tests run one after another in the
    training process (parallel workers merged counts that depended on timing) and the random module is
    seeded (``-r --randseed``: 3.10-3.12 seed it only when shuffling, in a fixed order then; 3.13+ take
    SOURCE_DATE_EPOCH instead and keep upstream's order). :func:`training_run` fixes the rest."""
    selection = "--pgo-extended" if "pgo-extended" in levers else "--pgo"
    return f"-m test {selection} --timeout=1200 -r --randseed=1"


def training_run(request: BuildRequest, ce: CompileEnv) -> tuple[tuple[str, ...], dict[str, str]]:
    """(command prefix, environment) of steps that run the PGO training: fixed str/bytes hashes and, where
    the platform can, no address space randomization (object addresses decide set and dict probing)."""
    if not request.options.pgo:
        return (), {}
    return ce.platform.fixed_layout_prefix(), {"PYTHONHASHSEED": "0"}


def given_profile_file(profile: Path) -> InputFile:
    """A ``pgo_profile=`` file as an input of the CPython action: its sha256 is in the key (its host path
    and name are not)."""
    return InputFile(path=profile, label="pgo_profile", sandbox_name=PGO_PROFILE)


def _use_given_profile() -> Step:
    """Put the given profile where CPython's Makefile merges the training's, and mark the training done: the
    build compiles once, with that profile."""
    return sh("use the given PGO profile", f"cp {FILES}/{PGO_PROFILE} {MERGED_PROFILE}\ntouch profile-run-stamp")


def _keep_profile() -> Step:
    """Print the merged PGO profile's sha256 in the build log and keep the profile in the artifact (the full
    archive's ``python/build/pgo.profdata``): given back as ``pgo_profile=``, it makes the build repeatable.
    The training itself is not: its counts depend on timing and heap addresses."""
    return sh(
        "keep the PGO profile",
        f"sha256sum {MERGED_PROFILE}\nmkdir -p {ARTIFACT_ROOT}/build\n"
        f"cp {MERGED_PROFILE} {ARTIFACT_ROOT}/build/{PGO_PROFILE}",
    )


def interpreter_link_flags(ce: CompileEnv, levers: Tuning) -> list[str]:
    """``LINKFORSHARED``: the platform's flags for the interpreter's link, plus the levers' (only the
    interpreter and CPython's embedding test program link with these; libpython and extensions do not)."""
    flags = [ce.platform.interpreter_link_flags()]
    if "no-pie" in levers:
        # With LTO the linker generates the code, so a non-PIE link gets non-PIC code, though the objects
        # were compiled -fPIC for libpython.so.
        flags.append("-no-pie")
    if "bolt" in levers:
        flags += bolt.LINK_FLAGS
    return flags


def _setup_local(request: BuildRequest, ce: CompileEnv) -> str:
    """Shell that writes Modules/Setup.local: the shared modules (their lines copied from
    Setup.stdlib.in, whose first rule wins) and the disabled ones."""
    shared = " ".join(request.minor.shared_modules)
    disabled = " ".join(sorted(not_built(request, ce)))
    return (
        "{ echo '# Generated by the build: shared test modules, disabled modules.';\n"
        "  echo '*shared*';\n"
        f"  for m in {shared}; do\n"
        '    marker="@MODULE_$(echo $m | tr a-z A-Z)_TRUE@"\n'
        '    sed -n "s/^$marker\\($m .*\\)/\\1/p" Modules/Setup.stdlib.in; done;\n'
        f"  echo '*disabled*'; for m in {disabled}; do echo $m; done; }} > Modules/Setup.local\n"
        "cat Modules/Setup.local"
    )


# The interpreter loop and its one-jump-per-opcode count that proves the tail-dup lever worked: gcc 12 and clang
# 18 leave 200-300 indirect jumps in it, clang 19 without the lever 1-3.
_EVAL_LOOP = "_PyEval_EvalFrameDefault"
DISPATCH_JUMPS_MIN = 100


def _check_dispatch(interpreter: str, jump: str) -> Step:
    """Shell that fails unless the `interpreter`'s loop kept an indirect jump per opcode handler (`jump`, the
    target's pattern: x86_64 ``jmp *reg``, AArch64 ``br xN``), i.e. the tail-dup lever reached the code generator.
    Mach-O prefixes C symbols with ``_``, so both spellings are asked for; the one that is not there is only warned
    about."""
    return sh(
        "check the interpreter's dispatch",
        f"jumps=$(llvm-objdump -d --no-show-raw-insn --disassemble-symbols={_EVAL_LOOP},_{_EVAL_LOOP} "
        f"{interpreter} 2>/dev/null | grep -c -E '[[:space:]]({jump})' || true)\n"
        f'echo "{_EVAL_LOOP}: $jumps indirect jumps"\n'
        f'[ "$jumps" -ge {DISPATCH_JUMPS_MIN} ] || {{ echo "the interpreter loop shares one dispatch jump: '
        f'the tail-dup flags did not reach the code generator" >&2; exit 1; }}',
    )


def _dispatch_jump(ce: CompileEnv) -> str:
    """The target's opcode-dispatch jump pattern (its toolchain file's ``[target] dispatch_jump``)."""
    return str(ce.platform.toolchain.target["dispatch_jump"])


def _check_optimizations(request: BuildRequest, levers: Tuning = NO_TUNING) -> str:
    """Shell that fails unless configure really enabled the requested PGO and LTO (a compiler configure does
    not recognize gets neither, silently)."""
    checks = []
    if request.options.pgo:
        checks.append(("PGO_PROF_USE_FLAG", "fprofile-instr-use", "PGO"))
    if request.options.lto:
        checks.append(("CONFIGURE_LDFLAGS_NODIST", f"-flto={lto_mode(levers)}", "LTO"))
    script = ""
    for variable, needle, what in checks:
        script += (
            f"grep -q -E '^{variable}[[:space:]]*=.*{needle}' Makefile || "
            f"{{ echo 'configure did not enable {what} ({variable} has no {needle})' >&2; exit 1; }}\n"
        )
    shown = request.options.optimization + (f", tuning {levers.label}" if levers.levers else "")
    return script + f"echo 'optimizations as requested: {shown}'"


def _check_modules(request: BuildRequest, ce: CompileEnv) -> str:
    """Shell that fails when configure left out a module that is not deliberately left out."""
    allowed = "|".join(sorted(not_built(request, ce)))
    return (
        "bad=$(sed -n 's/^MODULE_\\([A-Z0-9_]*\\)_STATE=\\(.*\\)$/\\1 \\2/p' Makefile | "
        'awk \'$2 != "yes" {print tolower($1) "=" $2}\' | '
        f"grep -v -E '^({allowed})=' || true)\n"
        'if [ -n "$bad" ]; then echo "extension modules not built: $bad" >&2; exit 1; fi\n'
        "echo all expected extension modules are built"
    )


def _libraries(ce: CompileEnv) -> list[catalog.Library]:
    """The libraries CPython links on this target, in the lock's order."""
    return [library for name, library in catalog.libraries().items() if ce.platform.uses_library(name)]


def cpython_env(request: BuildRequest, ce: CompileEnv, label: str, levers: Tuning = NO_TUNING) -> dict[str, str]:
    """Compile environment of the CPython build."""
    optimize = "-Og" if request.options.debug else "-O3" if "o3" in levers else "-O2"
    env = ce.autotools_env(label, optimize=optimize)
    if "bolt" in levers:
        env["CFLAGS"] += " " + " ".join(bolt.COMPILE_FLAGS)
    includes = [f"{DEPS}/include", *(f"{DEPS}/include/{d}" for library in _libraries(ce) for d in library.include_dirs)]
    env["CPPFLAGS"] = " ".join(f"-I{d}" for d in includes)
    env["LDFLAGS"] = " ".join([ce.ldflags(), f"-L{DEPS}/lib", *ce.platform.hide_dependency_symbols()])
    # The PGO training run writes its profiles here; LLVM_PROFDATA is found on PATH (the pinned one).
    env["LLVM_PROFILE_FILE"] = f"{SRC}/code-%p.profclangr"
    if not ce.platform.native:
        env["CONFIG_SITE"] = f"{SRC}/config.site.cross"
        # 3.11's configure insists on a readelf for the host when cross-building.
        env["READELF"] = "llvm-readelf"
    return env


def cpython_steps(
    request: BuildRequest, ce: CompileEnv, label: str, levers: Tuning = NO_TUNING, given_profile: bool = False
) -> list[Step]:
    """configure, make (PGO training included for pgo builds, unless `given_profile`: then the action's
    ``pgo_profile`` file is used), BOLT when asked, install, and collect build facts."""
    overrides = make_overrides(request, ce, levers)
    training_prefix, training_env = training_run(request, ce)
    steps = list(ce.platform.cpython_prepare_steps())
    if not ce.platform.native:
        # What configure cannot find out by running a program when it cannot run the target's programs.
        answers = ce.platform.toolchain.platform.get("cpython_cross_answers", {})
        lines = "".join(f"{name}={value}\\n" for name, value in sorted(answers.items()))
        steps.append(sh("write config.site", f"printf '{lines}' > {SRC}/config.site.cross"))
    if request.minor.setup_stdlib:
        steps.append(sh("write Setup.local", _setup_local(request, ce)))
    steps.append(Step(name="configure", argv=("./configure", *configure_args(request, ce, levers))))
    if request.minor.setup_stdlib:
        steps.append(sh("check modules", _check_modules(request, ce)))
    return [
        *steps,
        sh("check optimizations", _check_optimizations(request, levers)),
        *([_use_given_profile()] if given_profile else []),
        Step(name="build", argv=(*training_prefix, "make", *overrides), env=training_env),
        *([_keep_profile()] if request.options.pgo else []),
        *(bolt.cpython_bolt_steps(overrides, training_prefix, training_env) if "bolt" in levers else []),
        Step(name="install", argv=("make", *overrides, "install", f"DESTDIR={ARTIFACT_ROOT}")),
        *ce.platform.cpython_install_steps(f"{ARTIFACT_ROOT}{PREFIX}"),
        # python-build-standalone ships bin/python next to bin/python3, pointing at the same file.
        sh("python symlink", f'cd {ARTIFACT_ROOT}{PREFIX}/bin && ln -s "$(readlink python3)" python'),
        *(
            [_check_dispatch(f"{ARTIFACT_ROOT}{PREFIX}/bin/python3", _dispatch_jump(ce))]
            if "tail-dup" in levers
            else []
        ),
        sh(
            "collect build facts",
            f"{ARTIFACT_ROOT}{PREFIX}/bin/python3 -E -s {FILES}/collect_build_info.py "
            f"{SRC} {ARTIFACT_ROOT}{PREFIX} {DEPS} {ARTIFACT_ROOT}",
        ),
    ]
