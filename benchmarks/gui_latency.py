"""Server time of a slider change in the GUI's "Generate faces" grid, and where it goes.

    python benchmarks/gui_latency.py [--model NAME_OR_PATH] [--faces 70] [--repeat 5]
                                     [--browser] [--quick]

Default model: celeba64-original, installed from ../shared/pretrained/original-celeba64 into
a temporary FACEVAE_HOME when that folder exists (else the registry's download).

Rows, each the median (and min) over --repeat slider changes to new strengths:
- baseline: what a script without st.cache_resource does on every rerun: load the model,
  decode the grid, encode the PNG;
- the parts of a GUI slider change: decoding the faces (FacePipeline.generate), drawing and
  encoding the grid PNG (at the model's resolution; the browser enlarges it);
- the whole script rerun in streamlit.testing's AppTest (sidebar, widgets and the fragment;
  in the browser only the fragment reruns, so this is an upper bound);
- the same rerun back at a strength seen before (the decoded grid comes from st.cache_data);
- with --browser (needs /usr/bin/chromium): a real `facevae gui`, from the key press on the
  slider to the new picture loaded in Chromium (server, transfer and the browser).
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "pretrained" / "original-celeba64"
GUI_SCRIPT = REPO / "src" / "facevae" / "app" / "gui" / "script.py"
CHROMIUM = Path("/usr/bin/chromium")


def resolve_model(model: str | None) -> str:
    from facevae.hub import install
    from facevae.interop.loading import convert_published

    if model:
        return model
    if (SHARED / "decoder.keras").is_file():
        home = tempfile.mkdtemp(prefix="facevae-bench-")
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        os.environ["FACEVAE_HOME"] = home
        return str(install.install("celeba64-original", source_dir=SHARED, progress=False,
                                   convert=convert_published))
    return "celeba64-original"


def timed(function, repeat: int) -> list[float]:
    seconds = []
    for index in range(repeat):
        start = time.perf_counter()
        function(index)
        seconds.append(time.perf_counter() - start)
    return seconds


def strength(index: int) -> float:
    """A new slider position for every repeat: -2.9, -2.8, ... (never 0, never repeated)."""
    return round(-2.9 + 0.1 * index, 1)


def measure_parts(model: str, faces: int, repeat: int) -> dict[str, list[float]]:
    from facevae.app.gui.common import display_scale
    from facevae.imaging import encode_png
    from facevae.inference.pipeline import FacePipeline
    from facevae.interop.loading import load

    pipeline = FacePipeline(load(model))
    pipeline.generate(faces, seed=1)  # warm-up: first-call allocations
    scale = display_scale(pipeline.image_size, 10)

    def baseline(index: int) -> None:
        fresh = FacePipeline(load(model))
        encode_png(fresh.generate(faces, seed=1, attributes={"Smiling": strength(index)}, columns=10).grid(scale))

    results = {}
    results["decode"] = timed(lambda i: pipeline.generate(faces, seed=1, attributes={"Smiling": strength(i)},
                                                          columns=10), repeat)
    result = pipeline.generate(faces, seed=1, columns=10)
    results["png"] = timed(lambda i: encode_png(result.grid()), repeat)  # what "Generate faces" sends
    results["png_enlarged"] = timed(lambda i: encode_png(result.grid(scale)), repeat)
    results["baseline"] = timed(baseline, repeat)
    return results


def measure_apptest(model: str, faces: int, repeat: int) -> dict[str, list[float]]:
    from streamlit.testing.v1 import AppTest

    os.environ["FACEVAE_GUI_MODEL"] = model
    app = AppTest.from_file(str(GUI_SCRIPT), default_timeout=300)
    app.query_params.update({"faces": str(faces), "seed": "1", "attrs": "Smiling:3"})
    app.run()
    if app.exception:
        raise SystemExit(f"the app failed: {app.exception[0].value}")
    slider = "generate-strength-Smiling"

    def move(index: int) -> None:
        app.slider(key=slider).set_value(strength(index)).run()

    new = timed(move, repeat)
    seen = timed(move, repeat)  # the same strengths again: cached grids
    return {"rerun_new": new, "rerun_seen": seen}


def measure_browser(model: str, faces: int, repeat: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "facevae", "gui", "--model", model, "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.3)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/?faces={faces}&seed=1&attrs=Smiling:-3")
            image = "[data-testid='stImage'] img"
            page.wait_for_selector(image, timeout=120_000)
            thumb = page.locator("[data-testid='stSlider']").filter(has_text="Smiling strength").get_by_role("slider")
            seconds = []
            for _ in range(repeat):
                before = page.locator(image).first.get_attribute("src")
                thumb.focus()
                start = time.perf_counter()
                page.keyboard.press("ArrowRight")  # +0.1: a strength not seen before
                page.wait_for_function(
                    """([selector, before]) => { const i = document.querySelector(selector);
                        return i && i.getAttribute('src') !== before && i.complete && i.naturalWidth > 0; }""",
                    arg=[image, before], timeout=120_000)
                seconds.append(time.perf_counter() - start)
            browser.close()
        return seconds
    finally:
        server.terminate()
        server.wait(timeout=30)


def row(label: str, seconds: list[float]) -> str:
    return f"| {label} | {statistics.median(seconds) * 1000:,.0f} | {min(seconds) * 1000:,.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--faces", type=int, default=70)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--browser", action="store_true", help="also time a real browser (needs /usr/bin/chromium)")
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    import torch

    model = resolve_model(args.model)
    print(f"model {model}; {args.faces} faces; {repeat} repeats; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs", file=sys.stderr)
    parts = measure_parts(model, args.faces, repeat)
    apptest = measure_apptest(model, args.faces, repeat)
    lines = [f"| slider change, {args.faces} faces | median ms | min ms |", "|---|---:|---:|",
             row("baseline: reload model + decode + PNG (no st.cache_resource)", parts["baseline"]),
             row("decode the faces (FacePipeline.generate)", parts["decode"]),
             row("draw + encode the grid PNG at 64 px (the browser enlarges it)", parts["png"]),
             row("(for comparison: the grid enlarged on the server)", parts["png_enlarged"]),
             row("whole-script rerun, new strength (AppTest)", apptest["rerun_new"]),
             row("whole-script rerun, strength seen before (st.cache_data)", apptest["rerun_seen"])]
    if args.browser:
        if CHROMIUM.is_file():
            lines.append(row("key press to new picture in Chromium (facevae gui)",
                             measure_browser(model, args.faces, repeat)))
        else:
            print(f"--browser: {CHROMIUM} is absent; skipped", file=sys.stderr)
    print("\n".join([machine_line(), *lines]))


if __name__ == "__main__":
    main()
