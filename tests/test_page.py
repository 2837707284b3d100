"""The web page in real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium): a served SciFact sample, a search, a filter, a wrong filter, the stats and the plan's
frontier; the results shown equal the API's. A screenshot is saved in the test's temp folder."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import tiervec
from live_server import LiveServer
from tiervec.corpus import read_corpus

CHROMIUM = Path("/usr/bin/chromium")
DRIVER = Path("/usr/bin/chromedriver")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync",
         "--window-size=1400,1000"]

HAVE_BROWSER = CHROMIUM.exists() and DRIVER.exists()
NO_BROWSER = ("needs Debian's chromium and chromium-driver: sudo apt-get install chromium "
              "chromium-driver (.ci/run installs them)")
if not HAVE_BROWSER and os.environ.get("TIERVEC_REQUIRE_BROWSER"):
    raise RuntimeError(f"TIERVEC_REQUIRE_BROWSER is set but the browser is absent: {NO_BROWSER}")
pytestmark = [pytest.mark.skipif(not HAVE_BROWSER, reason=NO_BROWSER), pytest.mark.browser]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, shared_data: Path):
    """120 SciFact documents (with a metadata field 'n') served, and a plan run on them."""
    data = tmp_path_factory.mktemp("page") / "data"
    docs = [{"id": d.id, "title": d.title, "text": d.text, "n": i}
            for i, d in enumerate(itertools.islice(
                read_corpus(shared_data / "beir" / "scifact"), 120))]
    with tiervec.create(data / "scifact", fields={"n": "int"}) as col:
        col.add(docs)
    plan = subprocess.run(
        [sys.executable, "-c", "from tiervec.cli import main; main()", "plan",
         str(data / "scifact"), "--n-queries", "40", "--out", str(data.parent / "plan"),
         "--tiers", "float32", "--tiers", "binary*4 -> float32@disk", "--tiers", "binary",
         "--tiers", "int8"], capture_output=True, text=True, timeout=600)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    with LiveServer(data) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def api_ids(url: str, body: dict) -> list[str]:
    response = httpx.post(f"{url}/v1/collections/scifact/search", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return [h["id"] for h in response.json()["results"][0]]


def test_search_filter_stats_and_plan_in_chromium(served: LiveServer, browser,
                                                  tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 30)
    browser.get(served.url + "/")
    wait.until(lambda d: d.find_element(By.ID, "summary").text.startswith("120 documents"))
    stats = browser.find_element(By.ID, "stats").text
    assert "binary*4" in stats and "float32@disk" in stats and "RAM" in stats
    assert "recall@10 vs exact" in stats and "target 0.95; not measured yet" in stats

    def shown() -> list[str]:  # read in one script: the list may be re-rendered meanwhile
        return browser.execute_script(  # type: ignore[no-any-return]
            "return Array.from(document.querySelectorAll('#results li'), li => li.dataset.id)")

    query = "vitamin D and bone density in older adults"
    box = browser.find_element(By.ID, "query")
    assert browser.switch_to.active_element == box  # keyboard-first: the query has focus
    box.send_keys(query, Keys.ENTER)
    wait.until(lambda d: len(shown()) == 10)
    assert shown() == api_ids(served.url, {"query": query, "k": 10})

    flt = browser.find_element(By.ID, "filter")
    flt.send_keys("n < 40", Keys.ENTER)
    wait.until(lambda d: shown() == api_ids(served.url, {"query": query, "k": 10,
                                                         "filter": "n < 40"}))
    chips = browser.find_elements(By.CSS_SELECTOR, "#results li .chip")
    assert chips and all(int(c.text.split(": ")[1]) < 40 for c in chips)

    flt.clear()
    flt.send_keys("n <", Keys.ENTER)
    error = wait.until(ec.visibility_of_element_located((By.ID, "error")))
    assert "FilterSyntaxError" in error.text and "^" in error.text
    assert shown() == []

    chart = browser.find_element(By.CSS_SELECTOR, "#plan svg")
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.pt:not(.current)")) == 4
    current = chart.find_element(By.CSS_SELECTOR, "circle.current")
    assert current.get_attribute("data-current").replace(" ", "") == "binary*4->float32@disk"

    flt.clear()
    flt.send_keys(Keys.ENTER)
    wait.until(lambda d: len(shown()) == 10 and not d.find_element(By.ID, "error").is_displayed())
    from selenium.webdriver.support.ui import Select

    mode = Select(browser.find_element(By.ID, "mode"))  # the collection has a lexical index
    assert [o.is_enabled() for o in mode.options] == [True, True, True]
    mode.select_by_value("hybrid")
    box.send_keys(Keys.ENTER)
    wait.until(lambda d: shown() == api_ids(served.url, {"query": query, "k": 10,
                                                         "mode": "hybrid"}))
    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("j")
    assert "active" in browser.find_elements(By.CSS_SELECTOR, "#results li")[0].get_attribute(
        "class")
    shot = tmp_path / "page.png"
    browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    keep = Path(served.data_dir).parent / "page.png"
    shutil.copy(shot, keep)
    print(json.dumps({"screenshot": str(keep)}))


def test_the_page_asks_for_the_key_and_lets_it_be_changed(tmp_path: Path, browser) -> None:
    """A server with a key serves the page to anyone; the page asks for the key when the API
    answers 401, keeps it for the tab, and can forget it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    with tiervec.create(tmp_path / "data" / "locked", model=None, dim=4) as col:
        col.add([{"id": "a"}], vectors=[[1.0, 0, 0, 0]])
    with LiveServer(tmp_path / "data", "--api-key", "page-key") as live:
        browser.get(f"{live.url}/")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: d.find_element(By.ID, "key-box").is_displayed())
        assert "Unauthorized" in browser.find_element(By.ID, "error").text
        box = browser.find_element(By.ID, "api-key")
        box.send_keys("wrong", Keys.TAB)
        wait.until(lambda d: "wrong" in d.find_element(By.ID, "error").text)
        box.send_keys("page-key", Keys.TAB)
        wait.until(lambda d: d.find_element(By.ID, "collection").text.startswith("locked"))
        assert browser.find_element(By.ID, "error").is_displayed() is False
        assert "stored" in box.get_attribute("placeholder")
        browser.find_element(By.ID, "forget-key").click()
        assert browser.execute_script("return sessionStorage.getItem('tiervec-key')") is None
        browser.get(f"{live.url}/")  # no key any more: asked again
        wait.until(lambda d: d.find_element(By.ID, "key-box").is_displayed())
