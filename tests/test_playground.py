"""The Playground in a real headless browser: strokes drawn with selenium's pointer actions are prepared
exactly as Python's to_mnist prepares the same pixels, the site's CNN reads a 1, a 0 and a 7, and the page
loads with no console errors and no request leaving 127.0.0.1 (every other host is unreachable)."""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import urlopen

import numpy as np
import pytest
from typer.testing import CliRunner

from digitnet.cli import app
from digitnet.errors import DataError
from digitnet.images import to_mnist

ROOT = Path(__file__).resolve().parents[1]
PAD = 280  # the drawing canvas, in CSS pixels and canvas pixels alike
Stroke = list[tuple[float, float]]


def _line(points: list[tuple[float, float]], step: float = 8.0) -> Stroke:
    """A polyline through ``points``, sampled every ``step`` pixels, as a hand moving a mouse would be."""
    sampled = [points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        count = max(1, math.ceil(math.hypot(x1 - x0, y1 - y0) / step))
        sampled += [(x0 + (x1 - x0) * i / count, y0 + (y1 - y0) * i / count) for i in range(1, count + 1)]
    return sampled


def _ellipse(cx: float, cy: float, rx: float, ry: float, count: int = 48) -> Stroke:
    return [
        (cx + rx * math.sin(2 * math.pi * i / count), cy - ry * math.cos(2 * math.pi * i / count))
        for i in range(count + 1)
    ]


# Each digit: its strokes in pad coordinates, drawn somewhere off-centre and not MNIST-sized, as people do.
DIGITS: dict[str, list[Stroke]] = {
    "1": [_line([(120, 40), (150, 30), (150, 240)])],
    "0": [_ellipse(150, 135, 55, 85)],
    "7": [_line([(70, 60), (210, 60), (120, 250)])],
}


# ---------------------------------------------------------------------------------------- the browser


def _browser():  # type: ignore[no-untyped-def]
    """The docs' headless Debian chromium, with every host but 127.0.0.1 unresolvable: the page must not
    need one."""
    from test_docs import _browser as docs_browser

    return docs_browser("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", window="1280,1000")


def _draw(driver: Any, strokes: list[Stroke], pointer: str = "mouse") -> None:
    """Draw with a pointer (``"mouse"`` or ``"touch"``, a finger) as a person would: press, move through
    the points, lift; then wait until the page has read the drawing."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.actions.pointer_input import PointerInput

    pad = driver.find_element("css selector", ".dp-pad")
    driver.find_element("css selector", ".dp-clear").click()
    for stroke in strokes:
        builder = ActionBuilder(driver, mouse=PointerInput(pointer, pointer), duration=5)
        hand = builder.pointer_action
        # W3C offsets are whole pixels from the element's centre
        hand.move_to(pad, round(stroke[0][0] - PAD / 2), round(stroke[0][1] - PAD / 2)).pointer_down()
        for x, y in stroke[1:]:
            hand.move_to(pad, round(x - PAD / 2), round(y - PAD / 2))
        hand.pointer_up()
        builder.perform()
    driver.execute_async_script("digitnetPlayground.pages[0].idle().then(arguments[arguments.length - 1]);")


def _open(driver: Any, url: str) -> float:
    """Load the page and wait for its first model; the page's load time in ms (navigation to model ready)."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, 60).until(
        lambda d: d.execute_script(
            "const r = document.querySelector('.digitnet-playground');"
            "return r && (r.dataset.ready === 'true' || /error/.test(r.textContent));"
        )
    )
    root = driver.find_element("css selector", ".digitnet-playground")
    assert root.get_attribute("data-ready") == "true", root.text
    return float(root.get_attribute("data-ready-ms"))


def _prediction(driver: Any) -> str:
    return str(driver.find_element("id", "prediction").text)


