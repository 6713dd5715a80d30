"""Each built chapter page as a reader sees it (the LeNet and the edge-popup chapters), in headless Chromium served from a local HTTP server, at a
desktop's 1366 px and a phone's 390 px: figures and the scorecard render, the reproducibility summary is the
first table, no table text is cut and none is wider than a phone, every figure has a caption and alt text,
the citations resolve on the bibliography page, the density slider switches the view with no kernel behind
the page, nothing fails to load or logs a JavaScript error, and the page stays under its weight budget."""

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


# The chapter page's weight (smoke build). Everything the browser fetches to show it, figures scrolled to:
# measured 6.4 MB in 39 requests, of which the widget embedder embed-amd.js is 3.6 MB (0.9 MB gzipped, as
# a web host serves it) and the theme's fontawesome.js 1.5 MB. What the first paint waits for (the page
# and its render-blocking styles and scripts) is the budget that matters for a reader on a slow line:
# measured 0.75 MB, with the widget scripts deferred and the figures lazy.
PAGE_BYTES_BUDGET = 7_000_000

# What each chapter page must show: its claims (whole in the tables), a claim id its scorecard names, the
# slider's first two positions at the smoke profile, how many captioned figures, the paper's arXiv page and
# a word of its title on the bibliography page.
PAGES = {
    "lenet_mnist": {"claims": "lenet_mnist", "claim_id": "ticket-earlier-21", "slider": ("100.0%", "80.0%"),
                    "figures": 7, "arxiv": "1803.03635", "title": "Lottery Ticket Hypothesis"},
    "edge_popup": {"claims": "edge_popup", "claim_id": "init-order", "slider": ("50.0%", "10.0%"),
                   "figures": 4, "arxiv": "1911.13299", "title": "Randomly Weighted"},
    "prune_finetune": {"claims": "prune_finetune", "claim_id": "keep-survivors", "slider": ("28.6%", "8.2%"),
                       "figures": 5, "arxiv": "1506.02626", "title": "Learning both Weights"},
    "transfer": {"claims": "transfer", "claim_id": "beats-random", "slider": ("100.0%", "80.0%"),
                 "figures": 3, "arxiv": "1906.02773", "title": "One ticket"},
    # the draw slider shows the recorded run: its first two draws are epochs 1 and 3 (917 iterations each)
    "early_bird": {"claims": "early_bird", "claim_id": "eb-emerge", "slider": ("iteration 917", "iteration 2,751"),
                   "figures": 5, "arxiv": "1909.11957", "title": "Early-Bird"},
    # the path slider shows the recorded LeNet run at k = 0: the dense level, then level 3
    "stability": {"claims": "stability", "claim_id": "lenet-stable-at-init", "slider": ("100.0%", "51.3%"),
                  "figures": 6, "arxiv": "1912.05671", "title": "Linear Mode Connectivity"},
}
PAGE_REQUESTS_BUDGET = 50
FIRST_PAINT_BYTES_BUDGET = 1_200_000


def _driver(width: int, height: int, mobile: bool = False):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROME[0])
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--window-size={width},{height}",
                 # no host name but the local server resolves: the page must work offline
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROME[1])), options=opts)
    if mobile:  # a phone's viewport: 390 css px wide, as an iPhone 12-15
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 3, "mobile": True})
    return driver


@pytest.fixture(scope="module", params=list(PAGES))
def chapter(request):
    return request.param, PAGES[request.param]


@pytest.fixture(scope="module")
def page(served, chapter):
    url, requests = served
    driver = _driver(1366, 900)
    start = len(requests)
    driver.get(f"{url}/book/{chapter[0]}.html")
    yield driver, requests, start, chapter[1]
    driver.quit()


@pytest.fixture(scope="module")
def phone(served, chapter):
    url, _ = served
    driver = _driver(390, 844, mobile=True)
    driver.get(f"{url}/book/{chapter[0]}.html")
    yield driver
    driver.quit()


def _claims(expect):
    import importlib
    return importlib.import_module(f"lt_core.chapters.{expect['claims']}").claims()


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
    driver, _, _, expect = page
    figures = driver.find_elements(By.CSS_SELECTOR, "main figure img")
    assert len(figures) >= expect["figures"]
    for img in figures:  # lazy images load when scrolled to
        driver.execute_script("arguments[0].scrollIntoView()", img)
        assert wait_for(lambda: img.get_attribute("naturalWidth") not in ("0", None), 10), img.get_attribute("src")
    tables = [t.text for t in driver.find_elements(By.CSS_SELECTOR, ".cell_output table")]
    assert any("verdict" in t and expect["claim_id"] in t for t in tables), "scorecard table missing"


def test_slider_switches_the_view_without_a_kernel(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver, _, _, expect = page
    first, second = expect["slider"]
    slider = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".widget-slider"))
    assert slider, "the slider was not rendered from the saved widget state"
    assert first in slider[0].text
    before = wait_for(lambda: shown_image_digest(driver))
    handle = driver.find_element(By.CSS_SELECTOR, ".widget-slider .noUi-handle")
    handle.click()
    handle.send_keys(Keys.ARROW_RIGHT)
    assert wait_for(lambda: second in slider[0].text), slider[0].text
    after = wait_for(lambda: (d := shown_image_digest(driver)) != before and d)
    assert after and after != before, "moving the slider did not change the picture"


