"""The built LeNet chapter as a reader sees it, in headless Chromium served from a local HTTP server:
figures and the scorecard render, the density slider switches the view with no kernel behind the page,
and nothing fails to load or logs a JavaScript error."""

from __future__ import annotations

import functools
import http.server
import threading
import time
from pathlib import Path

import pytest

CHROME = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
pytestmark = pytest.mark.skipif(not all(p.exists() for p in CHROME),
                                reason="needs Debian chromium + chromium-driver (make browser-deps)")


class Recorder(http.server.SimpleHTTPRequestHandler):
    log: list = []

    def log_request(self, code="-", size="-"):
        self.log.append((self.path, int(code) if str(code).isdigit() else code))

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(real_book):
    Recorder.log = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Recorder, directory=str(real_book)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Recorder.log
    server.shutdown()


@pytest.fixture(scope="module")
def page(served):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    url, requests = served
    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROME[0])
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1300,900",
                 # no host name but the local server resolves: the page must work offline
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROME[1])), options=opts)
    driver.get(f"{url}/book/lenet_mnist.html")
    yield driver, requests
    driver.quit()


def wait_for(find, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        found = find()
        if found:
            return found
        time.sleep(0.3)
    return find()


def shown_image_digest(driver) -> str:
    """SHA-256 of the PNG the stack currently shows (its blob URL changes on every render)."""
    return driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const img = Array.from(document.querySelectorAll('.widget-image')).find(e => e.offsetParent !== null);
        if (!img) { done(null); return; }
        fetch(img.src).then(r => r.arrayBuffer()).then(b => crypto.subtle.digest('SHA-256', b))
          .then(h => done(Array.from(new Uint8Array(h)).map(x => x.toString(16)).join('')));""")


def test_figures_and_scorecard_render(page):
    from selenium.webdriver.common.by import By
    driver, _ = page
    figures = driver.find_elements(By.CSS_SELECTOR, ".cell_output img")
    assert len(figures) >= 4 and all(img.get_attribute("naturalWidth") != "0" for img in figures)
    tables = [t.text for t in driver.find_elements(By.CSS_SELECTOR, ".cell_output table")]
    assert any("verdict" in t and "ticket-earlier-21" in t for t in tables), "scorecard table missing"


def test_slider_switches_the_view_without_a_kernel(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver, _ = page
    slider = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".widget-slider"))
    assert slider, "the density slider was not rendered from the saved widget state"
    assert "100.0%" in slider[0].text
    before = wait_for(lambda: shown_image_digest(driver))
    handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    assert wait_for(lambda: "80.0%" in slider[0].text), slider[0].text
    after = wait_for(lambda: (d := shown_image_digest(driver)) != before and d)
    assert after and after != before, "moving the slider did not change the picture"


def test_no_failed_requests_and_no_javascript_errors(page):
    driver, requests = page
    time.sleep(1)  # let late font and image requests land
    failed = [(path, code) for path, code in requests if not isinstance(code, int) or code >= 400]
    assert failed == [], f"failed requests: {failed}"
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"console errors: {errors}"
