"""The status page in a real browser: Debian's headless Chromium driven by
Selenium through chromedriver (given by path, so Selenium Manager never tries to
download one). The broker is a real process with the HTTP server and a webhook;
real paho clients connect and publish. The test waits on DOM conditions, never
on sleeps, and saves screenshots (desktop and phone widths) under
tests/artifacts/ for people to look at."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest
from mqtt_client import TestClient
from webhook_sink import WebhookSink

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
USER, PASSWORD = "admin", "pw"
HTTP_CONF = (
    f'http_server {{\n bind = "127.0.0.1"\n port = 0\n username = {USER}\n password = "{PASSWORD}"\n}}\n'
)
WAIT = 20  # seconds for a DOM condition (the page refreshes every second here)
BATCHES = (5, 20, 10, 30, 15, 25)  # messages published between refreshes


def _missing():
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium: the test extra)"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"no {path}: install Debian's {package} (scripts/test does)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd(
            "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
        )
        yield driver
    finally:
        driver.quit()


def api_base(proc):
    match = proc.wait_for_output(r"NanoMQ HTTP API listening on http://127\.0\.0\.1:(\d+)")
    return f"http://127.0.0.1:{match.group(1)}"


def screenshot(driver, name, width, height, mobile=False):
    """A full-page PNG at this viewport size; returns its path."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    full_height = max(height, int(metrics["cssContentSize"]["height"]))
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": full_height, "scale": 1},
        },
    )
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {path}")
    return path


def test_the_page_shows_clients_and_live_traffic(broker_factory, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with WebhookSink() as sink:
        conf = (
            HTTP_CONF
            + f'webhook {{\n url = "{sink.url}"\n events = [{{event = "on_client_connected"}}]\n}}\n'
        )
        proc = broker_factory(conf)
        base = api_base(proc)
        sensor = TestClient(proc, client_id="greenhouse-sensor-7", protocol="5")
        sensor.paho.username_pw_set("sensor")
        dashboard = TestClient(proc, client_id="dashboard-kitchen")
        dashboard.paho.username_pw_set("dash")
        clients = (sensor, dashboard)
        try:
            sensor.connect(keepalive=30)
            dashboard.connect(keepalive=60)
            dashboard.subscribe("greenhouse/+/temperature", 1)
            dashboard.subscribe("greenhouse/alarm")
            sink.wait_for(2)

            browser.get(base + "/?refresh=1")
            wait = WebDriverWait(browser, WAIT)
            row = wait.until(
                lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-client-id="greenhouse-sensor-7"]')
            )[0]
            assert "sensor" in row.text and "MQTT v5" in row.text and "30 s" in row.text
            dash_row = browser.find_element(By.CSS_SELECTOR, 'tr[data-client-id="dashboard-kitchen"]')
            assert "greenhouse/+/temperature" in dash_row.text and "MQTT v4" in dash_row.text
            wait.until(lambda d: d.find_element(By.ID, "connections").text == "2")

            def received():
                return int(browser.find_element(By.ID, "received").text.replace(",", ""))

            before = received()
            target = before
            for size in BATCHES:  # one batch per refresh or so: the sparkline gets its points
                for n in range(size):
                    sensor.publish(f"greenhouse/{n % 4}/temperature", b"21.5", qos=1)
                target += size
                wait.until(lambda d, target=target: received() >= target)
            total = sum(BATCHES)
            assert received() >= before + total
            sent = int(browser.find_element(By.ID, "sent").text.replace(",", ""))
            assert sent >= total  # the dashboard got them
            assert len(dashboard.expect(total)) == total
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, '[data-feature="webhook"] dd[data-key]'))
            webhook = browser.find_element(By.CSS_SELECTOR, '[data-feature="webhook"]')
            assert "delivered" in webhook.text
            assert browser.find_element(By.ID, "spark-in").get_attribute("points")  # drawn
            assert browser.find_element(By.ID, "live").get_attribute("class") == "ok"

            desktop = screenshot(browser, "status_page.png", 1280, 900)
            phone = screenshot(browser, "status_page_phone.png", 390, 844, mobile=True)
            # On a phone nothing sticks out sideways: the page is as wide as the screen.
            assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        finally:
            for client in clients:
                client.disconnect()
    assert desktop.stat().st_size > 10_000 and phone.stat().st_size > 10_000
