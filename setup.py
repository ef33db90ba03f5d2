"""The compiled parts: capture/_spanwalk.c, span finding for `capture record`'s writer;
replay/_frame.c, the template spool's frames, and replay/_fill.c, rendering a template, for
`replay run`.

All are optional: where they cannot be built (no C compiler or Python headers), the install
goes on and capture/spans.py finds spans, replay/frame.py packs and reads frames,
replay/template.py renders, in Python, with the same answers, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "capture._spanwalk",
            ["capture/_spanwalk.c"],
            depends=["capture/_json_bytes.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit"],
            optional=True,
        ),
        Extension(
            "replay._frame",
            ["replay/_frame.c", "replay/_in_place.c"],
            depends=["replay/_frame.h", "replay/_fill.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit"],
            optional=True,
        ),
        Extension(
            "replay._fill",
            ["replay/_fill.c"],
            depends=["replay/_fill.h"],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit"],
            optional=True,
        ),
    ]
)
