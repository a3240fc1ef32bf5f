"""FIPS checks: the provider module is shipped, exports only its entry point, matches its module-mac, is
identical in every archive of a build, and the shipped configuration really turns FIPS mode on.

Rule ids:
    fips.module          share/ssl/ossl-modules/fips.so (or fips.dylib) is present
    fips.exports         the module exports OSSL_provider_init and nothing else
    fips.module-mac      fipsmodule.cnf's module-mac is HMAC-SHA256 of the module's bytes (FIPS integrity key)
    fips.identical       the module is byte-identical across the archives validated together
    fips.config          openssl-fips.cnf loads the module's section, activates it, and sets fips=yes; the module
                         section comes last, on a line of its own, since FIPS mode replaces it with the installed one
    fips.fipsinstall     the install can run the Security Policy's step: share/ssl/bin/openssl and the standard
                         library's pystandalone_fips.py (``python -m pystandalone_fips install``) are shipped
    fips.installed       no share/ssl/fipsinstall/: ``openssl fipsinstall`` writes it on each machine, never a build
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from pathlib import Path

from elftools.elf.elffile import ELFFile

from pydist.validate import elf as elf_checks
from pydist.validate import macho
from pydist.validate.report import Report

# The HMAC key OpenSSL's FIPS provider uses for its self-integrity check: Configure sets $config{FIPSKEY} to
# sha256("holy hand grenade of antioch") (unless --fips-key= overrides it, which this project never does);
# include/openssl/fipskey.h.in turns it into FIPS_KEY_ELEMENTS, which providers/fips/self_test.c compiles in as
# `fixed_key` to check module-mac on load. Computing the MAC here works for modules of any target, cross-built or
# macOS.
FIPS_INTEGRITY_KEY = bytes.fromhex("f4556650ac31d35461610bac4ed81b1a181b2d8a43ea2854cbae22ca74560813")
MODULE_DIR = "share/ssl/ossl-modules"
MODULE_CONFIG = "share/ssl/fipsmodule.cnf"
SHIPPED_CONFIG = "share/ssl/openssl-fips.cnf"
# The module section of the shipped configuration, which FIPS mode replaces with the one fipsinstall wrote on the
# machine (patches/cpython/*/*-openssl-fips-switch.patch: PY_FIPS_MODULE_SECTION).
MODULE_SECTION = "fips_sect"
FIPSINSTALL_PROGRAM = "share/ssl/bin/openssl"
FIPSINSTALL_MODULE = "pystandalone_fips.py"
FIPSINSTALL_DIR = "share/ssl/fipsinstall"


def parse_openssl_config(text: str) -> tuple[dict[str, dict[str, str]], list[str]]:
    """Sections of an OpenSSL config file (top-level keys under ""), and its .include paths."""
    sections: dict[str, dict[str, str]] = {"": {}}
    includes: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith(".include"):
            includes.append(line.removeprefix(".include").strip().lstrip("=").strip())
            continue
        if line.startswith(".pragma"):
            continue
        header = re.fullmatch(r"\[\s*([^\]]+?)\s*\]", line)
        if header:
            current = header.group(1)
            sections.setdefault(current, {})
            continue
        key, sep, value = line.partition("=")
        if sep:
            sections[current][key.strip()] = value.strip()
    return sections, includes


def module_mac(module: bytes) -> str:
    """The module-mac fipsinstall writes for `module`: HMAC-SHA256 as colon-separated upper-case hex."""
    digest = hmac.new(FIPS_INTEGRITY_KEY, module, hashlib.sha256).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def module_exports(path: Path) -> set[str]:
    """What the module exports, without Mach-O's leading underscore."""
    if macho.is_macho(path):
        return {name.removeprefix("_") for name in macho.exported_symbols(path)}
    with open(path, "rb") as f:
        return elf_checks.exported_symbols(ELFFile(f))


def check_fips(install: Path, prefix: str, report: Report) -> str | None:
    """Run the FIPS rules on an unpacked install tree (members named `prefix` + relative path).

    Returns the module's sha256 (for the cross-archive identity rule), or None when it is missing.
    """
    modules = [
        install / MODULE_DIR / name for name in ("fips.so", "fips.dylib") if (install / MODULE_DIR / name).is_file()
    ]
    if not modules:
        report.add(f"{prefix}{MODULE_DIR}/fips.so", "fips.module", "the FIPS provider module is not shipped")
        return None
    module = modules[0]
    member = f"{prefix}{module.relative_to(install)}"
    exports = module_exports(module)
    if exports != {"OSSL_provider_init"}:
        extra = sorted(exports - {"OSSL_provider_init"})
        missing = "OSSL_provider_init is not exported" if "OSSL_provider_init" not in exports else ""
        detail = "; ".join(
            x
            for x in (
                missing,
                f"also exports {len(extra)} symbols, e.g. {', '.join(extra[:3])}" if extra else "",
            )
            if x
        )
        report.add(member, "fips.exports", detail)
    data = module.read_bytes()
    config_path = install / MODULE_CONFIG
    if not config_path.is_file():
        report.add(f"{prefix}{MODULE_CONFIG}", "fips.module-mac", "fipsmodule.cnf is not shipped")
    else:
        sections, _ = parse_openssl_config(config_path.read_text())
        recorded = sections.get("fips_sect", {}).get("module-mac")
        expected = module_mac(data)
        if recorded != expected:
            report.add(
                member,
                "fips.module-mac",
                f"module-mac in fipsmodule.cnf is {recorded}, the module's HMAC is {expected}",
            )
    _check_shipped_config(install, prefix, report)
    _check_fipsinstall_step(install, prefix, report)
    return hashlib.sha256(data).hexdigest()


