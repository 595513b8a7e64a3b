"""Build script of the libwebsock2 Python binding.

Builds the extension ``libwebsock2._websock`` from the SWIG interface
``bindings/python/websock.i`` and the C sources of the core (so the wheel
needs no shared libwebsock2 at run time), linked against libevent and
OpenSSL found with pkg-config. The sources, warnings and defines come from
``core/sources.txt`` and the version from ``project()`` in CMakeLists.txt:
the same as the CMake build.

Offline (no package index): ``pip install --no-build-isolation .``
"""
import re
import glob
import os
import shlex
import hashlib
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext as _build_ext
from setuptools.command.build_py import build_py as _build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# Build products go outside the source tree (pip runs setup.py in place and
# would otherwise leave build/ and *.egg-info behind). Override with
# LIBWEBSOCK2_BUILD_DIR.
BUILD_DIR = os.environ.get("LIBWEBSOCK2_BUILD_DIR") or os.path.join(
    tempfile.gettempdir(),
    "libwebsock2-build-%d-%s" % (os.getuid(), hashlib.sha1(HERE.encode()).hexdigest()[:10]))
os.makedirs(BUILD_DIR, exist_ok=True)
PKG_MODULES = ["libevent_core", "libevent_pthreads", "libevent_openssl", "openssl", "zlib",
               "hiredis"]


def _rel(path):
    return os.path.relpath(path, HERE).replace(os.sep, "/")


def _pkg_config(*args):
    try:
        out = subprocess.check_output(["pkg-config", *args, *PKG_MODULES], text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.exit("setup.py: pkg-config failed for %s (%s); install libevent-dev, "
                 "libssl-dev, zlib1g-dev, libhiredis-dev and pkg-config"
                 % (" ".join(PKG_MODULES), exc))
    return shlex.split(out)


def _flags():
    include_dirs, library_dirs, libraries, extra_compile, extra_link = [], [], [], [], []
    for flag in _pkg_config("--cflags"):
        (include_dirs.append(flag[2:]) if flag.startswith("-I") else extra_compile.append(flag))
    for flag in _pkg_config("--libs"):
        if flag.startswith("-L"):
            library_dirs.append(flag[2:])
        elif flag.startswith("-l"):
            libraries.append(flag[2:])
        else:
            extra_link.append(flag)
    return include_dirs, library_dirs, libraries, extra_compile, extra_link


def _core_lists():
    """The "layer: items" lines of core/sources.txt, as a dict of lists."""
    lists = {}
    with open(os.path.join(HERE, "core", "sources.txt")) as f:
        for line in f:
            m = re.match(r"^([a-z]+):(.*)$", line)
            if m:
                lists[m.group(1)] = m.group(2).split()
    return lists


def _version():
    """The version in project() of CMakeLists.txt."""
    with open(os.path.join(HERE, "CMakeLists.txt")) as f:
        m = re.search(r"project\(\s*libwebsock2\s+VERSION\s+(\d+)\.(\d+)\.(\d+)", f.read())
    if not m:
        sys.exit("setup.py: no project(libwebsock2 VERSION x.y.z) in CMakeLists.txt")
    return m.groups()


def _generated_include_dir(version):
    """Writes include/websock/version.h from its template, as CMake does."""
    out_dir = os.path.join(BUILD_DIR, "include")
    os.makedirs(os.path.join(out_dir, "websock"), exist_ok=True)
    with open(os.path.join(HERE, "include", "websock", "version.h.in")) as f:
        text = f.read()
    for key, value in (("PROJECT_VERSION_MAJOR", version[0]), ("PROJECT_VERSION_MINOR", version[1]),
                       ("PROJECT_VERSION_PATCH", version[2]), ("PROJECT_VERSION", ".".join(version))):
        text = text.replace("@%s@" % key, value)
    path = os.path.join(out_dir, "websock", "version.h")
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)
    return out_dir


LISTS = _core_lists()
LAYERS = ["util", "proto", "sched", "net", "cluster", "api"]
core_sources = ["core/" + src for layer in LAYERS for src in LISTS[layer]]
VERSION = _version()
gen_include = _generated_include_dir(VERSION)
inc, libdirs, libs, cflags, ldflags = _flags()

# The core is built as a static library with its own warnings (those of
# the CMake build), then linked into the extension.
# Every header of the library: a change to one rebuilds what includes it
# (setuptools compares timestamps only of what it is told about).
headers = sorted(glob.glob(os.path.join("include", "websock", "*.h")) +
                 glob.glob(os.path.join("core", "*", "*.h")))

core_lib = ("websock2core", {
    "sources": core_sources,
    "obj_deps": {"": headers},
    "include_dirs": ["include", gen_include, "core", *inc],
    "macros": [(d, None) for d in LISTS["defines"]],
    "cflags": ["-std=c11", "-fPIC", "-fvisibility=hidden", *LISTS["warnings"], *cflags],
})

ext = Extension(
    "libwebsock2._websock",
    sources=["bindings/python/websock.i"],
    # The wrapper is remade when the API or the core (the static library
    # linked in) changes, not only when websock.i does.
    depends=headers + core_sources + glob.glob("bindings/python/*.i") +
    ["bindings/event_record.i"],
    include_dirs=["include", gen_include, "core", *inc],
    library_dirs=libdirs,
    libraries=["websock2core", *libs, "pthread"],
    swig_opts=["-threads", "-Iinclude", "-I" + gen_include],
    # SWIG marks PyInit__websock visible only with this macro (-fvisibility=hidden).
    define_macros=[("GCC_HASCLASSVISIBILITY", "1"), *((d, None) for d in LISTS["defines"])],
    # SWIG's generated wrapper does not meet the core's warnings.
    extra_compile_args=["-std=c11", "-fvisibility=hidden", *cflags],
    extra_link_args=ldflags,
)


class build_ext(_build_ext):
    """Run SWIG ourselves so nothing is generated inside the source tree:
    the C wrapper goes to build_temp and the shadow module _websock.py
    straight into the package directory under build_lib."""

    def swig_sources(self, sources, extension):
        out = []
        for src in sources:
            if not src.endswith(".i"):
                out.append(src)
                continue
            pkg_dir = os.path.join(self.build_lib, *extension.name.split(".")[:-1])
            if self.inplace:
                pkg_dir = os.path.join(HERE, "bindings", "python", "libwebsock2")
            os.makedirs(pkg_dir, exist_ok=True)
            os.makedirs(self.build_temp, exist_ok=True)
            wrap = os.path.join(self.build_temp, os.path.basename(src)[:-2] + "_wrap.c")
            cmd = [self.swig or "swig", "-python", *extension.swig_opts,
                   "-outdir", pkg_dir, "-o", wrap, src]
            self.announce("swigging %s to %s" % (src, wrap), level=2)
            self.spawn(cmd)
            out.append(wrap)
        return out


class build_py(_build_py):
    """Run build_clib and build_ext first: SWIG writes the shadow module
    _websock.py only while build_ext runs, and build_py must copy it."""

    def run(self):
        self.run_command("build_clib")
        self.run_command("build_ext")
        super().run()


setup(
    version=".".join(VERSION),
    packages=["libwebsock2"],
    package_dir={"libwebsock2": "bindings/python/libwebsock2"},
    package_data={"libwebsock2": ["py.typed", "*.pyi"]},
    libraries=[core_lib],
    ext_modules=[ext],
    options={
        "build": {"build_base": os.path.join(BUILD_DIR, "build")},
        "egg_info": {"egg_base": BUILD_DIR},
    },
    cmdclass={"build_ext": build_ext, "build_py": build_py},
)