def _check_console_and_requests(driver: Any, url: str) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == [], f"{url}: console errors: {errors}"
    requested = driver.execute_script(
        "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)];"
    )
    elsewhere = [
        r
        for r in requested
        if urlparse(r).scheme not in ("data", "blob") and urlparse(r).hostname != "127.0.0.1"
    ]
    assert elsewhere == [], f"requests leaving 127.0.0.1: {elsewhere}"
    assert any(r.endswith(".wasm") for r in requested), requested  # the runtime came from the page's host


def _python_prepared(gray: list[float], width: int, height: int) -> np.ndarray | None:
    try:
        return to_mnist(np.asarray(gray, dtype=np.float64).reshape(height, width))
    except DataError:
        return None


def _js_prepared(driver: Any, gray: list[float], width: int, height: int) -> np.ndarray | None:
    digit = driver.execute_script(
        "const p = digitnetPlayground.prepare(arguments[0], arguments[1], arguments[2]);"
        "return p ? Array.from(p.digit) : null;",
        gray,
        width,
        height,
    )
    return None if digit is None else np.asarray(digit, dtype=np.int64).reshape(28, 28)


def _assert_same_preparation(python: np.ndarray | None, js: np.ndarray | None, what: str) -> None:
    """Equal 28×28 digits, to one grey level at 1% of the pixels at most. The page repeats PIL's Lanczos
    arithmetic (float64 weights, a float32 image between the two passes), but its sums run in another
    order than numpy's and PIL's C, so a pixel whose value lies within rounding error of a half could
    round the other way. All the cases here agree exactly (checked with no tolerance when the test was
    written); the slack only keeps the test from failing on a last-bit difference."""
    assert (python is None) == (js is None), f"{what}: one side found no ink"
    if python is None or js is None:
        return
    difference = np.abs(python.astype(np.int64) - js)
    assert difference.max() <= 1, f"{what}: differs by up to {difference.max()} grey levels"
    assert (difference == 0).mean() >= 0.99, f"{what}: {(difference != 0).sum()} pixels differ"


def _scribble(rng: np.random.Generator) -> np.ndarray:
    """A random polyline drawn by PIL on a page of random size, anti-aliased by supersampling."""
    from PIL import Image, ImageDraw

    height, width = (int(v) for v in rng.integers(30, 240, size=2))
    dark_on_light = bool(rng.integers(2))
    big = Image.new("L", (width * 4, height * 4), 255 if dark_on_light else 0)
    points = [(float(x), float(y)) for x, y in rng.uniform(0.15, 0.85, (5, 2)) * (width * 4, height * 4)]
    pen = int(rng.integers(4, 40))
    ImageDraw.Draw(big).line(points, fill=0 if dark_on_light else 255, width=pen, joint="curve")
    return np.asarray(big.resize((width, height), Image.Resampling.BOX), dtype=np.float64)


# ------------------------------------------------------------------------------------------ the site


@pytest.fixture(scope="module")
def site_url(served_site: str) -> str:
    """The Playground page of the docs site the docs' tests build and serve (see conftest.py)."""
    return served_site + "playground/"


def test_site_playground_reads_digits_drawn_with_the_pointer(site_url: str) -> None:
    driver = _browser()
    try:
        load_ms = _open(driver, site_url)
        with_switch = {}
        for digit, strokes in DIGITS.items():
            _draw(driver, strokes)
            assert _prediction(driver) == digit, f"drew a {digit}, the CNN says {_prediction(driver)}"
            # The steps the page shows: a 28×28 digit with its ink in the 20×20 box's reach.
            shown = driver.execute_script(
                "return Array.from(document.querySelectorAll('.dp-step')).map(c => [c.width, c.height]);"
            )
            assert shown[-1] == [28, 28] and max(shown[1]) == 20, shown
            with_switch[digit] = driver.execute_script(
                "const page = digitnetPlayground.pages[0]; page.select.value = '1';"
                "page.select.dispatchEvent(new Event('change'));"
                "return page.idle().then(() => { const p = document.getElementById('prediction').textContent;"
                "page.select.value = '0'; page.select.dispatchEvent(new Event('change'));"
                "return page.idle().then(() => p); });"
            )
        driver.find_element("css selector", ".dp-clear").click()
        driver.execute_async_script(
            "digitnetPlayground.pages[0].idle().then(arguments[arguments.length - 1]);"
        )
        assert _prediction(driver) == "–"
        _check_console_and_requests(driver, site_url)
    finally:
        driver.quit()
    print(f"\nPlayground (site): model ready {load_ms:.0f} ms after navigation; MLP read {with_switch}")
    assert all(re.fullmatch(r"\d", p) for p in with_switch.values()), with_switch


