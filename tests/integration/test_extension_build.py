"""A user builds C and C++ extensions from source with the host's gcc, and no clang anywhere on PATH, against the
unpacked and moved install_only archive: pip installs them into the install itself and into a venv made from it.

This runs on the host, not in the sandbox: the sandbox blocks every host compiler and hides /usr/include, which is
what a build needs and what a user's machine has (bootstrap installs gcc and g++). The setuptools wheel comes from
the full archive's test package (CPython ships it there for test_cppext), so nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import archive, unpack

pytestmark = pytest.mark.integration

C_MODULE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Which compiler built this module, as its predefined macros say. */
static PyObject *compiler(PyObject *self, PyObject *unused) {
#if defined(__clang__)
    return PyUnicode_FromString("clang");
#elif defined(__GNUC__)
    return PyUnicode_FromFormat("gcc %d", __GNUC__);
#else
    return PyUnicode_FromString("unknown");
#endif
}

static PyMethodDef methods[] = {{"compiler", compiler, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cext(void) { return PyModule_Create(&module); }
"""

CPP_MODULE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <numeric>
#include <string>
#include <vector>

// The total length of a list of str, through the C++ standard library (libstdc++ with gcc).
static PyObject *total(PyObject *self, PyObject *items) {
    std::vector<std::string> words;
    for (Py_ssize_t i = 0; i < PyList_Size(items); i++) {
        const char *text = PyUnicode_AsUTF8(PyList_GetItem(items, i));
        if (text == nullptr) return nullptr;
        words.emplace_back(text);
    }
    auto add = [](size_t sum, const std::string &word) { return sum + word.size(); };
    return PyLong_FromSize_t(std::accumulate(words.begin(), words.end(), size_t{0}, add));
}

static PyObject *compiler(PyObject *self, PyObject *unused) {
#if defined(__clang__)
    return PyUnicode_FromString("clang");
#elif defined(__GNUC__)
    return PyUnicode_FromFormat("g++ %d", __GNUC__);
#else
    return PyUnicode_FromString("unknown");
#endif
}

