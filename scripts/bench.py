"""Benchmarks: every speed figure in BENCHMARKS.md comes from this script.

    python scripts/bench.py --iam WORK/iam-ondb.h5 --shared ../shared/data --out bench.json
    python scripts/bench.py --only latency --only decode          # a subset

Each figure is the median of several repeats, printed with the machine it ran on. Before
each part the script samples how busy the CPU is; if something else is using it (another
process on these 2 cores slows a 2-thread run 10-100x) the figures are marked CONTAMINATED.

Parts:
  import    IAM-OnDB from the tarballs into a store (seconds) and random sample reads (samples/s)
  train     training throughput of the default model (lines/s, frames/s), CPU with 2 threads, or CUDA
  latency   per line, batch 1, 1 thread, the median testset_v line: features + model + greedy, and
            + beam 32 with the shipped LM
  batch     lines/s on 2 threads: greedy, and beam + LM
  decode    the same logits decoded by hwr's beam search (flashlight, the shipped settings) with and
            without the LM, and by pyctcdecode (no LM), beam 32: time and CER side by side
            (pyctcdecode lives in the bench extra: UV_PROJECT_ENVIRONMENT=DIR bash scripts/setup.sh --extra bench)
  forward   the network's forward options at equal accuracy: PyTorch float32, PyTorch dynamic int8
            (LSTM + Linear), onnxruntime float32 and dynamic int8; ms per median line (1 thread),
            lines/s in batches of 32 (2 threads), greedy and beam + LM CER on all of testset_v
  sweep     beam search settings (tokens per frame, beam threshold, blank skipping, beam width) with the
            model's LM on the same testset_v logits: ms per line (1 thread) and CER each; picks the
            fastest within 0.05 CER points of the unpruned search, checks it on all of testset_v
            (greedy and beam), and with --write-decoder stores it in that decoder.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from hwr.decode import DecoderConfig, greedy
from hwr.metrics import cer, wer
from hwr.recognizer import Recognizer
from hwr.store import Store


def machine() -> str:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu or platform.processor()} ({os.cpu_count()} cores){gpu}, torch {torch.__version__}"


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy with other work during `seconds` (this process idle)."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = snap()
    time.sleep(seconds)
    t1, i1 = snap()
    return 1 - (i1 - i0) / max(t1 - t0, 1)


def median_of(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def part(name: str, results: dict):
    busy = cpu_busy()
    results[name] = {"cpu_busy_before": round(busy, 3), "contaminated": busy > 0.15}
    flag = "  CONTAMINATED: another process is using the CPU" if busy > 0.15 else ""
    print(f"\n== {name} (CPU busy before: {busy:.0%}){flag}", flush=True)
    return results[name]


def bench_import(a, results) -> None:
    r = part("import", results)
    src = Path(a.shared) / "iam-ondb"
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "iam.h5"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hwr.cli", "data", "import", "iam-ondb", str(src / "lineStrokes-all.tar.gz"),
                        str(src / "ascii-all.tar.gz"), "--splits", str(src / "splits"), "--out", str(out)],
                       check=True, capture_output=True)
        r["import_seconds"] = time.perf_counter() - t
        r["store_mb"] = out.stat().st_size / 1e6
        with Store(out) as s:
            rng = np.random.default_rng(0)

            def reads():
                idx = rng.integers(0, len(s), 5000)
                t0 = time.perf_counter()
                for i in idx:
                    s[int(i)]
                return 5000 / (time.perf_counter() - t0)
            reads()  # warm the chunk cache, as a training epoch would
            r["random_reads_per_s"] = median_of(reads, 5)
    print(f"import {r['import_seconds']:.1f} s ({r['store_mb']:.0f} MB), random reads {r['random_reads_per_s']:,.0f}/s")


def median_line(store: Store, split: str):
    idx = store.indices(split)
    n = [store.ink(int(i)).num_points for i in idx]
    order = np.argsort(n)
    return [store.ink(int(idx[j])) for j in order[len(order) // 2 - 25: len(order) // 2 + 25]]


def bench_latency(a, results, rec: Recognizer, store: Store) -> None:
    r = part("latency", results)
    torch.set_num_threads(1)
    inks = median_line(store, "testset_v")
    beam = rec.decoder_config if rec.decoder_config.kind == "beam" else DecoderConfig(kind="beam")
    g = DecoderConfig(kind="greedy")
    for ink in inks[:3]:  # warm-up (and the LM load)
        rec.recognize(ink, decoder=g)
        rec.recognize(ink, decoder=beam)

    def run(cfg, layout="line"):
        ts = []
        for ink in inks:
            t0 = time.perf_counter()
            rec.recognize(ink, decoder=cfg, spans=False, layout=layout)
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1000

    def feats_only():
        t0 = time.perf_counter()
        for ink in inks:
            rec.features(ink)
        return (time.perf_counter() - t0) / len(inks) * 1000

    r["frames_median_line"] = int(rec.model.output_lengths(torch.tensor([len(rec.features(inks[25]).values)]))[0])
    r["features_ms"] = median_of(feats_only, 5)
    r["greedy_ms"] = median_of(lambda: run(g), 5)
    r["beam_lm_ms"] = median_of(lambda: run(beam), 5)
    # what `recognize(ink)` does by default: the ink is first cut into lines (hwr.layout), one here
    r["greedy_page_layout_ms"] = median_of(lambda: run(g, "page"), 5)
    r["beam_config"] = {k: beam.as_dict()[k] for k in ("beam_size", "lm", "lm_weight")}
    r["ratio_beam_over_greedy"] = r["beam_lm_ms"] / r["greedy_ms"]
    torch.set_num_threads(2)
    print(f"per line (1 thread, median testset_v line, {r['frames_median_line']} frames): features "
          f"{r['features_ms']:.1f} ms, features+model+greedy {r['greedy_ms']:.1f} ms, + beam {beam.beam_size} "
          f"+ LM {r['beam_lm_ms']:.1f} ms; greedy with the page layout (line cutting) {r['greedy_page_layout_ms']:.1f} ms")


def bench_batch(a, results, rec: Recognizer, store: Store) -> None:
    r = part("batch", results)
    torch.set_num_threads(2)
    idx = store.indices("testset_v")[:400]
    inks = [store.ink(int(i)) for i in idx]
    order = np.argsort([k.num_points for k in inks])
    inks = [inks[i] for i in order]

    def run(cfg):
        t0 = time.perf_counter()
        for s in range(0, len(inks), 32):
            rec.recognize(inks[s:s + 32], decoder=cfg, spans=False, layout="line")
        return len(inks) / (time.perf_counter() - t0)

    beam = rec.decoder_config if rec.decoder_config.kind == "beam" else DecoderConfig(kind="beam")
    r["greedy_lines_per_s"] = median_of(lambda: run(DecoderConfig(kind="greedy")), 3)
    r["beam_lm_lines_per_s"] = median_of(lambda: run(beam), 3)
    print(f"batch (2 threads, 400 testset_v lines): greedy {r['greedy_lines_per_s']:.0f} lines/s, "
          f"beam+LM {r['beam_lm_lines_per_s']:.0f} lines/s")

    # the other way to use two cores: two workers, each reading whole batches on one thread
    torch.set_num_threads(1)
    one = Recognizer.load(a.model, device="cpu")  # its sessions are made single-threaded
    torch.set_num_threads(2)

    def workers(cfg):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as ex:
            list(ex.map(lambda s: one.recognize(inks[s:s + 32], decoder=cfg, spans=False, layout="line"),
                        range(0, len(inks), 32)))
        return len(inks) / (time.perf_counter() - t0)

    r["two_workers_greedy_lines_per_s"] = median_of(lambda: workers(DecoderConfig(kind="greedy")), 3)
    r["two_workers_beam_lm_lines_per_s"] = median_of(lambda: workers(beam), 3)
    print(f"batch, two 1-thread workers instead: greedy {r['two_workers_greedy_lines_per_s']:.0f} lines/s, "
          f"beam+LM {r['two_workers_beam_lm_lines_per_s']:.0f} lines/s")


def bench_decode(a, results, rec: Recognizer, store: Store) -> None:
    """hwr's flashlight beam search vs pyctcdecode on the same logits (beam 32, no LM)."""
    r = part("decode", results)
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        r["skipped"] = "pyctcdecode not installed (bash scripts/setup.sh --extra bench: its own numpy < 2 environment)"
        print(r["skipped"])
        return
    idx = store.indices("testset_v")[:300]
    samples = [store[int(i)] for i in idx]
    lps = []
    with torch.no_grad():
        for s in samples:
            lp, n = rec.log_probs([rec.features(s.ink)])
            lps.append(lp[:int(n[0]), 0].numpy())
    refs = [s.text for s in samples]
    labels = [""] + [c for c in rec.alphabet.chars]
    py = build_ctcdecoder(labels)
    shipped = replace(rec.decoder_config, kind="beam", nbest=1)
    ours = {"hwr_lm": rec.decoder(shipped), "hwr_no_lm": rec.decoder(replace(shipped, lm=None))}

    def run_ours(dec):
        t0 = time.perf_counter()
        out = [dec(torch.from_numpy(lp)[:, None], torch.tensor([len(lp)]))[0][0].text for lp in lps]
        return time.perf_counter() - t0, out

    def run_py():
        t0 = time.perf_counter()
        out = [py.decode(lp, beam_width=32).strip() for lp in lps]
        return time.perf_counter() - t0, out

    torch.set_num_threads(1)
    for name, dec in ours.items():
        run_ours(dec)  # warm
        r[f"{name}_ms_per_line"] = statistics.median(run_ours(dec)[0] for _ in range(3)) / len(lps) * 1000
        r[f"cer_{name}"] = cer(refs, run_ours(dec)[1])
    r["pyctcdecode_ms_per_line"] = statistics.median(run_py()[0] for _ in range(3)) / len(lps) * 1000
    r["cer_pyctcdecode"] = cer(refs, run_py()[1])
    greedy_txt = [greedy(torch.from_numpy(lp)[:, None], torch.tensor([len(lp)]), rec.alphabet)[0][0].text for lp in lps]
    r.update(lines=len(lps), cer_greedy=cer(refs, greedy_txt),
             decoder={k: getattr(shipped, k) for k in ("beam_size", "beam_size_token", "beam_threshold", "blank_skip")},
             speed_ratio_lm_vs_pyctcdecode=r["pyctcdecode_ms_per_line"] / r["hwr_lm_ms_per_line"])
    print(f"{len(lps)} testset_v lines, 1 thread, beam 32: hwr + LM {r['hwr_lm_ms_per_line']:.2f} ms/line "
          f"(CER {r['cer_hwr_lm']:.2%}), hwr no LM {r['hwr_no_lm_ms_per_line']:.2f} ms/line (CER {r['cer_hwr_no_lm']:.2%}), "
          f"pyctcdecode no LM {r['pyctcdecode_ms_per_line']:.2f} ms/line (CER {r['cer_pyctcdecode']:.2%}); "
          f"greedy CER {r['cer_greedy']:.2%}")
    torch.set_num_threads(2)


