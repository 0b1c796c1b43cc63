"""report.html opened in a real headless browser (Debian's chromium through Selenium): every table and figure is
there and every figure decodes. In CI the test installs chromium and its driver; elsewhere, without them, it is
skipped with the reason."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from w2slab.cli import main

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def browser_binaries() -> tuple[str, str] | None:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if (not chromium or not driver) and IN_CI and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
        if subprocess.run(install, capture_output=True, timeout=600, env=env).returncode != 0:
            # a fresh machine may hold no package lists yet
            subprocess.run(["apt-get", "update", "-q"], capture_output=True, timeout=600, env=env)
            subprocess.run(install, capture_output=True, timeout=600, env=env)
        chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


@pytest.fixture(scope="module")
def report(tiny_pair, tmp_path_factory):
    root = tmp_path_factory.mktemp("browser") / "runs"
    for seed in ("0", "1"):
        assert main(["run", "--dataset", tiny_pair.data, "--weak", tiny_pair.weak, "--strong", tiny_pair.strong,
                     "--n-train", "96", "--n-test", "48", "--max-ctx", "16", "--loss", "xent,logconf", "--method",
                     "none,conf_filter", "--weak.mode", "probe", "--strong.mode", "probe", "--epochs", "2",
                     "--strong.lr", "1e-2", "--seed", seed, "--run-root", str(root)]) == 0
    assert main(["report", str(root)]) == 0
    return root / "report"


def test_report_html_is_one_self_contained_page(report):
    page = (report / "report.html").read_text()
    figures = sorted(p.name for p in report.glob("*.png"))
    assert figures and all(f"<figcaption>{name}</figcaption>" in page for name in figures)
    assert "src=\"data:image/png;base64," in page
    # nothing is fetched from elsewhere: no http(s) reference outside the embedded images (whose base64 may spell
    # "http" by chance: a figure of one run did) and the configs' text
    body = re.sub(r'src="data:image/png;base64,[A-Za-z0-9+/=]*"', "", page.split("<body>")[1].split("<pre>")[0])
    assert not re.search(r"(src|href)=\"https?:", body) and "http" not in body
    assert page.count("<table>") == 3  # summary, paired differences, diagnostics
    assert 'id="configs"' in page and '"n_test": 48' in page


def test_a_headless_browser_finds_every_table_and_figure(report, tmp_path):
    binaries = browser_binaries()
    if binaries is None:
        if IN_CI:
            pytest.fail("chromium and chromedriver could not be installed in CI")
        pytest.skip("no chromium/chromedriver here (apt-get install chromium chromium-driver); CI installs them")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = binaries[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1300,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(binaries[1]), options=options)
    try:
        driver.get((report / "report.html").resolve().as_uri())
        assert driver.title.startswith("w2slab report")
        tables = driver.find_elements(By.TAG_NAME, "table")
        assert len(tables) == 3 and all(t.find_elements(By.CSS_SELECTOR, "tbody tr") for t in tables)
        headers = [t.find_element(By.TAG_NAME, "th").text for t in tables]
        assert headers[0] == "dataset"
        images = driver.find_elements(By.CSS_SELECTOR, "figure img")
        assert len(images) == len(list(report.glob("*.png")))
        decoded = driver.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth)")
        assert all(width and width > 100 for width in decoded)  # every embedded PNG decoded
        sections = [s.get_attribute("id") for s in driver.find_elements(By.TAG_NAME, "section")]
        assert sections == ["summary", "paired", "diagnostics", "figures", "configs"]
        shot = Path(os.environ.get("W2SLAB_SCREENSHOT_DIR", tmp_path)) / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
