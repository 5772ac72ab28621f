"""The README's pictures of `vidcolor serve`: the photos tab (two photos, one with a hint stroke)
and the films tab (a keyframe made on the page, a finished job), in headless Chromium.

    python examples/make_page_screenshots.py   # -> docs/serve-photos.jpg, docs/serve-films.jpg

Serves a temporary copy of examples/ (nothing is written here but the two pictures).
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser import headless_chromium, serving  # noqa: E402
from vidcolor.web.server import create_app  # noqa: E402


def wait(condition, seconds: float = 120, driver=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.1)
    said = driver.execute_script("return document.getElementById('message').textContent") if driver else ""
    raise SystemExit(f"timed out; the page says: {said}")


def save(driver, path: Path) -> None:
    Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB").save(path, quality=82)
    print(path)


def stroke(driver, canvas, colour: str, start: tuple[float, float], end: tuple[float, float]) -> None:
    """Paint a stroke from ``start`` to ``end`` (fractions of the canvas from its centre)."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script(
        "const tools = arguments[0].closest('.card, #films').querySelector('.colour-pick');"
        "tools.value = arguments[1]; tools.dispatchEvent(new Event('input'));",
        canvas,
        colour,
    )
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", canvas)
    width, height = canvas.size["width"], canvas.size["height"]
    ActionChains(driver).move_to_element_with_offset(
        canvas, int(start[0] * width), int(start[1] * height)
    ).click_and_hold().move_by_offset(
        int((end[0] - start[0]) * width), int((end[1] - start[1]) * height)
    ).release().perform()


def main() -> None:
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "examples"
        folder.mkdir()
        for name in ("astronaut_bw.jpg", "coffee_bw.jpg", "pan_bw.mp4"):
            shutil.copy(ROOT / "examples" / name, folder / name)
        with serving(create_app(folder)) as url, headless_chromium(1280, 900) as driver:
            driver.get(url + "/")
            driver.find_element(By.ID, "pick").send_keys(f"{folder / 'astronaut_bw.jpg'}\n{folder / 'coffee_bw.jpg'}")
            wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".card[data-state=rendered]")) == 2)
            coffee = driver.find_elements(By.CSS_SELECTOR, ".card")[1]
            coffee.find_element(By.CSS_SELECTOR, ".hint-toggle").click()
            stroke(driver, coffee.find_element(By.CSS_SELECTOR, "canvas.hints"), "#2a5bd7", (-0.1, 0.1), (0.1, 0.12))
            wait(lambda: coffee.get_attribute("data-state") == "rendering", 10)
            wait(lambda: coffee.get_attribute("data-state") == "rendered")
            driver.execute_script(
                "document.querySelectorAll('.slider')[0].value = 45;"
                "document.querySelectorAll('.slider')[0].dispatchEvent(new Event('input'));"
            )
            save(driver, ROOT / "docs" / "serve-photos.jpg")

            driver.find_element(By.CSS_SELECTOR, ".tab[data-tab=films]").click()
            wait(lambda: driver.find_element(By.ID, "film").get_attribute("value") == "pan_bw.mp4")
            driver.execute_script("document.getElementById('frame-time').value = 1")
            driver.find_element(By.ID, "take-frame").click()
            canvas = wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#keyframe-editor canvas"), driver=driver)[0]
            stroke(driver, canvas, "#c8a070", (-0.05, -0.3), (0.05, -0.2))
            driver.find_element(By.ID, "save-keyframe").click()
            wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#keyframes img"), driver=driver)
            driver.find_element(By.ID, "start-job").click()
            wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#jobs tr[data-state=done]"), driver=driver)
            driver.find_element(By.ID, "preview").click()
            ready = "const v = document.getElementById('preview-video'); return !v.hidden && v.readyState >= 2"
            wait(lambda: driver.execute_script(ready), driver=driver)
            driver.set_window_size(1280, 2000)
            driver.execute_script("window.scrollTo(0, 0)")
            time.sleep(0.5)
            save(driver, ROOT / "docs" / "serve-films.jpg")


if __name__ == "__main__":
    main()