SWEEP_TOLERANCE = 0.0005  # 0.05 CER points: a speed-up may cost at most this much accuracy (issue #11)


def split_log_probs(rec: Recognizer, store: Store, split: str, limit: int | None = None):
    """(log-probs (T, 1, C) per line, references) of a split, one line at a time (no padding)."""
    idx = store.indices(split)[:limit]
    lps, refs = [], []
    with torch.no_grad():
        for i in idx:
            s = store[int(i)]
            lp, n = rec.log_probs([rec.features(s.ink)])
            lps.append(lp[:int(n[0])])
            refs.append(s.text)
    return lps, refs


def decode_all(rec: Recognizer, cfg: DecoderConfig, lps) -> tuple[float, list[str]]:
    """(ms per line, texts) of decoding these log-probs one line at a time."""
    dec = rec.decoder(cfg)
    t0 = time.perf_counter()
    texts = [dec(lp, torch.tensor([lp.shape[0]]))[0][0].text for lp in lps]
    return (time.perf_counter() - t0) / len(lps) * 1000, texts


def bench_sweep(a, results, rec: Recognizer, store: Store) -> None:
    r = part("sweep", results)
    torch.set_num_threads(1)
    base = replace(rec.decoder_config, kind="beam", nbest=1, beam_size=32, beam_size_token=None,
                   beam_threshold=25.0, blank_skip=None)
    lps, refs = split_log_probs(rec, store, "testset_v", a.sweep_lines)
    grid = [base] + [replace(base, beam_size_token=k, beam_threshold=th, blank_skip=sk)
                     for k in (32, 16, 8) for th in (25.0, 12.0) for sk in (None, 0.999, 0.9999)]
    rows = []
    for cfg in grid:
        decode_all(rec, cfg, lps[:20])  # build the decoder (LM load) outside the clock
        ms = statistics.median(decode_all(rec, cfg, lps)[0] for _ in range(3))
        c = cer(refs, decode_all(rec, cfg, lps)[1])
        rows.append({"beam_size": cfg.beam_size, "beam_size_token": cfg.beam_size_token,
                     "beam_threshold": cfg.beam_threshold, "blank_skip": cfg.blank_skip, "ms_per_line": ms, "cer": c})
        print(f"  tokens {str(cfg.beam_size_token or 'all'):>3}  threshold {cfg.beam_threshold:4.0f}  blank_skip "
              f"{str(cfg.blank_skip):6}  {ms:6.2f} ms/line  CER {c:.2%}", flush=True)
    ok = [x for x in rows if x["cer"] <= rows[0]["cer"] + SWEEP_TOLERANCE]
    best = min(ok, key=lambda x: x["ms_per_line"])
    chosen = replace(base, **{k: best[k] for k in ("beam_size_token", "beam_threshold", "blank_skip")})
    # narrower beams at the chosen pruning
    for width in (16, 8):
        cfg = replace(chosen, beam_size=width)
        decode_all(rec, cfg, lps[:20])
        ms = statistics.median(decode_all(rec, cfg, lps)[0] for _ in range(3))
        c = cer(refs, decode_all(rec, cfg, lps)[1])
        rows.append({"beam_size": width, "beam_size_token": cfg.beam_size_token, "beam_threshold": cfg.beam_threshold,
                     "blank_skip": cfg.blank_skip, "ms_per_line": ms, "cer": c})
        print(f"  beam {width}: {ms:6.2f} ms/line  CER {c:.2%}", flush=True)
        if c <= rows[0]["cer"] + SWEEP_TOLERANCE and ms < best["ms_per_line"]:
            best, chosen = rows[-1], cfg
    r.update(lines=len(lps), grid=rows, chosen=best, baseline=rows[0])
    # the check on the whole tuning split, greedy and beam, old and new settings
    all_lps, all_refs = split_log_probs(rec, store, "testset_v")
    check = {}
    for name, cfg in (("greedy", replace(base, kind="greedy")), ("beam_before", base), ("beam_chosen", chosen)):
        ms, texts = decode_all(rec, cfg, all_lps)
        check[name] = {"cer": cer(all_refs, texts), "wer": wer(all_refs, texts), "decode_ms_per_line": ms}
    r["testset_v"] = check
    r["accepted"] = check["beam_chosen"]["cer"] <= check["beam_before"]["cer"] + SWEEP_TOLERANCE
    print(f"chosen: {best}; all of testset_v ({len(all_lps)} lines): greedy CER {check['greedy']['cer']:.2%}, "
          f"beam before {check['beam_before']['cer']:.2%} ({check['beam_before']['decode_ms_per_line']:.1f} ms), "
          f"chosen {check['beam_chosen']['cer']:.2%} ({check['beam_chosen']['decode_ms_per_line']:.1f} ms): "
          f"{'accepted' if r['accepted'] else 'REJECTED (costs accuracy)'}")
    if a.write_decoder and r["accepted"]:
        path = Path(a.write_decoder)
        d = json.loads(path.read_text())
        d.update({k: getattr(chosen, k) for k in ("beam_size", "beam_size_token", "beam_threshold", "blank_skip")})
        path.write_text(json.dumps(d, indent=2) + "\n")
        print(f"wrote {path}")
    torch.set_num_threads(2)


