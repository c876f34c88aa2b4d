"""The one compiled part, optional: the run-file reader's hot loops (`_fastwire.c`).

Without a C compiler the build of this extension fails quietly (`optional=True`) and the reader
uses its numpy version of the same loops, which is slower but gives the same arrays. Everything
else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "wandb2numpy.sources.runfolders._fastwire",
            ["wandb2numpy/sources/runfolders/_fastwire.c"],
            optional=True,
        )
    ]
)