static PyMethodDef methods[] = {
    {"total", total, METH_O, nullptr}, {"compiler", compiler, METH_NOARGS, nullptr}, {nullptr, nullptr, 0, nullptr}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cppext", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_cppext(void) { return PyModule_Create(&module); }
"""

PYPROJECT = '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
SETUP = (
    "from setuptools import Extension, setup\n"
    "setup(name={name!r}, version='1.0', ext_modules=[Extension({name!r}, [{source!r}]{extra})])\n"
)


def source_package(root: Path, name: str, source: str, text: str, extra: str = "") -> Path:
    """A source tree pip builds with setuptools: one extension module."""
    package = root / name
    package.mkdir(parents=True)
    (package / "pyproject.toml").write_text(PYPROJECT)
    (package / "setup.py").write_text(SETUP.format(name=name, source=source, extra=extra))
    (package / source).write_text(text)
    return package


def path_without_clang(root: Path) -> str:
    """A PATH holding every program of /usr/bin and /bin but clang's (the CI runners have clang in /usr/bin)."""
    shadow = root / "bin"
    shadow.mkdir()
    for directory in (Path("/usr/bin"), Path("/bin")):
        for program in sorted(directory.iterdir()):
            name = program.name
            if "clang" in name or os.path.lexists(shadow / name):
                continue
            (shadow / name).symlink_to(program)
    return str(shadow)


def run(argv: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run `argv`; its output, or a failure showing it."""
    result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{argv} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout + result.stderr


def comment_section(shared_object: Path) -> str:
    """The .comment section of an ELF file: each compiler that produced its objects leaves its name there."""
    return subprocess.run(["readelf", "-p", ".comment", str(shared_object)], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def user_setup(noopt_dist: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """The install_only archive unpacked and moved, the setuptools wheel from the full archive, the sources, and a
    PATH with gcc and no clang."""
    if shutil.which("gcc") is None or shutil.which("g++") is None:
        pytest.fail("gcc and g++ are needed on the host (./scripts/bootstrap installs them)")
    root = tmp_path_factory.mktemp("extensions")
    unpacked = unpack(archive(noopt_dist, "install_only"), root / "unpacked")
    moved = root / "moved" / "elsewhere"
    moved.mkdir(parents=True)
    shutil.move(unpacked / "python", moved / "python")
    full = unpack(archive(noopt_dist, "full"), root / "full")
    [wheel] = full.glob("python/install/lib/python3*/test/wheeldata/setuptools-*.whl")
    wheels = root / "wheels"
    wheels.mkdir()
    shutil.copy(wheel, wheels)
    shutil.rmtree(full)
    c = source_package(root / "src", "cext", "cext.c", C_MODULE)
    cpp = source_package(root / "src", "cppext", "cppext.cpp", CPP_MODULE, ", language='c++'")
    return {"python": moved / "python" / "bin" / "python3", "wheels": wheels, "c": c, "cpp": cpp, "root": root}


def user_env(setup: dict[str, Path | str]) -> dict[str, str]:
    """A user's environment: a PATH without clang, no compiler variables, pip reading no configuration."""
    root = Path(setup["root"])
    path = str(root / "bin") if (root / "bin").is_dir() else path_without_clang(root)
    return {"PATH": path, "HOME": str(root), "LC_ALL": "C.UTF-8", "PIP_CONFIG_FILE": os.devnull}


def test_sysconfig_names_the_host_s_compiler(user_setup: dict[str, Path | str]) -> None:
    env = user_env(user_setup)
    assert shutil.which("clang", path=env["PATH"]) is None and shutil.which("cc", path=env["PATH"])
    code = (
        "import sysconfig as s; v = s.get_config_var\n"
        "print(v('CC'), v('CXX'), v('LDSHARED').split()[0], v('AR'), v('PYSTANDALONE_BUILD_CC'), sep='|')"
    )
    shown = run([str(user_setup["python"]), "-c", code], env, Path(user_setup["root"])).strip()
    assert shown == "cc -pthread|c++|cc|ar|clang -pthread"


@pytest.mark.parametrize("where", ["the install", "a venv"])
def test_pip_builds_c_and_cpp_extensions_with_gcc(
    user_setup: dict[str, Path | str], where: str, tmp_path: Path
) -> None:
    env = user_env(user_setup)
    root = Path(user_setup["root"])
    python = Path(user_setup["python"])
    if where == "a venv":
        venv = root / "venv"
        run([str(python), "-m", "venv", str(venv)], env, root)
        python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-v", "--no-index", "--find-links", str(user_setup["wheels"])]
    # Fresh copies of the sources: setuptools reuses the objects an earlier build left in a source tree's build/.
    sources = [shutil.copytree(Path(user_setup[name]), tmp_path / name) for name in ("c", "cpp")]
    log = run([*pip, *map(str, sources)], env, root)
    # setuptools ran the host's compiler under sysconfig's names.
    assert any(line.lstrip().startswith("cc -pthread") for line in log.splitlines()), log[-3000:]
    assert any(line.lstrip().startswith("c++ ") for line in log.splitlines()), log[-3000:]
    code = "import cext, cppext; print(cext.compiler(), cppext.compiler(), cppext.total(['ab', 'cde']), sep='|')"
    compilers = run([str(python), "-c", code], env, root).strip().split("|")
    assert compilers[0].startswith("gcc ") and compilers[1].startswith("g++ ") and compilers[2] == "5", compilers
    installed = run([str(python), "-c", "import cext, cppext; print(cext.__file__, cppext.__file__)"], env, root)
    for shared_object in installed.split():
        assert "GCC:" in comment_section(Path(shared_object)), shared_object
        assert Path(shared_object).is_relative_to(root), "installed outside the moved install or the venv"