def test_no_failed_requests_and_no_javascript_errors(page):
    driver, requests, start, _ = page
    time.sleep(1)  # let late font and image requests land
    failed = [(path, code) for path, code in requests[start:] if not isinstance(code, int) or code >= 400]
    assert failed == [], f"failed requests: {failed}"
    errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], f"console errors: {errors}"


def test_the_reproducibility_summary_is_the_first_table(page):
    from selenium.webdriver.common.by import By
    driver, _, _, _ = page
    first = driver.find_elements(By.CSS_SELECTOR, "main table")[0]
    assert "verdict" in first.text and "trials agreeing" in first.text, first.text[:200]
    assert "recorded run" in first.text.lower() and "the run" in first.text and "to quote" in first.text
    heading = driver.execute_script("""
        let e = arguments[0];
        while (e && !(e.tagName === 'SECTION' && e.querySelector('h2'))) e = e.parentElement;
        return e ? e.querySelector('h2').textContent : '';""", first)
    assert "Reproducibility summary" in heading


def test_scorecard_text_is_whole(page):
    """Every claim and every rule, in full, in the page's tables: nothing is cut at 50 characters."""
    from selenium.webdriver.common.by import By
    driver, _, _, expect = page
    text = " ".join(t.get_attribute("textContent") for t in driver.find_elements(By.CSS_SELECTOR, "main table"))
    for claim in _claims(expect):
        assert claim.text in text, claim.id
        assert claim.how in text, claim.id


def test_no_table_is_wider_than_the_screen(page, phone):
    for view, driver in (("page", page[0]), ("phone", phone)):
        width = driver.execute_script("return document.documentElement.clientWidth")
        if view == "phone":
            assert width <= 400, f"the phone view is {width} px wide"
        wide = driver.execute_script("""
            return Array.from(document.querySelectorAll('main table')).filter(t => {
                const r = t.getBoundingClientRect();
                return r.right > arguments[0] + 1 || t.scrollWidth > t.clientWidth + 1;
            }).map(t => t.textContent.trim().slice(0, 60));""", width)
        assert wide == [], f"{view}: tables wider than the {width} px screen: {wide}"


def test_every_figure_has_a_caption_and_alt_text(page):
    from selenium.webdriver.common.by import By
    driver, _, _, expect = page
    figures = driver.find_elements(By.CSS_SELECTOR, "main figure")
    assert len(figures) >= expect["figures"]
    for fig in figures:
        caption = fig.find_element(By.CSS_SELECTOR, "figcaption").get_attribute("textContent")
        assert caption.strip().startswith("Fig.") and len(caption) > 40, caption
        alt = fig.find_element(By.CSS_SELECTOR, "img").get_attribute("alt")
        assert len(alt) > 30 and "/" not in alt and not alt.endswith(".png"), alt
    loose = driver.execute_script("""return Array.from(document.querySelectorAll('main img'))
        .filter(i => !i.closest('figure') && !i.classList.contains('widget-image')).map(i => i.src);""")
    assert loose == [], f"images outside a captioned figure: {loose}"


def test_citations_resolve_on_the_bibliography_page(page, served):
    from selenium.webdriver.common.by import By
    driver, _, _, expect = page
    url, _ = served
    links = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "main a[href*='references.html#']")]
    assert links, "the chapter cites nothing"
    assert any(f"arxiv.org/abs/{expect['arxiv']}" in a.get_attribute("href")
               for a in driver.find_elements(By.CSS_SELECTOR, "main a")), "no link to the paper's arXiv page"
    bib = _driver(1366, 900)
    try:
        for link in links:
            bib.get(link)
            anchor = link.split("#", 1)[1]
            entry = bib.find_elements(By.ID, anchor)
            assert entry and expect["title"].lower() in entry[0].find_element(By.XPATH, "..").text.lower(), link
    finally:
        bib.quit()


def test_page_weight_stays_under_budget(page):
    """All bytes the page fetched (document, scripts, styles, fonts, images), as the browser counts them."""
    driver, _, _, _ = page
    time.sleep(1)
    entries = driver.execute_script("""
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource');
        return [[nav.encodedBodySize, 'blocking', nav.name]].concat(
            res.map(r => [r.encodedBodySize || r.transferSize || 0, r.renderBlockingStatus, r.name]));""")
    sizes = [size for size, _, _ in entries]
    total, blocking = sum(sizes), sum(size for size, status, _ in entries if status == "blocking")
    print(f"chapter page: {total:,} bytes in {len(sizes)} requests, {blocking:,} before the first paint")
    assert total <= PAGE_BYTES_BUDGET, f"{total:,} bytes > budget {PAGE_BYTES_BUDGET:,}"
    assert blocking <= FIRST_PAINT_BYTES_BUDGET, (
        f"{blocking:,} render-blocking bytes > budget {FIRST_PAINT_BYTES_BUDGET:,}: "
        + ", ".join(name.rsplit("/", 1)[-1] for size, status, name in entries if status == "blocking"))
    assert len(sizes) <= PAGE_REQUESTS_BUDGET, f"{len(sizes)} requests > budget {PAGE_REQUESTS_BUDGET}"
