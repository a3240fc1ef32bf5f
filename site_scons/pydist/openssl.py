"""Recipe of OpenSSL 3.5 with its FIPS provider.

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

from hermetic.action import DEPS, OUT, Step
from pydist.compile_env import CompileEnv
from pydist.libraries import INSTALL_ROOT, LibraryRecipe, cmd, sh

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
