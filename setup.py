"""Build of the optional C kernels; everything else is configured in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler), the install goes on and
postlens uses its pure-torch path, which gives the same figures, more slowly.
"""

import sys

from setuptools import Extension, setup

flags = [] if sys.platform == "win32" else ["-O3", "-std=c99", "-pthread"]
setup(
    ext_modules=[
        Extension(
            "postlens._kernels",
            sources=["postlens/_kernels.c"],
            extra_compile_args=flags,
            extra_link_args=[] if sys.platform == "win32" else ["-pthread"],
            optional=True,
        )
    ]
)
