"""Collection settings for the doctests of the package (``--doctest-modules``)."""

import importlib.util

# skdae.onnx needs the optional onnx extra; without it there is nothing of it
# to test (tests/test_onnx.py skips with the reason).
collect_ignore = []
if importlib.util.find_spec("skl2onnx") is None:
    collect_ignore.append("skdae/onnx.py")