@pytest.mark.slow
def test_the_pages_preparation_is_to_mnist(site_url: str) -> None:
    """The same pixels through the page's JavaScript and through Python's to_mnist: drawn strokes read
    back from the canvas, and synthetic pages the pad cannot make (dark ink on white, a frame around
    the page, a tall narrow mark, faint ink, random scribbles)."""
    driver = _browser()
    try:
        _open(driver, site_url)
        for digit, strokes in DIGITS.items():
            _draw(driver, strokes)
            gray = driver.execute_script("return Array.from(digitnetPlayground.pages[0].grayPixels());")
            python = _python_prepared(gray, PAD, PAD)
            assert python is not None and python.max() == 255
            _assert_same_preparation(python, _js_prepared(driver, gray, PAD, PAD), f"drawn {digit}")
        rng = np.random.default_rng(0)
        pages = {}
        white = np.full((90, 70), 250.0)
        white[20:70, 30:38] = 20.0
        pages["dark on white"] = white
        framed = np.zeros((120, 100))
        framed[2:118, 2:5] = framed[2:118, 95:98] = framed[2:5, 2:98] = framed[115:118, 2:98] = 255.0
        framed[30:90, 40:70] = rng.uniform(0, 255, (60, 30))
        pages["framed noise"] = framed
        narrow = np.zeros((200, 40))
        narrow[10:190, 18:22] = 180.0
        pages["tall narrow"] = narrow
        faint = np.zeros((50, 50))
        faint[10:40, 20:30] = 10.0
        pages["too faint"] = faint
        blobs = rng.uniform(0, 40, (64, 48))
        blobs[15:50, 10:40] += rng.uniform(0, 200, (35, 30))
        pages["noisy blob"] = blobs
        for index in range(12):  # scribbles of any size and pen, light on dark and dark on light
            pages[f"scribble {index}"] = _scribble(rng)
        for what, page in pages.items():
            gray = page.reshape(-1).tolist()
            height, width = page.shape
            _assert_same_preparation(
                _python_prepared(gray, width, height), _js_prepared(driver, gray, width, height), what
            )
    finally:
        driver.quit()


# ------------------------------------------------------------------------------ digitnet playground


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from digitnet.run import run_experiment
    from digitnet.settings import make_run_config

    config = make_run_config(
        {"dataset": "sample", "model": "cnn", "optimizer": "adam", "lr": 0.002, "epochs": 2, "batch-size": 64}
    )
    return run_experiment(config, tmp_path_factory.mktemp("cnn") / "run").run_dir


