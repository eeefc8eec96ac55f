"""The listening page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

A scripted listener opens the page from disk, checks that every audio element loads an existing file,
rates every MUSHRA trial, answers every A/B pair, downloads the answers as JSON and CSV, and the files
parse back through ``gan-enhance listen-results``.

Skipped when Chromium, ChromeDriver or Selenium is missing, unless ``GAN_ENHANCE_REQUIRE_BROWSER=1`` (CI
installs the browser with ``.ci/install_browser.sh`` and sets it), where a missing browser fails.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from test_listen import make_test_folders

from gan_enhance.cli import main as cli
from gan_enhance.evaluate.listening import results
from gan_enhance.evaluate.listening.build import ANCHOR, REFERENCE, ListeningSettings, build_listening_test

CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
# Flags that keep Chromium quiet on a machine without network or display.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--mute-audio",
]
TIMEOUT_S = 120  # generous: chromium starts slowly on a loaded 2-core machine
# What the scripted listener gives each system (plus the trial index, so means are known exactly).
SCORES = {REFERENCE: 100, ANCHOR: 10, "quiet": 70, "noisy": 40}


def _missing() -> str:
    if not os.path.exists(CHROMIUM) or not os.path.exists(CHROMEDRIVER):
        return f"Chromium ({CHROMIUM}) or ChromeDriver ({CHROMEDRIVER}) is not installed; run .ci/install_browser.sh"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return ""


@pytest.fixture
def browser(tmp_path):
    missing = _missing()
    if missing:
        if os.environ.get("GAN_ENHANCE_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(TIMEOUT_S)
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(condition, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def downloaded(folder, extension: str) -> str:
    def done():
        names = [n for n in os.listdir(folder) if n.endswith(extension)]
        return os.path.join(folder, names[0]) if names else ""

    return wait_for(done, f"the {extension} download")


@pytest.mark.slow
def test_a_scripted_listener_completes_the_test_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    reference, systems = make_test_folders(tmp_path / "in")
    page_dir = tmp_path / "page"
    page = build_listening_test(
        reference, systems, str(page_dir), ListeningSettings(trials=3, seed=1, title="Browser check")
    )
    config = json.loads((page_dir / "test.json").read_text())
    browser.get("file://" + page)
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.ready === 'true'"), "the page script"
    )

    # Every audio element points to an existing file, and the browser can decode it.
    sources = browser.execute_script(
        "return [...document.querySelectorAll('audio')].map(a => a.getAttribute('src'))"
    )
    expected = {t["reference"] for t in config["mushra"]} | {
        c["src"] for t in config["mushra"] for c in t["conditions"]
    }
    assert set(sources) == expected and len(sources) == len(expected) + 2 * len(config["ab"])
    assert all((page_dir / src).is_file() for src in sources)
    loaded = "return [...document.querySelectorAll('audio')].every(a => a.readyState >= 1 && !a.error)"
    wait_for(lambda: browser.execute_script(loaded), "audio metadata")
    durations = browser.execute_script("return [...document.querySelectorAll('audio')].map(a => a.duration)")
    assert all(abs(d - 1.0) < 0.01 for d in durations)

    browser.find_element(By.ID, "listener").send_keys("robot 1")
    for index, trial in enumerate(config["mushra"]):
        shown = browser.find_elements(By.CSS_SELECTOR, ".trial:not([hidden])")
        assert [t.get_attribute("data-trial") for t in shown] == [trial["trial"]]
        shown[0].find_element(By.CSS_SELECTOR, "button.play").click()  # playback may not start headless
        for condition in trial["conditions"]:
            slider = shown[0].find_element(
                By.CSS_SELECTOR, f"input.score[data-condition='{condition['id']}']"
            )
            value = SCORES[condition["system"]] - index
            browser.execute_script(
                "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                slider,
                value,
            )
        if index < len(config["mushra"]) - 1:
            browser.find_element(By.ID, "next").click()
    for pair in config["ab"]:
        side = "a" if pair["a"]["system"] == "quiet" else "b"
        browser.find_element(
            By.CSS_SELECTOR, f".pair[data-pair='{pair['pair']}'] input[value='{side}']"
        ).click()
    assert "complete" in browser.find_element(By.ID, "status").text

    browser.find_element(By.ID, "download-json").click()
    json_path = downloaded(browser.downloads, ".json")
    browser.find_element(By.ID, "download-csv").click()
    csv_path = downloaded(browser.downloads, ".csv")
    assert os.path.basename(json_path) == f"answers-{config['test_id']}-robot_1.json"

    from_json, from_csv = results.read_answers(json_path), results.read_answers(csv_path)
    assert from_json.listener == from_csv.listener == "robot 1"
    mushra = {r["system"]: r for r in results.aggregate_mushra([from_json])}
    assert mushra == {r["system"]: r for r in results.aggregate_mushra([from_csv])}
    offset = (len(config["mushra"]) - 1) / 2  # mean of the per-trial offsets 0, 1, 2
    for system, score in SCORES.items():
        assert mushra[system]["n"] == len(config["mushra"])
        assert mushra[system]["mean"] == pytest.approx(score - offset)
    [ab] = results.aggregate_ab([from_json])
    assert (ab["first"], ab["first_preferred"], ab["second_preferred"]) == ("noisy", 0, len(config["ab"]))
    assert cli(["listen-results", str(browser.downloads)]) == 0

    # The answers survive a reload (stored in the browser) until the next listener clears them.
    status = "return document.getElementById('status').textContent"
    browser.refresh()
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready === 'true'"), "the reload")
    assert "complete" in browser.execute_script(status)
    browser.find_element(By.ID, "reset").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: browser.execute_script(status).startswith("0 of"), "the answers to be cleared")
    assert browser.find_element(By.ID, "listener").get_attribute("value") == ""
