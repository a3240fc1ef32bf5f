"""Pieces of the distribution rule: names, FIPS config, relocation fixes, PYTHON.json validation."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hermetic.pins import Pin
from pydist import distribution
from pydist.distribution import DistNames
from pydist.fips_provider import FipsProvider
from pydist.matrix import BuildRequest
from pydist.options import BuildOptions

PIN = Pin(name="cpython", version="3.13.15", filename="Python-3.13.15.tar.xz", size=1, sha256="0" * 64, urls=("x",))


def request(options: str) -> BuildRequest:
    return BuildRequest(target="x86_64-unknown-linux-gnu", python=PIN, options=BuildOptions.parse(options))


@pytest.mark.parametrize(
    ("options", "full", "install_only"),
    [
        (
            "pgo+lto",
            "cpython-3.13.15-x86_64-unknown-linux-gnu-pgo+lto-20261121T1200.tar.zst",
            "cpython-3.13.15-x86_64-unknown-linux-gnu-install_only-20261121T1200.tar.gz",
        ),
        (
            "freethreaded+pgo+lto",
            "cpython-3.13.15-x86_64-unknown-linux-gnu-freethreaded+pgo+lto-20261121T1200.tar.zst",
            "cpython-3.13.15-x86_64-unknown-linux-gnu-freethreaded-install_only-20261121T1200.tar.gz",
        ),
        (
            "noopt",
            "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-20261121T1200.tar.zst",
            "cpython-3.13.15-x86_64-unknown-linux-gnu-noopt-install_only-20261121T1200.tar.gz",
        ),
    ],
)
def test_archive_names(options: str, full: str, install_only: str) -> None:
    names = DistNames(request=request(options), tag="20261121T1200")
    assert names.full == full
    assert names.install_only == install_only
    assert names.install_only_stripped == install_only.replace("install_only", "install_only_stripped")


def test_fips_config_activates_the_provider_and_embeds_the_module_section() -> None:
    module = "[fips_sect]\nactivate = 1\nmodule-mac = AB:CD\n"
    text = distribution.fips_config(module)
    assert text.endswith(module)
    assert "openssl_conf = openssl_init" in text
    assert "fips = fips_sect" in text and "default_properties = fips=yes" in text
    # The comment names every switch, and the config is still usable through OPENSSL_CONF.
    for switch in ("PYSTANDALONE_FIPS=1", "-X pystandalone_fips", "share/ssl/fips-mode", "OPENSSL_CONF="):
        assert switch in text
    assert all(line.startswith("#") for line in text.split("config_diagnostics")[0].splitlines())


def test_shebangs_become_relocatable_trampolines(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pip3").write_text("#!/install/bin/python3.13\nimport sys\nprint('pip', sys.argv)\n")
    # 3.11's ensurepip writes the unversioned name.
    (bin_dir / "pip").write_text("#!/install/bin/python\nimport sys\n")
    (bin_dir / "python3-config").write_text("#!/bin/sh\necho config\n")
    rewritten = distribution.relocatable_shebangs(tmp_path)
    assert rewritten == ["bin/pip", "bin/pip3"]
    text = (bin_dir / "pip3").read_text()
    assert text.startswith("#!/bin/sh\n'''exec' ")
    assert '/python3.13"' in text and "/install" not in text
    assert '/python" "$0"' in (bin_dir / "pip").read_text()
    assert (bin_dir / "python3-config").read_text() == "#!/bin/sh\necho config\n"


def test_trampoline_runs_the_interpreter_next_to_the_script(tmp_path: Path) -> None:
    bin_dir = tmp_path / "some where" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python3.13").symlink_to(Path(sys.executable).resolve())
    (bin_dir / "hello").write_text("#!/install/bin/python3.13\nimport sys\nprint('hello from', sys.argv[1:])\n")
    (bin_dir / "hello").chmod(0o755)
    distribution.relocatable_shebangs(tmp_path / "some where")
    link = tmp_path / "elsewhere-hello"
    link.symlink_to(bin_dir / "hello")
    out = subprocess.run([str(link), "a b"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "hello from ['a b']"


def test_config_dir_python_config_finds_the_interpreter_in_bin(tmp_path: Path) -> None:
    root = tmp_path / "moved"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python3.13").symlink_to(Path(sys.executable).resolve())
    config = root / "lib" / "python3.13" / "config-3.13-x86_64-linux-gnu" / "python-config.py"
    config.parent.mkdir(parents=True)
    config.write_text("#!/install/bin/python3.13\nimport sys\nprint('config', sys.argv[1:])\n")
    config.chmod(0o755)
    assert distribution.relocatable_shebangs(root) == ["lib/python3.13/config-3.13-x86_64-linux-gnu/python-config.py"]
    assert '/../../../bin/python3.13" "$0"' in config.read_text()
    out = subprocess.run([str(config), "--prefix"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "config ['--prefix']"


def test_build_flags_are_scrubbed() -> None:
    recorded = (
        "CC='x86_64-linux-gnu-clang' "
        "LDFLAGS='-fuse-ld=lld -Wl,-z,relro -L/build/deps/lib -Wl,--exclude-libs,ALL' "
        "CFLAGS='-O2 -ffile-prefix-map=/build/src=/usr/src/cpython-3.13.15 -I/build/deps/include/ncursesw'"
    )
    assert distribution.scrub_build_flags(recorded) == "CC='clang' LDFLAGS=' -Wl,-z,relro' CFLAGS='-O2'"
    launcher = (
        "CC='x86_64-linux-gnu-clang -pthread' CXX='x86_64-linux-gnu-clang++' LDSHARED='x86_64-linux-gnu-clang -shared'"
    )
    assert distribution.scrub_build_flags(launcher) == "CC='clang -pthread' CXX='clang++' LDSHARED='clang -shared'"
    merger = "LLVM_PROF_MERGER = '/toolchain/bin/llvm-profdata merge -output=code.profclangd *.profclangr'"
    assert distribution.scrub_build_flags(merger) == merger.replace("/toolchain/bin/", "")
    profile = "PY_CORE_CFLAGS='-O3 -fprofile-instr-use=/build/src/code.profclangd -I./Include/internal'"
    assert distribution.scrub_build_flags(profile) == "PY_CORE_CFLAGS='-O3 -I./Include/internal'"
    unexpanded = "PGO_PROF_USE_FLAG='-fprofile-instr-use=\"$(shell pwd)/code.profclangd\"'"
    assert distribution.scrub_build_flags(unexpanded) == unexpanded


def test_pkgconfig_prefix_is_relative(tmp_path: Path) -> None:
    pc = tmp_path / "lib" / "pkgconfig" / "python-3.13.pc"
    pc.parent.mkdir(parents=True)
    pc.write_text("prefix=/install\nexec_prefix=${prefix}\nlibdir=${exec_prefix}/lib\n")
    distribution.relocatable_pkgconfig(tmp_path)
    assert pc.read_text().splitlines()[0] == "prefix=${pcfiledir}/../.."


PROVIDER_PIN = Pin(
    name="openssl-fips", version="3.0.20", filename="openssl-3.0.20.tar.gz", size=1, sha256="1" * 64, urls=("x",)
)


def valid_python_json(provider: FipsProvider | None = None) -> dict[str, Any]:
    """A minimal document with every required key (shaped like a real one)."""
    facts = {
        "python_tag": "cp313",
        "python_abi_tag": "",
        "python_platform_tag": "linux-x86_64",
        "python_implementation_cache_tag": "cpython-313",
        "python_implementation_hex_version": 51187696,
        "python_implementation_name": "cpython",
        "python_implementation_version": ["3", "13", "15", "final", "0"],
        "python_version": "3.13.15",
        "python_major_minor_version": "3.13",
        "python_paths": {"stdlib": "install/lib/python3.13"},
        "python_paths_abstract": {"stdlib": "{installed_base}/lib/python{py_version_short}"},
        "python_config_vars": {"SOABI": "cpython-313-x86_64-linux-gnu"},
        "python_exe": "install/bin/python3.13",
        "python_stdlib_platform_config": "install/lib/python3.13/config-3.13-x86_64-linux-gnu",
        "python_suffixes": {
            "bytecode": [".pyc"],
            "debug_bytecode": [".pyc"],
            "extension": [".cpython-313-x86_64-linux-gnu.so", ".abi3.so", ".so"],
            "optimized_bytecode": [".pyc"],
            "source": [".py"],
        },
        "python_bytecode_magic_number": "f30d0d0a",
        "build_info": {
            "core": {"objs": ["build/Python/ceval.o"], "links": [{"name": "m", "system": True}]},
            "extensions": {
                "_ssl": [
                    {
                        "in_core": True,
                        "init_fn": "PyInit__ssl",
                        "links": [{"name": "ssl", "path_static": "build/lib/libssl.a"}],
                        "objs": ["build/Modules/_ssl.o"],
                        "required": False,
                        "variant": "default",
                    }
                ]
            },
            "inittab_object": "build/Modules/config.o",
            "inittab_source": "build/Modules/config.c",
            "inittab_cflags": ["-std=c99"],
        },
    }
    features = ["glibc-dynamic", "glibc-max-symbol-version:2.30"]
    return distribution.python_json(
        facts,
        request("pgo+lto"),
        crt_features=features,
        object_format="llvm-bitcode:19.1.7",
        fips_provider=(provider or FipsProvider(version="3.5.7", libcrypto="3.5.7")).record(),
    )


def test_a_complete_python_json_validates() -> None:
    data = valid_python_json()
    assert distribution.validate_python_json(data) == []
    assert data["version"] == "8" and data["crt_features"] == [
        "glibc-dynamic",
        "glibc-max-symbol-version:2.30",
    ]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d.pop("python_exe"), "'python_exe' is a required property"),
        (lambda d: d.update(version=8), "version"),
        (
            lambda d: d.update(python_implementation_hex_version="51187696"),
            "python_implementation_hex_version",
        ),
        (lambda d: d.update(python_exe="/install/bin/python3"), "python_exe"),
        (lambda d: d.update(surprise=True), "Additional properties are not allowed"),
        (lambda d: d["build_info"]["extensions"]["_ssl"][0].pop("in_core"), "build_info/extensions/_ssl/0"),
        (lambda d: d["build_info"]["core"]["links"].append({"name": "x"}), "build_info/core/links/1"),
    ],
)
def test_a_broken_python_json_fails_validation(mutate: Any, expected: str) -> None:
    data = copy.deepcopy(valid_python_json())
    mutate(data)
    problems = distribution.validate_python_json(data)
    assert problems, "the broken document validated"
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("PYTHON.json: ") and "\n" not in p for p in problems)


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        (
            FipsProvider(version="3.5.7", libcrypto="3.5.7"),
            {"source_tree": "libcrypto", "validated": False, "certificate": None, "certificate_status": None},
        ),
        (
            FipsProvider(version="3.0.20", libcrypto="3.5.7", pin=PROVIDER_PIN),
            {"source_tree": "own", "validated": False, "certificate": None, "certificate_status": None},
        ),
        (
            FipsProvider(version="3.1.2", libcrypto="3.5.7", pin=PROVIDER_PIN),
            {"source_tree": "own", "validated": True, "certificate": "4985", "certificate_status": "active"},
        ),
        (
            FipsProvider(version="3.0.9", libcrypto="3.5.7", pin=PROVIDER_PIN),
            {"source_tree": "own", "validated": False, "certificate": "4811", "certificate_status": "historical"},
        ),
    ],
)
def test_python_json_says_which_provider_ships_and_whether_its_version_is_validated(
    provider: FipsProvider, expected: dict[str, Any]
) -> None:
    data = valid_python_json(provider)
    assert distribution.validate_python_json(data) == []
    recorded = data["fips_provider"]
    assert recorded["version"] == provider.version and recorded["libcrypto_version"] == "3.5.7"
    assert {key: recorded[key] for key in expected} == expected


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.update(validated=True), "fips_provider"),  # no certificate: not validated
        (lambda p: p.update(certificate="4811", certificate_status="historical", validated=True), "fips_provider"),
        (lambda p: p.update(source_tree="elsewhere"), "fips_provider/source_tree"),
        (lambda p: p.pop("validated"), "'validated' is a required property"),
    ],
)
def test_a_fips_provider_record_that_claims_too_much_fails_validation(mutate: Any, expected: str) -> None:
    data = valid_python_json()
    mutate(data["fips_provider"])
    problems = distribution.validate_python_json(data)
    assert any(expected in p for p in problems), problems


def test_the_shipped_provider_files_come_from_the_provider_artifact(tmp_path: Path) -> None:
    provider = tmp_path / "provider"
    (provider / "lib" / "ossl-modules").mkdir(parents=True)
    (provider / "ssl").mkdir()
    module = b"\x7fELF the provider's own module"
    (provider / "lib" / "ossl-modules" / "fips.so").write_bytes(module)
    module_cnf = "[fips_sect]\nactivate = 1\nconditional-errors = 1\nsecurity-checks = 1\nmodule-mac = AB\n"
    (provider / "ssl" / "fipsmodule.cnf").write_text(module_cnf)
    install = tmp_path / "install"
    distribution.install_fips_files(install, provider)
    ssl_dir = install / "share" / "ssl"
    assert (ssl_dir / "ossl-modules" / "fips.so").read_bytes() == module
    assert (ssl_dir / "ossl-modules" / "fips.so").stat().st_mode & 0o777 == 0o755
    assert (ssl_dir / "fipsmodule.cnf").read_text() == module_cnf  # as its own install_fips wrote it
    assert (ssl_dir / "openssl-fips.cnf").read_text() == distribution.fips_config(module_cnf)


def test_the_module_section_is_last_in_the_shipped_configuration() -> None:
    # FIPS mode keeps what precedes the line "[fips_sect]" and puts the installed module section after it.
    module_cnf = "[fips_sect]\nactivate = 1\nmodule-mac = AB\n"
    text = distribution.fips_config(module_cnf)
    headers = [line for line in text.splitlines() if line.startswith("[")]
    assert headers[-1] == "[fips_sect]" and headers.count("[fips_sect]") == 1
    assert text.endswith(module_cnf)


def test_the_fipsinstall_step_ships_under_share_ssl_and_in_the_standard_library(tmp_path: Path) -> None:
    program = tmp_path / "openssl"
    program.write_bytes(b"\x7fELF OpenSSL's openssl program")
    install, stdlib = tmp_path / "install", tmp_path / "install" / "lib" / "python3.13"
    stdlib.mkdir(parents=True)
    distribution.install_fipsinstall_step(install, stdlib, program)
    shipped = install / distribution.FIPSINSTALL_PROGRAM
    assert shipped.read_bytes() == program.read_bytes()
    assert shipped.stat().st_mode & 0o777 == 0o755
    assert not (install / "bin" / "openssl").exists()  # never on PATH in place of the host's openssl
    module = stdlib / distribution.FIPSINSTALL_MODULE
    assert module.read_text() == (distribution.SHIPPED / distribution.FIPSINSTALL_MODULE).read_text()
    assert module.stat().st_mode & 0o777 == 0o644


def test_schema_is_valid_json_schema() -> None:
    import jsonschema

    schema = json.loads(distribution.PYTHON_JSON_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_build_paths_are_found_in_text_files(tmp_path: Path) -> None:
    from pydist import buildpaths

    lib = tmp_path / "lib" / "python3.13"
    (lib / "config-3.13-x86_64-linux-gnu").mkdir(parents=True)
    (lib / "ok.py").write_text("prefix = '/install'  # auto-generated by Tools/build/generate.py\n")
    (lib / "bad.py").write_text("CFLAGS = '-I/build/deps/include'\n")
    (lib / "binary.dat").write_bytes(b"\0\0/build/deps")
    (lib / "_sysconfigdata__linux_x86_64-linux-gnu.py").write_text(
        "build_time_vars = {'CONFIG_ARGS': \"'--with-openssl=/build/deps'\",\n"
        "                   'LDFLAGS': '-L/build/deps/lib'}\n"
    )
    (lib / "config-3.13-x86_64-linux-gnu" / "Makefile").write_text(
        "abs_srcdir=\t/build/src\nCC= clang\nPYTHON_FOR_BUILD=_PYTHON_PROJECT_BASE=/build/src /install/bin/python3\n"
    )
    found = {(f.path, f.where, f.informational) for f in buildpaths.find(tmp_path)}
    assert found == {
        ("lib/python3.13/bad.py", "line 1", False),
        ("lib/python3.13/_sysconfigdata__linux_x86_64-linux-gnu.py", "variable CONFIG_ARGS", True),
        ("lib/python3.13/_sysconfigdata__linux_x86_64-linux-gnu.py", "variable LDFLAGS", False),
        ("lib/python3.13/config-3.13-x86_64-linux-gnu/Makefile", "variable abs_srcdir", True),
        # A cross build's record of how it ran the build Python.
        ("lib/python3.13/config-3.13-x86_64-linux-gnu/Makefile", "variable PYTHON_FOR_BUILD", True),
    }
    assert [str(f) for f in buildpaths.violations(tmp_path)] == [
        "lib/python3.13/_sysconfigdata__linux_x86_64-linux-gnu.py: variable LDFLAGS mentions a build path",
        "lib/python3.13/bad.py: line 1 mentions a build path",
    ]


def test_a_free_threaded_interpreter_alias_ships_as_a_symlink(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3.13t").write_bytes(b"\x7fELF interpreter")
    (bindir / "python3.13").write_bytes(b"\x7fELF interpreter")  # the packed copy of make install's hard link
    (bindir / "python3.13t-config").write_text("#!/bin/sh\n")
    (bindir / "python3").symlink_to("python3.13")
    assert distribution.link_interpreter_aliases(tmp_path) == ["python3.13"]
    assert os.readlink(bindir / "python3.13") == "python3.13t"
    assert (bindir / "python3").read_bytes() == b"\x7fELF interpreter"
    assert distribution.link_interpreter_aliases(tmp_path) == []  # already a link


def test_a_different_file_under_the_alias_name_is_kept(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3.13t").write_bytes(b"free-threaded")
    (bindir / "python3.13").write_bytes(b"another interpreter")
    assert distribution.link_interpreter_aliases(tmp_path) == []
    assert not (bindir / "python3.13").is_symlink()


LINUX_TOOLS = {"clang": "cc", "clang++": "c++", "llvm-ar": "ar"}


@pytest.mark.parametrize(
    ("name", "value", "host"),
    [
        ("CC", "clang -pthread", "cc -pthread"),
        ("CXX", "clang++", "c++"),
        ("LDSHARED", "clang -pthread -shared -Wl,-z,now", "cc -pthread -shared -Wl,-z,now"),
        ("AR", "llvm-ar", "ar"),
        ("CFLAGS", "-O2 -fdebug-default-version=4 -fno-omit-frame-pointer", "-O2 -fno-omit-frame-pointer"),
        ("LDFLAGS", " -Wl,-mllvm,-x=1 -Wl,-z,relro", " -Wl,-z,relro"),
        ("OPT", "-mllvm -tail-dup-size=4 -O3", " -O3"),
        ("CONFIG_ARGS", "'CC=clang' 'CPP=clang -E'", "'CC=clang' 'CPP=clang -E'"),
        ("LLVM_PROF_MERGER", "llvm-profdata merge", "llvm-profdata merge"),
        ("MAINCC", "$(CC)", "$(CC)"),
        ("LIBS", "-lclang", "-lclang"),
    ],
)
def test_sysconfig_names_the_host_s_compiler_and_flags_gcc_takes(name: str, value: str, host: str) -> None:
    assert distribution.host_value(name, value, LINUX_TOOLS) == host


def test_the_build_s_values_are_kept_beside_the_host_s() -> None:
    config = {"CC": "clang -pthread", "CFLAGS": "-O2", "Py_GIL_DISABLED": 0, "AR": "llvm-ar"}
    assert distribution.host_config_vars(config, LINUX_TOOLS) == {
        "CC": "cc -pthread",
        "PYSTANDALONE_BUILD_CC": "clang -pthread",
        "CFLAGS": "-O2",
        "Py_GIL_DISABLED": 0,
        "AR": "ar",
        "PYSTANDALONE_BUILD_AR": "llvm-ar",
    }
    assert distribution.host_config_vars(config, {}) == config


def test_the_shipped_sysconfigdata_names_the_host_s_compiler_and_follows_the_install(tmp_path: Path) -> None:
    text = (
        "# system configuration generated and used by the sysconfig module\n"
        "build_time_vars = {'CC': 'clang -pthread',\n 'LDCXXSHARED': 'clang++ -shared', 'SIZEOF_INT': 4,\n"
        " 'INCLUDEPY': '/install/include/python3.13', 'prefix': '/install',\n"
        " 'DESTDIRS': '/install /install/lib', 'INSTALL': '/usr/bin/install -c', 'WASM_ASSETS_DIR': './install',\n"
        " 'CONFIG_ARGS': \"'--prefix=/install' 'CC=clang'\"}\n"
    )
    module = tmp_path / "elsewhere" / "lib" / "python3.13" / "_sysconfigdata__linux_x86_64-linux-gnu.py"
    module.parent.mkdir(parents=True)
    module.write_text(distribution.shipped_sysconfigdata(text, LINUX_TOOLS))
    namespace: dict[str, Any] = {"__file__": str(module)}
    exec(module.read_text(), namespace)
    prefix = str(tmp_path / "elsewhere")
    assert namespace["build_time_vars"] == {
        "CC": "cc -pthread",
        "LDCXXSHARED": "c++ -shared",
        "PYSTANDALONE_BUILD_CC": "clang -pthread",
        "PYSTANDALONE_BUILD_LDCXXSHARED": "clang++ -shared",
        "SIZEOF_INT": 4,
        "INCLUDEPY": f"{prefix}/include/python3.13",
        "prefix": prefix,
        "DESTDIRS": f"{prefix} {prefix}/lib",
        "INSTALL": "/usr/bin/install -c",
        "WASM_ASSETS_DIR": "./install",
        "CONFIG_ARGS": "'--prefix=/install' 'CC=clang'",  # the record of how it was configured stays
    }
    assert set(namespace) == {"__file__", "__builtins__", "build_time_vars"}


def test_the_config_makefile_names_the_host_s_compiler() -> None:
    text = "# comment\nCC=\t\tclang -pthread\nCXX=\t\tclang++\nLDSHARED=\t$(CC) -shared\nOBJS=\ta.o \\\n\tb.o\n"
    assert distribution.host_makefile(text, LINUX_TOOLS) == (
        "# comment\nCC=\t\tcc -pthread\nPYSTANDALONE_BUILD_CC=\t\tclang -pthread\n"
        "CXX=\t\tc++\nPYSTANDALONE_BUILD_CXX=\t\tclang++\nLDSHARED=\t$(CC) -shared\nOBJS=\ta.o \\\n\tb.o\n"
    )


@pytest.mark.parametrize("flag", ["-fdebug-default-version=4", "-mllvm -tail-dup-size=4", "--rtlib=compiler-rt"])
def test_the_flags_dropped_are_ones_gcc_refuses(tmp_path: Path, flag: str) -> None:
    """What CLANG_ONLY_FLAGS drops must be clang-only: the host's gcc stops on each (bootstrap installs gcc)."""
    source = tmp_path / "a.c"
    source.write_text("int f(void) { return 0; }\n")
    result = subprocess.run(["gcc", *flag.split(), "-c", str(source), "-o", str(tmp_path / "a.o")], capture_output=True)
    assert result.returncode != 0, f"gcc accepts {flag}"
    assert distribution.host_value("CFLAGS", f"-O2 {flag} -g", LINUX_TOOLS) == "-O2 -g"
