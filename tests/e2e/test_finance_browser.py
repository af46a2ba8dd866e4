"""The finance pages in a real headless browser (Debian's chromium through chromedriver,
driven by Selenium): log in with a key, open every page, follow a download, and save the
screenshots docs/finance.md shows (docs/finance/*.png)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.einvoice_checks import read_einvoice
from tests.finance_desk import TENANTS, ingest, issue_keys, serving, simulated_day

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "finance"
# Debian's packages (scripts/test installs them when missing): the driver matches the browser.
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# Page loads and the download on a busy 2-core box; a hang fails instead of waiting forever.
PAGE_LOAD_S_MAX = 60
DOWNLOAD_S_MAX = 60
POLL_INTERVAL_S = 0.1
WINDOW = (1100, 800)


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    directory = tmp_path_factory.mktemp("browser")
    store_url = f"sqlite:///{directory / 'evledger.db'}"
    ingest(simulated_day(directory), store_url)
    key = issue_keys(store_url)[TENANTS[0]]
    with serving(store_url, directory / "serve.log") as base_url:
        yield base_url, key


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[WebDriver, Path]]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not Path(binary).exists():
            pytest.fail(f"{binary} is missing: scripts/test installs chromium and "
                        "chromium-driver (apt-get, as root)")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(downloads),
        "download.prompt_for_download": False,
    })
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_LOAD_S_MAX)
    try:
        yield driver, downloads
    finally:
        driver.quit()


def _until_heading(driver: WebDriver, heading: str) -> None:
    # The heading is found, then read: a page that navigates in between (the login's
    # redirect) makes the found element stale, which only means "look again".
    WebDriverWait(driver, PAGE_LOAD_S_MAX,
                  ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
                  ).until(lambda d: heading in d.find_element(By.TAG_NAME, "h1").text)


def _open(driver: WebDriver, url: str, heading: str) -> None:
    driver.get(url)
    _until_heading(driver, heading)


def _shot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def _downloaded(directory: Path, suffix: str) -> Path:
    deadline = time.monotonic() + DOWNLOAD_S_MAX
    while time.monotonic() < deadline:
        done = [p for p in directory.iterdir() if p.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(POLL_INTERVAL_S)
    raise AssertionError(f"no {suffix} download in {DOWNLOAD_S_MAX} s: {list(directory.iterdir())}")


def test_finance_pages_in_a_real_browser(desk: tuple[str, str],
                                         browser: tuple[WebDriver, Path]) -> None:
    base_url, key = desk
    driver, downloads = browser

    # Without the cookie every page sends the browser to the login form.
    _open(driver, f"{base_url}/invoices", "evledger finance")
    driver.find_element(By.ID, "key").send_keys("evk_0000000000000000_wrong")
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, PAGE_LOAD_S_MAX).until(
        lambda d: d.find_elements(By.ID, "login-error"))
    _shot(driver, "login")  # before the key is typed: the same pixels on every run
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.ID, "login").click()
    _until_heading(driver, "Overview")
    chart = driver.find_element(By.CSS_SELECTOR, "#revenue-chart svg")
    assert chart.find_elements(By.TAG_NAME, "rect")
    _shot(driver, "overview")

    _open(driver, f"{base_url}/invoices?from=2026-03-01&to=2026-04-01", "Invoices")
    rows = driver.find_elements(By.CSS_SELECTOR, "#documents tr")
    assert len(rows) > 1
    _shot(driver, "invoices")
    driver.find_element(By.ID, "download-journal-csv").click()
    journal = _downloaded(downloads, ".csv")
    assert journal.read_text().startswith("date,entry_id,account,debit,credit,vat_rate,")

    number = rows[1].find_element(By.TAG_NAME, "a").text
    _open(driver, f"{base_url}/invoices/{number}", number)
    _shot(driver, "document")

    # A partner invoice's page links its EN 16931 e-invoice, and the download validates.
    _open(driver, f"{base_url}/invoices/V-000001", "V-000001")
    driver.find_element(By.ID, "download-einvoice").click()
    einvoice = _downloaded(downloads, ".xml")
    assert read_einvoice(einvoice.read_bytes()).number == "V-000001"

    _open(driver, f"{base_url}/sessions", "Sessions")
    session_link = driver.find_element(By.CSS_SELECTOR, "#sessions tr:nth-child(2) a")
    session_id = session_link.text
    _open(driver, f"{base_url}/sessions/{session_id}", session_id)
    assert driver.find_elements(By.CSS_SELECTOR, "#payers tr")
    _shot(driver, "session")

    _open(driver, f"{base_url}/debts", "Debts")
    _shot(driver, "debts")
    _open(driver, f"{base_url}/settlements", "Partner settlements")
    _shot(driver, "settlements")

    # Log out: the cookie is gone and the pages are closed again.
    driver.find_element(By.CSS_SELECTOR, "nav button").click()
    WebDriverWait(driver, PAGE_LOAD_S_MAX).until(lambda d: d.find_elements(By.ID, "key"))