def forward_options(rec: Recognizer, work: Path) -> dict:
    """name -> Recognizer running the same weights another way."""
    from hwr.onnxmodel import OnnxNetwork, export_onnx
    if rec.model.config.lstm_int8:  # trained for int8 LSTMs: PyTorch's simulation of them, and the real thing
        path = export_onnx(rec.model, work / "model.onnx")
        return {"torch_int8_simulated": rec,
                "onnx_int8_lstm_trained": Recognizer(OnnxNetwork(path, rec.model.config, threads=1), rec.alphabet,
                                                     rec.feature_config, rec.decoder_config, rec.info)}
    out = {"torch_fp32": rec}
    q = torch.ao.quantization.quantize_dynamic(rec.model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
    out["torch_int8"] = Recognizer(q, rec.alphabet, rec.feature_config, rec.decoder_config, rec.info)
    onnx_path = export_onnx(rec.model, work / "model.onnx")
    out["onnx_fp32"] = Recognizer(OnnxNetwork(onnx_path, rec.model.config, threads=1), rec.alphabet,
                                  rec.feature_config, rec.decoder_config, rec.info)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        print("  onnx_int8 skipped: onnxruntime.quantization needs the onnx package")
        return out
    # int8 weights, activations quantized on the fly: everything, or only the LSTMs (the head and the
    # convolution stay float), one scale per tensor or per output channel
    for name, kw in {"onnx_int8": {}, "onnx_int8_perchannel": {"per_channel": True},
                     "onnx_int8_lstm": {"op_types_to_quantize": ["LSTM"]},
                     "onnx_int8_lstm_perchannel": {"op_types_to_quantize": ["LSTM"], "per_channel": True}}.items():
        path = work / f"{name}.onnx"
        quantize_dynamic(str(onnx_path), str(path), weight_type=QuantType.QInt8, **kw)
        out[name] = Recognizer(OnnxNetwork(path, rec.model.config, threads=1), rec.alphabet, rec.feature_config,
                               rec.decoder_config, rec.info)
    return out


def bench_forward(a, results, rec: Recognizer, store: Store) -> None:
    r = part("forward", results)
    rec = Recognizer.load(a.model, backend="torch")  # the reference, and what the other options are made from
    inks = median_line(store, "testset_v")
    idx = store.indices("testset_v")
    samples = [store[int(i)] for i in idx]
    order = np.argsort([s.ink.num_points for s in samples])  # batches of similar lengths, as transcribe does
    feats_all = [rec.features(samples[i].ink) for i in order]
    refs = [samples[i].text for i in order]
    beam = replace(rec.decoder_config, nbest=1)
    with tempfile.TemporaryDirectory() as d:
        for name, alt in forward_options(rec, Path(d)).items():
            torch.set_num_threads(1)
            feats = [alt.features(k) for k in inks]
            for f in feats[:3]:
                alt.log_probs([f])

            def one():
                t0 = time.perf_counter()
                for f in feats:
                    alt.log_probs([f])
                return (time.perf_counter() - t0) / len(feats) * 1000
            ms = median_of(one, 5)
            torch.set_num_threads(2)
            if hasattr(alt.model, "path"):  # an onnxruntime session for 2 threads
                from hwr.onnxmodel import OnnxNetwork
                alt.model = OnnxNetwork(alt.model.path, alt.model.config, threads=2)
            t0 = time.perf_counter()
            lps = []
            for s in range(0, len(feats_all), 32):
                lp, n = alt.log_probs(feats_all[s:s + 32])
                lps += [lp[:int(n[b]), b:b + 1] for b in range(lp.shape[1])]
            lines_per_s = len(feats_all) / (time.perf_counter() - t0)
            g = [greedy(lp, torch.tensor([lp.shape[0]]), rec.alphabet)[0][0].text for lp in lps]
            _, bm = decode_all(rec, beam, lps)
            r[name] = {"forward_ms_per_line": ms, "forward_lines_per_s_batch32_2threads": lines_per_s,
                       "greedy_cer": cer(refs, g), "beam_cer": cer(refs, bm), "beam_wer": wer(refs, bm)}
            print(f"  {name:11s} forward {ms:5.2f} ms/line (1 thread), {lines_per_s:6.0f} lines/s (batch 32, 2 threads); "
                  f"testset_v greedy CER {r[name]['greedy_cer']:.2%}, beam+LM CER {r[name]['beam_cer']:.2%}", flush=True)
    ref = next(k for k in r if isinstance(r[k], dict))
    base = r[ref]
    for name in [k for k in r if isinstance(r[k], dict) and k != ref]:
        r[name]["accepted"] = (r[name]["greedy_cer"] <= base["greedy_cer"] + SWEEP_TOLERANCE
                               and r[name]["beam_cer"] <= base["beam_cer"] + SWEEP_TOLERANCE)
        print(f"  {name}: {'within' if r[name]['accepted'] else 'NOT within'} 0.05 CER points of {ref}")


def bench_train(a, results, store_path: str) -> None:
    r = part("train", results)
    from hwr.train import TrainConfig, Trainer
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(data=[store_path], epochs=1, threads=2, max_val_samples=1, log_every=10 ** 9)
        t = Trainer(cfg, d, progress=False)
        batches = t.batches_for(5)[:a.train_batches * 3]
        steps = []
        for k in range(3):
            lines = frames = 0
            t0 = time.perf_counter()
            for b in batches[k * a.train_batches:(k + 1) * a.train_batches]:
                items = [t.train_items[i] for i in b]
                _, _, f = t.train_step(items, b, 5, 1000, 100)
                lines += len(items)
                frames += f
            dt = time.perf_counter() - t0
            steps.append((lines / dt, frames / dt))
        r["device"] = str(t.device)
        r["lines_per_s"] = statistics.median(s[0] for s in steps)
        r["points_per_s"] = statistics.median(s[1] for s in steps)
        if t.device.type == "cuda":
            r["gpu_max_memory_mb"] = torch.cuda.max_memory_allocated() / 1e6
    print(f"training ({r['device']}): {r['lines_per_s']:.0f} lines/s, {r['points_per_s']:,.0f} input points/s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iam", help="IAM-OnDB store (hwr data import iam-ondb ...)")
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--model", help="default: the shipped model")
    ap.add_argument("--only", action="append", choices=["import", "train", "latency", "batch", "decode", "sweep", "forward"])
    ap.add_argument("--sweep-lines", type=int, default=300, help="testset_v lines for the sweep grid")
    ap.add_argument("--write-decoder", help="sweep: store the chosen settings in this decoder.json")
    ap.add_argument("--train-batches", type=int, default=20)
    ap.add_argument("--out", help="write all figures as JSON here")
    a = ap.parse_args()
    parts = a.only or ["import", "train", "sweep", "forward", "latency", "batch", "decode"]
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M")}
    print(f"machine: {results['machine']}")
    if "import" in parts:
        bench_import(a, results)
    if a.iam:
        rec = Recognizer.load(a.model, device="cpu")
        with Store(a.iam) as store:
            if "latency" in parts:
                bench_latency(a, results, rec, store)
            if "batch" in parts:
                bench_batch(a, results, rec, store)
            if "decode" in parts:
                bench_decode(a, results, rec, store)
            if "sweep" in parts:
                bench_sweep(a, results, rec, store)
            if "forward" in parts:
                bench_forward(a, results, rec, store)
        if "train" in parts:
            bench_train(a, results, a.iam)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
