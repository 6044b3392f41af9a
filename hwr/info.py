"""`hwr info`: what a bug report needs, and whether every backend of a model loads.

Each check runs on its own and reports a one-line reason instead of raising, so the report
is complete even when the environment is broken (a torchaudio that refuses the installed
torch, a missing flashlight-text, an unreadable LM): that is when it is needed most.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from . import __version__

PACKAGES = ["torch", "torchaudio", "flashlight-text", "numpy", "h5py", "streamlit"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _reason(e: BaseException) -> str:
    msg = " ".join(str(e).split())  # one line
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _check(fn) -> dict:
    """{"ok": True, **fn()} or {"ok": False, "error": one line}."""
    try:
        return {"ok": True, **(fn() or {})}
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        return {"ok": False, "error": _reason(e)}


def torch_report() -> dict:
    import torch
    cuda = torch.cuda.is_available()
    return {"cuda_build": torch.version.cuda, "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "threads": torch.get_num_threads()}


def torchaudio_report() -> dict:
    from torchaudio.functional import forced_align  # noqa: F401 - what hwr uses it for
    return {}


def model_report(model: str | None) -> tuple[dict, object | None]:
    """The model's path, size on disk and parameters; and the loaded Recognizer (None if it fails)."""
    from .recognizer import Recognizer, default_model_path
    path = Path(model) if model else default_model_path()
    out = {"path": str(path), "size_bytes": path.stat().st_size if path.is_file() else None}
    try:
        rec = Recognizer.load(path, device="cpu")
    except Exception as e:  # noqa: BLE001
        return {**out, "ok": False, "error": _reason(e)}, None
    lm = rec.decoder_config.lm
    out.update(path=rec.info["path"], size_bytes=Path(rec.info["path"]).stat().st_size,
               lm_size_bytes=Path(lm).stat().st_size if lm and Path(lm).is_file() else None)
    return {**out, "ok": True, "parameters": rec.info["parameters"], "characters": len(rec.alphabet),
            "backend": rec.info["backend"], "lstm_int8": rec.model.config.lstm_int8}, rec


def decoder_report(rec) -> dict:
    """Does beam search load (without the LM), and does the model's LM load into it?"""
    from .decode import Decoder

    def loads(cfg) -> dict:
        Decoder(rec.alphabet, cfg)
        return {}

    cfg = rec.decoder_config
    lm = {**_check(lambda: loads(replace(cfg, kind="beam"))), "path": cfg.lm} if cfg.lm else {"ok": None, "path": None}
    return {"config": cfg.kind, "beam": _check(lambda: loads(replace(cfg, kind="beam", lm=None))), "lm": lm}


def report(model: str | None = None) -> dict:
    """Everything `hwr info` prints, as one JSON-able dict."""
    r = {"hwr": __version__, "python": platform.python_version(), "platform": platform.platform(),
         "executable": sys.executable, "packages": {p: _version(p) for p in PACKAGES},
         "torch": _check(torch_report), "torchaudio": _check(torchaudio_report)}
    r["model"], rec = model_report(model) if r["torch"]["ok"] else ({"ok": False, "error": "torch does not load"},
                                                                    None)
    r["decoder"] = decoder_report(rec) if rec is not None else None
    return r


def _mark(check: dict | None) -> str:
    if check is None or check.get("ok") is None:
        return "n/a"
    return "ok" if check["ok"] else f"FAILS ({check['error']})"


def format_report(r: dict) -> str:
    pk = r["packages"]
    lines = [f"hwr {r['hwr']}, Python {r['python']} ({r['executable']}), {r['platform']}",
             "packages: " + ", ".join(f"{p} {v or 'not installed'}" for p, v in pk.items())]
    t = r["torch"]
    lines.append(f"torch: device {t['device']}, {t['threads']} threads, CUDA build {t['cuda_build'] or 'none'}"
                 if t["ok"] else f"torch: {_mark(t)}")
    lines.append(f"torchaudio (forced alignment): {_mark(r['torchaudio'])}")
    m = r["model"]
    size = f"{m['size_bytes'] / 1e6:.1f} MB" if m.get("size_bytes") else "?"
    if m.get("lm_size_bytes"):
        size += f" + LM {m['lm_size_bytes'] / 1e6:.1f} MB"
    lines.append(f"model: {m.get('path', '?')} ({size}" + (f", {m['parameters']:,} parameters), network on {m['backend']}"
                                                           + (" with int8 LSTMs" if m.get("lstm_int8") else "") if m["ok"]
                                                           else f"): {_mark(m)}"))
    d = r["decoder"]
    if d:
        lines.append(f"decoder: {d['config']} by default; beam search (flashlight-text): {_mark(d['beam'])}; "
                     f"language model {d['lm'].get('path') or '(none)'}: {_mark(d['lm'])}")
    return "\n".join(lines)


def healthy(r: dict) -> bool:
    """True when everything the model needs loads (what a fresh install must give)."""
    d = r["decoder"] or {}
    return bool(r["torch"]["ok"] and r["torchaudio"]["ok"] and r["model"]["ok"] and d.get("beam", {}).get("ok")
                and d.get("lm", {}).get("ok") is not False)
