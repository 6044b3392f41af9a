"""hwr: online handwriting recognition (digital ink in, text out).

    from hwr import Ink, Recognizer

The two names load on first use, so `import hwr` (and `hwr --help`) stays fast.
"""

__version__ = "0.1.0"

_LAZY = {"Recognizer": "recognizer", "Ink": "ink", "Stroke": "ink"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'hwr' has no attribute {name!r}")
