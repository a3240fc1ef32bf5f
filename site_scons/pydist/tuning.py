"""Interpreter-speed levers of the CPython build, by name, so each can be built and measured on its own.

``tuning=`` on the command line names the levers a pgo+lto CPython build gets (``scons -h``): ``default`` is the
combination chosen by measurement (BENCHMARKS.md), ``none`` is the build without any of them, and a
comma-separated list of names is exactly those levers. The levers are part of the CPython action's key (through
the configure arguments, flags and steps they change); the dependency libraries never see them.

A lever that a target or minor cannot have (BOLT off x86_64 Linux, a non-PIE executable on macOS) is left out of
``default`` there and refused when named explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

from hermetic.errors import ConfigError

# name -> what it changes (shown by scons -h).
LEVERS: dict[str, str] = {
    "tail-dup": "clang 19: copy the interpreter's computed-goto dispatch into every opcode (LLVM issue 106846)",
    "o3": "-O3 instead of -O2 (compile and LTO code generation)",
    "full-lto": "full LTO instead of ThinLTO",
    "no-semantic-interposition": "-fno-semantic-interposition (calls inside libpython bind directly)",
    "stack-protector": "-fstack-protector instead of -fstack-protector-strong (CPython only)",
    "no-frame-pointer": "no frame pointers (CPython only)",
    "no-stack-clash": "no -fstack-clash-protection (CPython only; Debian's own build has none)",
    "no-pie": "a non-PIE interpreter executable",
    "hot-text": "ELF: PGO-hot and never-run functions kept in runs of their own (lld -z keep-text-section-prefix)",
    "split-functions": "ELF: never-run blocks of profiled functions moved out of line (-fsplit-machine-functions)",
    "ext-tsp": "clang: basic blocks ordered by LLVM's ext-TSP model from the profile (-enable-ext-tsp-block-placement)",
    "cdsort": "ELF: functions ordered by lld's cache-directed sort of the profile's call graph instead of hfsort",
    "align-jumps": "clang: blocks reached only by a jump (the opcode handlers) aligned to 16 bytes, as gcc does",
    "no-plt": "ELF: calls into shared libraries through the GOT, not a PLT stub (-fno-plt; the links are BIND_NOW)",
    "x86-64-v3": "x86_64: -march=x86-64-v3 for CPython's own code (AVX2, BMI2, FMA: a 2013+ CPU, Haswell or Zen)",
    "pgo-extended": "PGO training with regrtest --pgo-extended instead of --pgo",
    "ir-pgo": "clang's IR-level PGO instrumentation (-fprofile-generate) instead of CPython's front-end one",
    "bolt": "BOLT post-link optimization of the interpreter (x86_64 Linux, pinned llvm-bolt)",
}

# Levers that change the PGO training itself: a build given a profile (pgo_profile=) does not train, so the graph
# refuses these with one.
TRAINING_LEVERS = frozenset({"pgo-extended", "ir-pgo"})

# The chosen release combination (BENCHMARKS.md, per-lever table and fourth run). tail-dup and -O3: 3 % faster
# than the build without levers on 3.11.2. Two hardening swaps: python-build-standalone also uses the plain stack
# protector, Debian's python3.11 has no clash probes. Frame pointers stay (no-frame-pointer measured 0.997, inside
# the noise, and without them `python -X perf` shows no Python frames: CPython's test_perf_profiler fails). The
# interpreter stays PIE (dropping it gives 2 % more) with RELRO, BIND_NOW and _FORTIFY_SOURCE (the validator's
# checks); the libraries keep every flag.
DEFAULT: tuple[str, ...] = ("tail-dup", "o3", "stack-protector", "no-stack-clash")

DEFAULT_WORD = "default"
NONE_WORD = "none"


@dataclass(frozen=True)
class Tuning:
    """The levers one CPython build gets.

    Attributes:
        levers: (frozenset[str]) names from :data:`LEVERS`.
        is_default: (bool) the chosen combination for this target and minor (``tuning=`` left at its default).
    """

    levers: frozenset[str] = frozenset()
    is_default: bool = True

    def __contains__(self, lever: str) -> bool:
        return lever in self.levers

    @property
    def label(self) -> str:
        """``none`` or the levers in :data:`LEVERS` order, joined by ``+`` (for artifact names)."""
        return "+".join(name for name in LEVERS if name in self.levers) or NONE_WORD


NO_TUNING = Tuning(frozenset(), is_default=False)


def parse(text: str) -> tuple[str, ...] | None:
    """The lever names of a ``tuning=`` value (None for ``default``); a ConfigError names an unknown one."""
    words = [word.strip() for word in text.split(",") if word.strip()]
    if words == [DEFAULT_WORD]:
        return None
    if words == [NONE_WORD]:
        return ()
    unknown = [word for word in words if word not in LEVERS]
    if unknown or not words:
        shown = repr(unknown[0]) if unknown else "nothing"
        raise ConfigError(
            f"tuning={text} names {shown}, not a lever",
            hint=f"give {DEFAULT_WORD}, {NONE_WORD}, or a comma-separated list of: {', '.join(LEVERS)}",
        )
    return tuple(dict.fromkeys(words))


# Levers that swap one of the target's hardening flags for others in CPython's compile flags (old -> new ones,
# which come later on the command line and so win).
FLAG_SWAPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "stack-protector": ("-fstack-protector-strong", ("-fstack-protector",)),
    "no-frame-pointer": ("-fno-omit-frame-pointer", ("-fomit-frame-pointer", "-momit-leaf-frame-pointer")),
    "no-stack-clash": ("-fstack-clash-protection", ("-fno-stack-clash-protection",)),
}


@dataclass(frozen=True, kw_only=True)
class BuildFacts:
    """What decides whether a lever can be used for one build.

    Attributes:
        release: (bool) a pgo+lto build (the only ones tuned).
        minor: (tuple[int, int]) the Python minor.
        cflags: (tuple[str, ...]) the target's own compile flags.
        arch: (str) the target's architecture, ``x86_64`` or ``aarch64``.
        elf: (bool) the target's executables are ELF files.
        bolt_tool: (bool) the target pins llvm-bolt for this build host.
        native: (bool) the build host runs the target's programs itself.
        tail_calling: (bool) the interpreter dispatches opcodes by tail calls (3.14+), not computed gotos.
    """

    release: bool
    minor: tuple[int, int]
    cflags: tuple[str, ...]
    arch: str
    elf: bool
    bolt_tool: bool
    native: bool
    tail_calling: bool = False


def unavailable(lever: str, facts: BuildFacts) -> str | None:
    """Why `lever` cannot be used for this build (None: it can)."""
    if lever == "no-pie" and not facts.elf:
        return "macOS executables are always position-independent"
    if lever in ("hot-text", "split-functions", "cdsort", "no-plt") and not facts.elf:
        return "it is an ELF feature of clang and lld"
    if lever == "x86-64-v3" and facts.arch != "x86_64":
        return "it is an x86_64 instruction-set level"
    if lever == "bolt" and not facts.bolt_tool:
        return "the target pins no llvm-bolt for this build host (BOLT is used on x86_64 Linux only)"
    if lever == "bolt" and not facts.native:
        return "the BOLT training run must execute the interpreter natively"
    if lever == "tail-dup" and facts.tail_calling:
        return "the tail-calling interpreter has no computed-goto dispatch to duplicate"
    if lever in FLAG_SWAPS and FLAG_SWAPS[lever][0] not in facts.cflags:
        return f"the target compiles without {FLAG_SWAPS[lever][0]}"
    return None


def resolve(text: str, facts: BuildFacts) -> Tuning:
    """The levers of one build. Only pgo+lto builds are tuned; ``default`` drops what the build cannot have,
    an explicit list that names such a lever is refused."""
    requested = parse(text)
    if not facts.release:
        if requested:
            raise ConfigError(
                f"tuning={text} applies to pgo+lto builds only", hint="use options=pgo+lto, or leave tuning= out"
            )
        return Tuning(frozenset(), is_default=requested is None)
    chosen = frozenset(name for name in DEFAULT if unavailable(name, facts) is None)
    if requested is None:
        return Tuning(chosen)
    for name in requested:
        reason = unavailable(name, facts)
        if reason is not None:
            raise ConfigError(f"tuning={text}: {name} is not available here: {reason}", hint="leave it out")
    # Naming exactly the chosen combination is the default build (one artifact, not two of the same thing).
    return Tuning(frozenset(requested), is_default=frozenset(requested) == chosen)


def help_text() -> str:
    """The ``tuning=`` entry of ``scons -h``."""
    chosen = ",".join(DEFAULT) or NONE_WORD
    levers = "; ".join(f"{name}: {what}" for name, what in LEVERS.items())
    return (
        f"for benchmarking: speed levers of a pgo+lto CPython build, '{DEFAULT_WORD}' (= {chosen}), "
        f"'{NONE_WORD}', or a comma-separated list of: {levers}. "
        "Build variants with `scons cpython tuning=...`; their artifacts are named after the levers"
    )
