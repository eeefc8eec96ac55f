"""The listening page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium).

A scripted listener opens the page from disk, checks that every audio element loads an existing file
and that the rendered page names no system, sees unrated sliders marked "not rated" (and is stopped at
"Next" until all are rated), switches sounds by key at the same position, loops a region dragged on the
waveform, rates every MUSHRA trial, answers every A/B pair, downloads the answers as JSON and CSV, and
the files parse back through ``gan-enhance listen-results --key``.

Skipped when Chromium, ChromeDriver or Selenium is missing, unless ``GAN_ENHANCE_REQUIRE_BROWSER=1`` (CI
installs the browser with ``.ci/install_browser.sh`` and sets it), where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest
from test_listen import make_test_folders, page_config

from gan_enhance.cli import main as cli
from gan_enhance.evaluate.listening import results
from gan_enhance.evaluate.listening.build import ANCHOR, REFERENCE, ListeningSettings, build_listening_test
from gan_enhance.evaluate.listening.key import read_key

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
    "--autoplay-policy=no-user-gesture-required",
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


def playing(browser) -> list[dict]:
    """Each audio element of the shown trial: paused or not, and its position."""
    return browser.execute_script(
        "return [...document.querySelectorAll('.trial:not([hidden]) audio')]"
        ".map(a => ({paused: a.paused, time: a.currentTime}))"
    )


def check_switching_and_loop(browser, box):
    """Keys switch sounds at the same position; a region dragged on the waveform plays in a loop."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    body = browser.find_element(By.TAG_NAME, "body")
    body.send_keys("1")  # the reference is audio 0, sound 1 is audio 1
    wait_for(
        lambda: not playing(browser)[1]["paused"] and playing(browser)[1]["time"] > 0.3, "sound 1 to play"
    )
    body.send_keys("2")
    wait_for(lambda: not playing(browser)[2]["paused"], "sound 2 to play")
    state = playing(browser)
    assert state[1]["paused"] and sum(not s["paused"] for s in state) == 1
    assert abs(state[2]["time"] - state[1]["time"]) < 0.25  # continued where sound 1 was
    canvas = box.find_element(By.CSS_SELECTOR, "canvas.waveform")
    width = canvas.size["width"]
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(-0.3 * width), 0
    ).click_and_hold().move_by_offset(int(0.2 * width), 0).release().perform()
    assert box.find_element(By.CSS_SELECTOR, "button.loop").get_attribute("aria-pressed") == "true"
    region = box.find_element(By.CSS_SELECTOR, ".region").text
    assert region.startswith("loop region 0.1") or region.startswith("loop region 0.2"), region
    if playing(browser)[2]["paused"]:  # sound 2 may have ended while the drag was performed
        body.send_keys("2")
        wait_for(lambda: not playing(browser)[2]["paused"], "sound 2 to play again")
    times = []
    deadline = time.monotonic() + 1.5  # longer than the 1 s sound: without the loop it would end
    while time.monotonic() < deadline:
        state = playing(browser)[2]
        assert not state["paused"]
        times.append(state["time"])
        time.sleep(0.05)
    assert 0.15 <= min(times) and max(times) <= 0.45 and any(b < a for a, b in zip(times, times[1:]))
    body.send_keys("s")
    wait_for(lambda: all(s["paused"] for s in playing(browser)), "S to stop playback")


