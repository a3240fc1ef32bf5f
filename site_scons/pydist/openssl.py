"""Recipes of OpenSSL 3.5 with its FIPS provider, and of a FIPS provider built from its own pristine tree
(``fips_provider=``; which provider ships, and why, is :mod:`pydist.fips_provider`).

Configured ``enable-fips no-shared`` and deliberately **without** ``-fvisibility=hidden``: the provider's only
entry point, ``OSSL_provider_init``, carries no visibility attribute, so that flag would hide it and the
module could never be loaded. Installed with ``install_fips``, which in 3.5 copies ``fips.so`` and the
``fipsmodule.cnf`` that ``util/mk-fipsmodule-cnf.pl`` wrote at build time: a Perl HMAC-SHA256 of the module's
bytes (``module-mac``) and the provider's policy options, without loading or running the module. The module
checks that MAC and runs its self tests each time it is loaded. The artifact holds
``lib/libcrypto.a``, ``lib/libssl.a``, the headers, ``bin/openssl``, ``lib/ossl-modules/fips.so`` and
``ssl/fipsmodule.cnf``. Where the module must be changed before its MAC is taken (signed, on macOS), the
platform adds the steps between build and install.
"""

from __future__ import annotations

from hermetic.action import DEPS, OUT, TMP, Action, Step, cmd, sh
from hermetic.lock import SourcesLock
from hermetic.pins import Pin
from pydist import fips_provider
from pydist.compile_env import CompileEnv
from pydist.libraries import INSTALL_ROOT, LibraryRecipe

# OpenSSL reads the host's configuration and CA certificates from here at run time, like the system's.
OPENSSLDIR = "/etc/ssl"


def _steps(ce: CompileEnv, label: str) -> list[Step]:
    # Flags go on the Configure line so OpenSSL keeps its own optimization and threading flags.
    flags = _without_arch(ce.cflags(label, optimize="-O3").split())
    configure = [
        "perl",
        "./Configure",
        ce.platform.openssl_target,
        "enable-fips",
        "no-shared",
        "no-tests",
        "no-legacy",
        "no-docs",
        f"--prefix={DEPS}",
        "--libdir=lib",
        f"--openssldir={OPENSSLDIR}",
        *flags,
    ]
    make = ce.platform.openssl_make_args()
    module = f"providers/{ce.platform.fips_module}"
    return [
        cmd("configure", *configure),
        cmd("build", "make", *make, "build_sw"),
        *ce.platform.fips_module_steps(module),
        cmd("install", "make", *make, "install_sw", "install_fips", f"DESTDIR={OUT}"),
        sh(
            "collect fipsmodule.cnf",
            # (BSD install, on a Mac, has no -D: the directory is made first.)
            f"mkdir -p {INSTALL_ROOT}/ssl && install -m 0644 {OUT}{OPENSSLDIR}/fipsmodule.cnf {INSTALL_ROOT}/ssl/",
        ),
    ]


def _without_arch(flags: list[str]) -> list[str]:
    """`flags` without ``-arch X``: Configure's target names the architecture (Darwin targets add ``-arch``
    themselves), and Configure would take the bare ``X`` for a second target name."""
    kept: list[str] = []
    skip = False
    for flag in flags:
        if skip:
            skip = False
        elif flag == "-arch":
            skip = True
        else:
            kept.append(flag)
    return kept


def _env(ce: CompileEnv) -> dict[str, str]:
    # CFLAGS would replace OpenSSL's own; the flags are passed to Configure instead.
    return {"CFLAGS": "", "CPPFLAGS": "", "LDFLAGS": ce.ldflags()}


OPENSSL = LibraryRecipe(name="openssl", steps=_steps, extra_env=_env)


# ------------------------------------------------------------- a FIPS provider from its own pristine tree


def provider_env(ce: CompileEnv) -> dict[str, str]:
    """The compiler and binary tools of the target, and nothing else: no CFLAGS, CPPFLAGS or LDFLAGS, so
    Configure uses OpenSSL's own flags for the target, as the Security Policy's build does."""
    return {"CC": ce.cc, "CXX": ce.cxx, **ce.platform.binutils()}


def provider_steps(ce: CompileEnv) -> list[Step]:
    """``./Configure <target> enable-fips``, ``make``, ``make install_fips``; then the two files install_fips
    wrote are collected into the artifact, after proving they are the build's own, byte for byte."""
    staging = f"{TMP}/install_fips"
    return [
        cmd("configure", "./Configure", ce.platform.openssl_target, "enable-fips"),
        cmd("build", "make"),
        cmd("install_fips", "make", "install_fips", f"DESTDIR={staging}"),
        sh(
            "collect",
            # install_fips puts them under its default prefix (MODULESDIR, OPENSSLDIR): exactly one of each.
            f'module=$(find {staging} -name fips.so -path "*/ossl-modules/*")\n'
            f"config=$(find {staging} -name fipsmodule.cnf)\n"
            '[ "$(echo "$module" | wc -w)" = 1 ] && [ "$(echo "$config" | wc -w)" = 1 ]\n'
            'cmp "$module" providers/fips.so && cmp "$config" providers/fipsmodule.cnf\n'
            f"mkdir -p {INSTALL_ROOT}/lib/ossl-modules {INSTALL_ROOT}/ssl\n"
            f'install -m 0755 "$module" {INSTALL_ROOT}/lib/ossl-modules/fips.so\n'
            f'install -m 0644 "$config" {INSTALL_ROOT}/ssl/fipsmodule.cnf',
        ),
    ]


def provider_action(pin: Pin, ce: CompileEnv, lock: SourcesLock) -> Action:
    """The action that builds the FIPS provider from its pinned, unpatched source tree."""
    return Action(
        name=pin.id,
        rule=fips_provider.TARGET,
        rule_version=fips_provider.PROVIDER_RULE_VERSION,
        target=ce.platform.triple,
        source=pin,
        patches=(),
        deps=(),
        toolchain=ce.platform.toolchain,
        env=provider_env(ce),
        steps=tuple(provider_steps(ce)),
        output=INSTALL_ROOT,
        source_date_epoch=lock.source_date_epoch,
    )