def test_site_playground_opened_as_a_file_says_to_serve_it(built_site: Path) -> None:
    """A student who double-clicks site/playground/index.html gets, instead of onnxruntime's "Failed to
    fetch dynamically imported module", what to do."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser()
    try:
        driver.get((built_site / "playground" / "index.html").as_uri())
        WebDriverWait(driver, 60).until(
            lambda d: (
                "error" in d.find_element("css selector", ".dp-status").text
                or d.find_element("css selector", ".digitnet-playground").get_attribute("data-ready")
            )
        )
        status = driver.find_element("css selector", ".dp-status").text
        _draw(driver, DIGITS["1"])  # a stroke tries the model again: the same advice, not the loader's words
        after_stroke = driver.find_element("css selector", ".dp-status").text
    finally:
        driver.quit()
    assert "not from a file opened on disk" in status and "http.server" in status, status
    assert after_stroke == status


def test_playground_command_says_how_to_install_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import digitnet.playground

    monkeypatch.setattr(digitnet.playground, "REPOSITORY", tmp_path)  # a checkout where npm ci never ran
    result = CliRunner().invoke(app, ["playground", str(tmp_path), "--no-browser", "--port", "0"])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "error: the Playground needs onnxruntime-web (ort.wasm.min.js is missing): "
        f"run 'npm ci' in {tmp_path}"
    )


@pytest.mark.slow
def test_playground_command_refuses_a_busy_port(cnn_run: Path) -> None:
    pytest.importorskip("onnxruntime")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["playground", str(cnn_run), "--no-browser", "--port", str(port)])
    assert result.exit_code == 2
    assert result.output.startswith(f"error: port {port} on 127.0.0.1: ") and "--port" in result.output


@pytest.mark.slow
def test_playground_command_serves_the_students_own_model(cnn_run: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    env = {k: v for k, v in os.environ.items() if k != "DIGITNET_DATA"} | {"PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from digitnet.cli import main; main()",
            "playground",
            str(cnn_run),
            "--port",
            "0",
            "--no-browser",
        ],
        cwd=tmp_path,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        url = match.group(0)
        with urlopen(url + "ort/ort-wasm-simd-threaded.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
        driver = _browser()
        try:
            load_ms = _open(driver, url)
            assert cnn_run.name in driver.find_element("css selector", ".dp-model").text
            _draw(driver, DIGITS["1"])
            assert re.fullmatch(r"\d", _prediction(driver)), _prediction(driver)
            _check_console_and_requests(driver, url)
        finally:
            driver.quit()
        print(f"\nPlayground (digitnet playground): model ready {load_ms:.0f} ms after navigation")
        process.send_signal(signal.SIGINT)  # Ctrl-C
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "stopped" in out and "Traceback" not in err, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the port is closed: nothing is served any more
        try:
            urlopen(url, timeout=1)
        except OSError:
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"{url} still answers after Ctrl-C")


def test_the_site_build_stops_with_the_command_to_run_when_npm_ci_has_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("mkdocs")
    from mkdocs.exceptions import PluginError

    import digitnet.playground
    from digitnet.playground import mkdocs_hook

    monkeypatch.setattr(digitnet.playground, "REPOSITORY", tmp_path)
    with pytest.raises(PluginError, match=f"run 'npm ci' in {re.escape(str(tmp_path))}$"):
        mkdocs_hook.on_pre_build({})


@pytest.mark.parametrize("no_browser", [False, True])
def test_playground_command_opens_the_browser_unless_told_not_to_and_stops_on_ctrl_c(
    no_browser: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's own wiring, with the server replaced: one whose serve_forever is a Ctrl-C."""
    import webbrowser

    import digitnet.playground

    calls: dict[str, Any] = {"opened": [], "closed": False}

    class FakeServer:
        url = "http://127.0.0.1:8123/"

        def serve_forever(self) -> None:
            raise KeyboardInterrupt

        def server_close(self) -> None:
            calls["closed"] = True

    def fake_server(run_dir: Path, port: int) -> FakeServer:
        calls["args"] = (run_dir, port)
        return FakeServer()

    monkeypatch.setattr(digitnet.playground, "playground_server", fake_server)
    monkeypatch.setattr(webbrowser, "open", lambda url: calls["opened"].append(url))
    args = ["playground", str(tmp_path), "--port", "8123", *(["--no-browser"] if no_browser else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert calls["args"] == (tmp_path, 8123) and calls["closed"]
    assert calls["opened"] == ([] if no_browser else ["http://127.0.0.1:8123/"])
    assert "http://127.0.0.1:8123/" in result.output and result.output.rstrip().endswith("stopped")