@pytest.mark.slow
def test_a_scripted_listener_completes_the_test_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    reference, systems = make_test_folders(tmp_path / "in")
    page_dir = tmp_path / "page"
    page, key_path = build_listening_test(
        reference, systems, str(page_dir), ListeningSettings(trials=3, seed=1, title="Browser check")
    )
    config, key = page_config(page_dir), read_key(key_path)
    system_of = {
        c["id"]: key["mushra"][t["trial"]]["conditions"][c["id"]]
        for t in config["mushra"]
        for c in t["conditions"]
    }
    browser.get("file://" + page)
    wait_for(
        lambda: browser.execute_script("return document.body.dataset.ready === 'true'"), "the page script"
    )
    rendered = browser.execute_script("return document.documentElement.outerHTML")
    # (test_listen checks every name in every served file; "quiet" is also a word of the instructions)
    assert "noisy" not in rendered and str(tmp_path) not in rendered

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
    background = "return getComputedStyle(arguments[0]).backgroundImage"
    for index, trial in enumerate(config["mushra"]):
        shown = browser.find_elements(By.CSS_SELECTOR, ".trial:not([hidden])")
        assert [t.get_attribute("data-trial") for t in shown] == [trial["trial"]]
        box = shown[0]
        rows = box.find_elements(By.CSS_SELECTOR, ".row:has(input.score)")
        # Unrated sliders say so (no handle, a striped track), and "Next" does not leave them behind.
        assert all("unrated" in row.get_attribute("class") for row in rows)
        assert {row.find_element(By.TAG_NAME, "output").text for row in rows} == {"not rated"}
        assert "repeating-linear-gradient" in browser.execute_script(
            background, rows[0].find_element(By.TAG_NAME, "input")
        )
        if index < len(config["mushra"]) - 1:
            browser.find_element(By.ID, "next").click()
            assert (
                box.is_displayed()
                and "not rated: Sound 1, Sound 2" in browser.find_element(By.ID, "trial-message").text
            )
            assert all("flagged" in row.get_attribute("class") for row in rows)
        if index == 0:
            check_switching_and_loop(browser, box)
        for condition in trial["conditions"]:
            slider = box.find_element(By.CSS_SELECTOR, f"input.score[data-condition='{condition['id']}']")
            value = SCORES[system_of[condition["id"]]] - index
            browser.execute_script(
                "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                slider,
                value,
            )
        assert not any("unrated" in row.get_attribute("class") for row in rows)
        assert "repeating-linear-gradient" not in browser.execute_script(
            background, rows[0].find_element(By.TAG_NAME, "input")
        )
        if index < len(config["mushra"]) - 1:
            browser.find_element(By.ID, "next").click()
            assert not box.is_displayed() and browser.find_element(By.ID, "trial-message").text == ""
    for pair in config["ab"]:
        side = "a" if key["ab"][pair["pair"]]["a"] == "quiet" else "b"
        browser.find_element(
            By.CSS_SELECTOR, f".pair[data-pair='{pair['pair']}'] input[value='{side}']"
        ).click()
    assert "complete" in browser.find_element(By.ID, "status").text

    browser.find_element(By.ID, "download-json").click()
    json_path = downloaded(browser.downloads, ".json")
    browser.find_element(By.ID, "download-csv").click()
    csv_path = downloaded(browser.downloads, ".csv")
    assert os.path.basename(json_path) == f"answers-{config['test_id']}-robot_1.json"
    for path in (json_path, csv_path):
        text = open(path, encoding="utf-8").read()
        assert "quiet" not in text and "noisy" not in text  # the answers are as blind as the page

    from_json, from_csv = results.read_answers(json_path), results.read_answers(csv_path)
    # The page saw sounds 1 and 2 of the first trial played (by key), no other.
    first = config["mushra"][0]["conditions"]
    for answers in (from_json, from_csv):
        assert {r["condition"] for r in answers.mushra if r["played"]} == {first[0]["id"], first[1]["id"]}
    assert from_json.listener == from_csv.listener == "robot 1"
    results.attach_systems([from_json, from_csv], key_path)
    mushra = {r["system"]: r for r in results.aggregate_mushra([from_json])}
    assert mushra == {r["system"]: r for r in results.aggregate_mushra([from_csv])}
    offset = (len(config["mushra"]) - 1) / 2  # mean of the per-trial offsets 0, 1, 2
    for system, score in SCORES.items():
        assert mushra[system]["n"] == len(config["mushra"])
        assert mushra[system]["mean"] == pytest.approx(score - offset)
    [ab] = results.aggregate_ab([from_json])
    assert (ab["first"], ab["first_preferred"], ab["second_preferred"]) == ("noisy", 0, len(config["ab"]))
    assert cli(["listen-results", str(browser.downloads), "--key", key_path]) == 0

    # The answers survive a reload (stored in the browser) until the next listener clears them.
    status = "return document.getElementById('status').textContent"
    browser.refresh()
    wait_for(lambda: browser.execute_script("return document.body.dataset.ready === 'true'"), "the reload")
    assert "complete" in browser.execute_script(status)
    browser.find_element(By.ID, "reset").click()
    browser.switch_to.alert.accept()
    wait_for(lambda: browser.execute_script(status).startswith("0 of"), "the answers to be cleared")
    assert browser.find_element(By.ID, "listener").get_attribute("value") == ""
