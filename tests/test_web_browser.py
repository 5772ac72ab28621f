"""`vidcolor serve`'s page in a real browser (headless Chromium through selenium): a dropped photo
comes back in colour, a hint stroke changes the colour under it, a film job runs to the end with
its progress shown and is downloaded, and bad uploads are refused with a message on the page."""

from __future__ import annotations

import io
import time
import urllib.request
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.browser import chromium_missing, headless_chromium, serving
from tests.clips import make_clip
from tests.conftest import smooth_colour_image
from tests.test_hints import lab_of

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")

UPLOAD_LIMIT = 2_000_000


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page of a served folder (a photo, a film with sound) open in headless Chromium:
    ``(driver, base URL, folder, app)``."""
    from vidcolor.film.job import FilmOptions
    from vidcolor.web.server import create_app

    root = tmp_path_factory.mktemp("page")
    grey = Image.fromarray(smooth_colour_image(128, 192, seed=3)).convert("L")
    grey.save(root / "street.png")
    make_clip(root / "reel.mp4", frames=96)
    app = create_app(root, upload_limit=UPLOAD_LIMIT, film_base=FilmOptions(segment_seconds=0))
    with serving(app) as url, headless_chromium() as driver:
        driver.get(url + "/")
        yield driver, url, root, app


def wait(condition, seconds: float = 90, every: float = 0.05):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting on the page")


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def drop_file(driver, path: Path, target: str = "#drop") -> None:
    """Drop ``path`` on the page element ``target`` as a user dragging it from their files would
    (a DataTransfer holding the file, in a drop event)."""
    from selenium.webdriver.common.by import By

    driver.execute_script(
        "const i = document.createElement('input'); i.type = 'file'; i.id = 'test-dropper';"
        "i.style.display = 'none'; document.body.append(i);"
    )
    driver.find_element(By.ID, "test-dropper").send_keys(str(path))
    driver.execute_script(
        "const input = document.getElementById('test-dropper'); const data = new DataTransfer();"
        "data.items.add(input.files[0]); input.remove(); const target = document.querySelector(arguments[0]);"
        "target.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));",
        target,
    )


def cards(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#gallery .card")


def download_of(driver, url: str, card) -> np.ndarray:
    from selenium.webdriver.common.by import By

    href = card.find_element(By.CSS_SELECTOR, "a.download").get_attribute("href")
    return np.asarray(Image.open(io.BytesIO(fetch(href))).convert("RGB"))


def test_a_dropped_photo_comes_back_in_colour_beside_its_grey_copy(page, tmp_path):
    driver, url, root, _ = page
    photo = tmp_path / "garden.png"
    Image.open(root / "street.png").save(photo)
    drop_file(driver, photo)
    card = wait(lambda: next((c for c in cards(driver) if c.get_attribute("data-state") == "rendered"), None))
    from selenium.webdriver.common.by import By

    assert card.find_element(By.CSS_SELECTOR, ".name").text == "garden.png"
    colour = download_of(driver, url, card)
    assert colour.shape == (128, 192, 3)
    chroma = np.hypot(*np.moveaxis(lab_of(colour)[..., 1:], -1, 0)).mean()
    assert chroma > 3  # colours, not a grey copy
    shown = driver.execute_script(
        "const card = arguments[0]; return [card.querySelector('img.colour').naturalWidth,"
        " card.querySelector('img.grey').naturalWidth];",
        card,
    )
    assert shown == [192, 192]


def test_a_hint_stroke_painted_on_the_photo_changes_the_colour_under_it(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver, url, _, _ = page
    card = cards(driver)[0]
    before = download_of(driver, url, card)
    card.find_element(By.CSS_SELECTOR, ".hint-toggle").click()
    picker = card.find_element(By.CSS_SELECTOR, ".colour-pick")
    driver.execute_script("arguments[0].value = '#1e3cdc'; arguments[0].dispatchEvent(new Event('input'));", picker)
    driver.execute_script(
        "arguments[0].value = 40; arguments[0].dispatchEvent(new Event('input'));",
        card.find_element(By.CSS_SELECTOR, ".brush"),
    )
    canvas = card.find_element(By.CSS_SELECTOR, "canvas.hints")
    width = canvas.size["width"]
    renders = driver.execute_script("return document.querySelectorAll('.card')[0].dataset.state")
    assert renders == "rendered"
    ActionChains(driver).move_to_element_with_offset(canvas, -width // 4, 0).click_and_hold().move_by_offset(
        width // 2, 0
    ).release().perform()
    wait(lambda: card.get_attribute("data-state") == "rendering", seconds=10, every=0.01)
    wait(lambda: card.get_attribute("data-state") == "rendered")
    after = download_of(driver, url, card)
    rows, columns = slice(58, 70), slice(70, 122)  # under the stroke across the middle
    b_before, b_after = lab_of(before[rows, columns])[..., 2].mean(), lab_of(after[rows, columns])[..., 2].mean()
    assert b_after < b_before - 15, (b_before, b_after)  # much bluer under the blue stroke
    far = slice(0, 20)
    assert abs(lab_of(after[far, :20])[..., 2].mean() - lab_of(before[far, :20])[..., 2].mean()) < 10


def test_a_film_job_shows_its_progress_to_the_end_and_downloads_the_colour_film(page):
    from selenium.webdriver.common.by import By

    driver, url, root, _ = page
    driver.find_element(By.CSS_SELECTOR, ".tab[data-tab=films]").click()
    wait(lambda: driver.find_element(By.ID, "film").get_attribute("value") == "reel.mp4")
    driver.execute_script("document.getElementById('decode').value = 'mrf'")
    driver.find_element(By.ID, "start-job").click()
    seen: list[tuple[str, str]] = []

    def finished():
        # read in one script: the table is rebuilt at every progress event
        row = driver.execute_script(
            "const r = [...document.querySelectorAll('#jobs tbody tr')].pop(); if (!r) return null;"
            "const a = r.querySelector('a.download');"
            "return [r.dataset.state, r.cells[2].textContent.trim(), a ? a.href : null];"
        )
        if row is None:
            return None
        seen.append((row[0], row[1]))
        return row if row[0] == "done" else None

    _, progress, href = wait(finished, seconds=120, every=0.1)
    running = [text for state, text in seen if state == "running"]
    assert running and any(text.split("/")[0].strip() not in ("0", "") for text in running), seen
    assert progress == "96 / 96"
    film = root / "fetched.mp4"
    film.write_bytes(fetch(href))
    with av.open(str(film)) as container:
        assert container.streams.audio
        assert sum(1 for _ in container.decode(video=0)) == 96
    film.unlink()


def test_a_file_that_is_no_photo_and_one_over_the_limit_are_refused_on_the_page(page, tmp_path):
    from selenium.webdriver.common.by import By

    driver, _, _, app = page
    driver.find_element(By.CSS_SELECTOR, ".tab[data-tab=photos]").click()
    photos = app.extensions["vidcolor"]["desk"].folder
    before = sorted(photos.iterdir())
    count = len(cards(driver))
    message = driver.find_element(By.ID, "message")
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo at all")
    driver.find_element(By.ID, "pick").send_keys(str(notes))
    wait(lambda: "notes.jpg" in message.text)
    assert "neither an image nor a video" in message.text and message.is_displayed()
    huge = tmp_path / "huge.png"
    huge.write_bytes(np.random.default_rng(0).integers(0, 255, UPLOAD_LIMIT + 100_000, np.uint8).tobytes())
    drop_file(driver, huge)
    wait(lambda: "upload larger than" in message.text)
    assert "2 MB limit" in message.text
    assert len(cards(driver)) == count and sorted(photos.iterdir()) == before
