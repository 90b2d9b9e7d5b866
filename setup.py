"""Build hooks that pyproject.toml cannot express: the Cython mixer (and its PCM measures) and the stubs.

Set PARLEY_NATIVE=1 to build the mixer with -march=native (faster, but the
result only runs on CPUs like the build machine; never for distributed wheels).
"""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


class BuildPyWithStubs(build_py):
    """Generate the parley.v1 gRPC stubs before collecting Python modules."""

    def run(self) -> None:
        runpy.run_path(str(ROOT / "proto" / "generate.py"), run_name="parley_generate")["generate"]()
        super().run()


compile_args = ["-O3"]
if os.environ.get("PARLEY_NATIVE") == "1":
    compile_args.append("-march=native")

extensions = [
    Extension(
        "parley.audio._mixer",
        ["mixer/_mixer.pyx"],
        include_dirs=[numpy.get_include()],
        extra_compile_args=compile_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    ),
    Extension("parley.audio._pcm", ["mixer/_pcm.pyx"], extra_compile_args=compile_args),
]

setup(
    ext_modules=cythonize(extensions, language_level=3, compiler_directives={"boundscheck": False, "wraparound": False}),
    cmdclass={"build_py": BuildPyWithStubs},
)
