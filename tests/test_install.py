"""The installed environment: the lock is what is installed, every backend of the shipped model
loads and decodes, a broken backend gives one line (CLI) or a warning (app), and a
non-editable install carries the app."""

import html
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from importlib import metadata
from pathlib import Path

import pytest

from hwr import info
from hwr.decode import DecoderConfig
from hwr.ink import Ink
from hwr.recognizer import DEFAULT_MODEL, Recognizer

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "fixtures" / "golden.jsonl"


def golden_ink() -> Ink:
    return Ink.from_json_dict(json.loads(GOLDEN.read_text().splitlines()[0])["ink"])


def hwr(*args, env=None):
    return subprocess.run([sys.executable, "-m", "hwr.cli", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def uv() -> str:
    """The pinned uv that scripts/setup.sh installs (CI always has it)."""
    path = ROOT / ".tools" / "bin" / "uv"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail("uv is not in .tools/: CI must set up through scripts/setup.sh")
        pytest.skip("uv is not installed (bash scripts/setup.sh puts it in .tools/)")
    return str(path)


def test_installed_versions_are_exactly_the_locked_ones():
    from packaging.requirements import Requirement
    out = subprocess.run([uv(), "export", "--locked", "--extra", "test", "--no-hashes", "--no-emit-project",
                          "--no-header", "--no-annotate"], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"}).stdout
    wanted = {}
    for line in out.splitlines():
        if line.strip() and not line.startswith(("#", "-")):
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate():
                wanted[req.name.lower()] = str(req.specifier).removeprefix("==")
    assert {"torch", "torchaudio", "flashlight-text", "numpy", "h5py", "streamlit", "editdistance"} <= set(wanted)
    for name, version in wanted.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"{name} {version} is locked but not installed")
        assert have == version, f"{name} {have} installed, {version} locked"


def test_every_backend_of_the_shipped_model_loads_and_decodes():
    r = info.report()
    assert info.healthy(r), info.format_report(r)
    assert r["torchaudio"]["ok"] and r["decoder"]["beam"]["ok"] and r["decoder"]["lm"]["ok"]
    rec = Recognizer.load(device="cpu")
    assert rec.decoder_config.kind == "beam" and rec.decoder_config.lm
    case = json.loads(GOLDEN.read_text().splitlines()[0])
    result = rec.recognize(golden_ink())
    assert result.text == case["beam"] and result.char_spans
    h = result.candidates[0]
    assert h.acoustic is not None and h.lm is not None and h.lm != 0.0  # the LM took part
    spans = rec.align(golden_ink(), result.text)  # torchaudio's forced_align
    assert "".join(s.char for s in spans) == result.text


def test_hwr_info_prints_what_a_bug_report_needs():
    r = hwr("info")
    assert r.returncode == 0, r.stdout + r.stderr
    for word in ("hwr 0.1.0", "Python", "torch 2.", "torchaudio 2.", "flashlight-text 0.", "threads", "model.pt",
                 "MB", "beam search (flashlight-text): ok", "language model"):
        assert word in r.stdout, (word, r.stdout)
    d = json.loads(hwr("info", "--json").stdout)
    assert d["packages"]["torch"] == metadata.version("torch") and d["model"]["size_bytes"] > 1e6
    assert d["decoder"]["lm"]["ok"] is True


@pytest.fixture
def broken(tmp_path):
    """A folder to put on PYTHONPATH whose fake packages shadow the real ones and fail to import."""
    def make(package: str, error: str) -> dict:
        d = tmp_path / package.replace(".", "_")
        (d / package).mkdir(parents=True)
        (d / package / "__init__.py").write_text(f"raise {error}\n")
        return {"PYTHONPATH": str(d)}
    return make


def test_broken_torchaudio_keeps_beam_search_and_says_why(broken, tmp_path):
    env = broken("torchaudio", 'RuntimeError("Detected that PyTorch and TorchAudio were compiled with '
                               'different CUDA versions. PyTorch has CUDA version 13.2 whereas TorchAudio has 13.0")')
    ink = tmp_path / "line.json"
    ink.write_text(golden_ink().to_json())
    r = hwr("transcribe", ink, "--out", tmp_path / "out.jsonl", env=env)
    assert r.returncode == 0, r.stderr
    row = json.loads((tmp_path / "out.jsonl").read_text())
    assert row["text"] == json.loads(GOLDEN.read_text().splitlines()[0])["beam"]
    r = hwr("info", env=env)
    ta = next(x for x in r.stdout.splitlines() if x.startswith("torchaudio"))
    assert r.returncode == 1 and "FAILS" in ta and "different CUDA versions" in ta
    assert "beam search (flashlight-text): ok" in r.stdout and "Traceback" not in r.stdout + r.stderr


def test_missing_flashlight_is_one_line_in_the_cli(broken, tmp_path):
    env = broken("flashlight", 'ImportError("libflashlight-text.so: cannot open shared object file")')
    ink = tmp_path / "line.json"
    ink.write_text(golden_ink().to_json())
    r = hwr("transcribe", ink, "--out", tmp_path / "out.jsonl", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "flashlight-text" in lines[0] and "--decoder greedy" in lines[0], r.stderr
    r = hwr("transcribe", ink, "--out", tmp_path / "out.jsonl", "--decoder", "greedy", env=env)
    assert r.returncode == 0, r.stderr
    r = hwr("info", "--json", env=env)
    d = json.loads(r.stdout)
    assert r.returncode == 1 and d["decoder"]["beam"]["ok"] is False and "flashlight" in d["decoder"]["beam"]["error"]


def test_unreadable_lm_is_one_line_in_the_cli(tmp_path):
    bad = tmp_path / "bad.arpa"
    bad.write_text("this is not an ARPA file\n")
    ink = tmp_path / "line.json"
    ink.write_text(golden_ink().to_json())
    for lm, needle in ((bad, "bad.arpa"), (tmp_path / "missing.arpa", "missing.arpa")):
        r = hwr("transcribe", ink, "--out", tmp_path / "out.jsonl", "--lm", lm)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and needle in lines[0], r.stderr


def test_app_warns_and_reads_greedily_when_the_lm_cannot_load(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    from test_app import APP, _result_text, _view, canvas_strokes
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(DEFAULT_MODEL / "model.pt", model / "model.pt")
    cfg = json.loads((DEFAULT_MODEL / "decoder.json").read_text())
    (model / "decoder.json").write_text(json.dumps({**cfg, "lm": "gone.arpa.gz"}))
    monkeypatch.setenv("HWR_MODEL", str(model / "model.pt"))
    monkeypatch.setenv("HWR_DATA_DIR", str(tmp_path / "data"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    assert any("Beam search is off" in w.value and "gone.arpa.gz" in w.value for w in at.warning)
    at.session_state["strokes"] = canvas_strokes("abc")
    at.run()
    assert not at.exception and "greedy decoding" in " ".join(_view(at).itertext())  # the board's panel says so
    assert _result_text(at) is not None
    assert DecoderConfig(**cfg).kind == "beam"  # the shipped config itself is untouched


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_wheel_install_carries_the_app(tmp_path):
    """`pip install .` (not editable) must give a working `hwr demo`: build the wheel, install it
    apart from the checkout, start the demo from there and fetch the page."""
    uv_bin = uv()
    dist, target = tmp_path / "dist", tmp_path / "site"
    subprocess.run([uv_bin, "build", "--wheel", "--out-dir", str(dist), str(ROOT)], check=True, capture_output=True,
                   env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"}, timeout=300)
    wheel = next(dist.glob("hwr-*.whl"))
    subprocess.run([uv_bin, "pip", "install", "--no-deps", "--target", str(target), "--python", sys.executable,
                    str(wheel)], check=True, capture_output=True, timeout=300)
    for part in ("hwr/web/app.py", "hwr/web/canvas.js", "hwr/web/canvas.css", "hwr/models/default/model.pt",
                 "hwr/models/default/decoder.json"):
        assert (target / part).is_file(), part
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.Popen([sys.executable, "-m", "hwr.cli", "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                time.sleep(0.3)
        else:
            pytest.fail("the installed demo did not come up")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # stopping `hwr demo` stops the server: nothing keeps answering on its port
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    # the installed app itself (not the checkout's web/app.py) turns strokes into text
    golden = json.loads(GOLDEN.read_text().splitlines()[0])
    strokes = golden_ink().to_json_dict()["strokes"]
    code = ("import json, sys; from streamlit.testing.v1 import AppTest; import hwr; "
            f"assert hwr.__file__.startswith({str(target)!r}), hwr.__file__; "
            f"at = AppTest.from_file({str(target / 'hwr/web/app.py')!r}, default_timeout=120); at.run(); "
            "at.session_state['strokes'] = json.loads(sys.stdin.read()); at.run(); "
            "assert not at.exception, at.exception; "
            "print(json.loads(at.get('bidi_component')[0].proto.json)['view'])")  # the panel the board draws
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300, input=json.dumps(strokes))
    assert r.returncode == 0, r.stderr[-2000:]
    assert f">{html.escape(golden['beam'])}</div>" in r.stdout, r.stdout[-500:]