def _check_fipsinstall_step(install: Path, prefix: str, report: Report) -> None:
    """What a site runs to install the module on its machine is shipped, and no machine's output is."""
    program = install / FIPSINSTALL_PROGRAM
    if not (program.is_file() and os.access(program, os.X_OK)):
        report.add(
            f"{prefix}{FIPSINSTALL_PROGRAM}",
            "fips.fipsinstall",
            "no executable openssl program, which `python -m pystandalone_fips install` runs (openssl fipsinstall)",
        )
    if not any(install.glob(f"lib/python3*/{FIPSINSTALL_MODULE}")):
        report.add(
            f"{prefix}lib/python3.X/{FIPSINSTALL_MODULE}",
            "fips.fipsinstall",
            "the standard library lacks pystandalone_fips (python -m pystandalone_fips install)",
        )
    if (install / FIPSINSTALL_DIR).exists():
        report.add(
            f"{prefix}{FIPSINSTALL_DIR}",
            "fips.installed",
            "a module configuration from openssl fipsinstall is shipped: it must be written on each machine",
        )


def _module_section_problem(text: str, name: str) -> str | None:
    """Why FIPS mode could not replace section `name` of the shipped configuration `text` with the installed one
    (it keeps what precedes the line ``[name]``), or None."""
    headers = [line for line in text.splitlines() if re.fullmatch(r"\s*\[[^\]]*\]\s*", line)]
    if headers.count(f"[{name}]") != 1:
        return f"[{name}] is not on a line of its own exactly once, so FIPS mode cannot replace it"
    if headers[-1] != f"[{name}]":
        return f"sections follow [{name}]; FIPS mode would drop them when it replaces it with the installed one"
    return None


def _check_shipped_config(install: Path, prefix: str, report: Report) -> None:
    member = f"{prefix}{SHIPPED_CONFIG}"
    path = install / SHIPPED_CONFIG
    if not path.is_file():
        report.add(member, "fips.config", "no FIPS configuration is shipped")
        return
    sections, includes = parse_openssl_config(path.read_text())
    module_sections, _ = (
        parse_openssl_config((install / MODULE_CONFIG).read_text()) if (install / MODULE_CONFIG).is_file() else ({}, [])
    )
    problems = []
    init = sections[""].get("openssl_conf")
    if not init or init not in sections:
        problems.append("no openssl_conf section")
    init_section = sections.get(init or "", {})
    providers = sections.get(init_section.get("providers", ""), {})
    fips_section_name = providers.get("fips")
    if not fips_section_name:
        problems.append("the fips provider is not configured")
    else:
        if fips_section_name != MODULE_SECTION:
            problems.append(f"the fips provider's section is {fips_section_name}, not {MODULE_SECTION}")
        elif (problem := _module_section_problem(path.read_text(), MODULE_SECTION)) is not None:
            problems.append(problem)
        included = any(Path(i).name == "fipsmodule.cnf" for i in includes)
        fips_section = module_sections.get(fips_section_name, {}) if included else sections.get(fips_section_name, {})
        if not fips_section:
            problems.append(f"section {fips_section_name} (the module's) is neither included nor present")
        elif fips_section != module_sections.get(fips_section_name):
            problems.append(f"section {fips_section_name} differs from fipsmodule.cnf's")
        elif fips_section.get("activate") != "1":
            problems.append("the fips provider is not activated")
    for name, section_name in providers.items():
        if name in ("base", "default") and sections.get(section_name, {}).get("activate") == "1":
            break
    else:
        problems.append("neither the base nor the default provider is activated (no encoders/decoders)")
    algorithms = sections.get(init_section.get("alg_section", ""), {})
    if "fips=yes" not in algorithms.get("default_properties", "").replace(" ", ""):
        problems.append("default_properties does not set fips=yes")
    for problem in problems:
        report.add(member, "fips.config", problem)
