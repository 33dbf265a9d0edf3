"""The control room in a real browser: Debian's chromium driven by Playwright, against `continuo serve` (tiny model).

Playwright's own browser download is unreachable here; `chromium.launch(executable_path=...)` drives the
chromium that .ci/install-debian-packages installs. Skips, saying why, only where no chromium is installed or
Playwright is missing. CONTINUO_SCREENSHOT=path saves a screenshot of the page after a render there;
CONTINUO_SCREENSHOT_DIR=docs/images saves the page at each tested size (control-room-<w>x<h>.png) there:
  CONTINUO_SCREENSHOT_DIR=docs/images .venv/bin/python -m pytest tests/e2e/test_browser.py -k every_size
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow

JOB_TIMEOUT_MS = 120_000
ACK_INTERVAL_S = 0.3  # the module daemon re-sends an unacked job's terminal events after 0.3, 0.9 and 2.1 s


@pytest.fixture(scope="module")
def daemon_extra_flags(daemon_root) -> tuple[str, ...]:
    return ("--ack-interval-s", str(ACK_INTERVAL_S), "--lora-dir", str(daemon_root / "loras"))


def chromium_path() -> str | None:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is missing: pip install -e '.[test]'")
    executable = chromium_path()
    if executable is None:
        pytest.skip("no chromium installed (bash .ci/install-debian-packages installs Debian's chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--autoplay-policy="
                                                                                              "no-user-gesture-required"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, daemon_process):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.problems = []  # console errors and uncaught exceptions
    page.on("console", lambda message: message.type == "error" and page.problems.append(message.text))
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.posts = []  # (path, JSON body) of every POST the page makes
    page.on("request", lambda request: request.method == "POST" and page.posts.append(
        (request.url.split("://", 1)[1].partition("/")[2], request.post_data)))
    page.goto(daemon_process.http_url)
    page.wait_for_selector("body[data-ready='1']", state="attached")  # presets, history and events loaded
    yield page
    context.close()


def audio_seconds(card) -> float:
    """The file's length as the browser reads it (the page leaves audio unloaded until it is played)."""
    return card.locator("audio").first.evaluate(
        "a => new Promise(ok => { if (a.readyState >= 1) return ok(a.duration); "
        "a.addEventListener('loadedmetadata', () => ok(a.duration)); a.preload = 'metadata'; a.load(); })")


def job_card(page, job_id: str):
    return page.locator(f'.job[data-job-id="{job_id}"]')


def submit(page, button: str = "#generate", *, bars: str = "1", prompt: str = "a test", **fields: str) -> str:
    """Fill the form, click, return the job id of the card that appears (or "" when refused)."""
    page.fill("#prompt", prompt)
    page.fill("#length", bars)
    for selector, value in fields.items():
        page.fill(f"#{selector.replace('_', '-')}", value)
    before = page.locator(".job").count()
    page.click(button)
    page.wait_for_function("([n]) => document.querySelectorAll('.job').length > n || "
                           "!document.getElementById('form-error').hidden", arg=[before])
    cards = page.locator(".job")
    return cards.first.get_attribute("data-job-id") if cards.count() > before else ""


SIZES = [(1440, 900), (390, 844), (360, 740)]  # a laptop, a phone, the narrowest phone in use


def test_the_page_fits_every_size_with_jobs_and_stems_in_reach(page, browser, daemon_process):
    """No horizontal scroll from 1440 down to 360 px (the old fixed 3-column grid was 977 px wide at 390), and
    the Jobs column, the Stems button and the training panel lie inside the screen's width."""
    if page.locator(".job audio").count() == 0:
        job_card(page, submit(page)).locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    shots = os.environ.get("CONTINUO_SCREENSHOT_DIR")
    for width, height in SIZES:
        context = browser.new_context(viewport={"width": width, "height": height})
        sized = context.new_page()
        sized.goto(daemon_process.http_url)
        sized.wait_for_selector(".job audio", state="attached")
        measured = sized.evaluate("() => ({doc: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
                                  " view: window.innerWidth})")
        assert measured["doc"] <= width and measured["body"] <= width, (width, measured)
        for selector in ("#queue", "#stems-button", ".job a.drag", "#training", "#train", "#training-folder"):
            box = sized.locator(selector).first.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (width, selector, box)
        if shots:
            sized.screenshot(path=f"{shots}/control-room-{width}x{height}.png", full_page=width < 900)
        context.close()


def test_page_loads_with_no_console_errors(page, daemon_process):
    page.wait_for_function("() => document.getElementById('daemon-line').textContent.includes('model')")
    top = page.inner_text("#daemon-line")
    assert "tiny-random-musicgen" in top and "cpu" in top and "GB" in top
    page.wait_for_function("() => document.getElementById('storage-line').textContent.includes('free')")
    space = page.inner_text("#storage-line")  # where renders live, the space they take, what is free
    assert "renders" in space and "kept until you prune them" in space and "auto-trash off" in space
    assert page.is_visible("#smoke-warning") and "noise, not music" in page.inner_text("#smoke-warning")
    assert "default" in page.inner_text("#preset-list") and "default" in page.inner_text("#midi-list")
    assert page.problems == []


def test_generate_shows_progress_and_a_playable_audio_of_the_right_length(page, tmp_path):
    job_id = submit(page, bars="2", bpm="100")
    assert re.fullmatch(r"web-gene-\d{8}-\d{6}-[0-9a-f]{8}", job_id)  # date, time, 32 random bits: never repeats
    card = job_card(page, job_id)
    card.locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    assert card.get_attribute("data-progress-events") not in (None, "0")  # progress reached the page live
    assert audio_seconds(card) == pytest.approx(2 * 4 * 60 / 100, abs=0.01)  # 2 bars of 4/4 at 100 BPM
    assert "done" in card.locator(".status").inner_text()
    assert "LUFS" in card.locator(".meta").inner_text() and "true peak" in card.locator(".meta").inner_text()
    played = card.locator("audio").evaluate("a => a.play().then(() => { a.pause(); return true; })")
    assert played is True
    link = card.locator("a.drag")
    assert link.get_attribute("draggable") == "true" and link.get_attribute("download") == "test_2bars_100bpm.wav"
    card.locator("canvas[data-drawn='1']").wait_for(timeout=10_000)  # drawn from the daemon's peaks
    assert card.locator("canvas").evaluate(
        "c => c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v, i) => i % 4 === 3 && v > 0)")
    screenshot = os.environ.get("CONTINUO_SCREENSHOT") or str(tmp_path / "control-room.png")
    page.screenshot(path=screenshot, full_page=True)
    assert page.problems == []


def test_the_form_takes_the_daemons_limits_and_refuses_in_plain_words(page, daemon_root):
    """The fields' ranges come from /api/status (the schema's, capped by max_bars 64 and max_variations 8: the old
    form allowed 16 variations and a length of 0); a value outside is refused on the page naming the field, with no
    OSC in sight (old: "bars must be a float in 0.25..256, got 0.0; send e.g. /continuo/generate …"); Continue
    without a file says to drop or choose one (old: "input_path must be an absolute path…"); a refusal only the
    daemon can make is worded with the page's label too; Stems is greyed, saying why, where its weights are
    missing (this offline daemon's), not the torch download command."""
    assert (page.get_attribute("#length", "min"), page.get_attribute("#length", "max")) == ("0.25", "64")
    assert (page.get_attribute("#count", "min"), page.get_attribute("#count", "max")) == ("1", "8")
    for fields, words in [({"bars": "0"}, "Length must be from 0.25 to 64 bars, not 0."),
                          ({"bars": "65"}, "Length must be from 0.25 to 64 bars, not 65."),
                          ({"bpm": "5"}, "Tempo must be from 20 to 400 BPM, not 5.")]:
        assert submit(page, **fields) == ""
        assert page.inner_text("#form-error") == words
    page.fill("#bpm", "")
    page.fill("#count", "9")
    assert submit(page, "#variations") == ""
    assert page.inner_text("#form-error") == "Variations must be a whole number from 1 to 8, not 9."
    page.fill("#count", "2")
    page.fill("#input-path", "")
    assert submit(page, "#continue") == ""
    assert page.inner_text("#form-error").startswith("Drop or choose a file first")
    page.fill("#key", "H# major")  # only the daemon knows keys: its refusal, said with the page's label
    assert submit(page) == ""
    said = page.inner_text("#form-error")
    assert said.startswith("Key must be") and "/continuo" not in said and "send e.g." not in said, said
    page.fill("#key", "")
    page.fill("#input-path", (daemon_root / "inbox" / "missing.wav").as_posix())
    assert submit(page, "#continue") == ""
    assert "missing.wav" in page.inner_text("#form-error")
    assert page.is_disabled("#stems-button")
    note = page.inner_text("#stems-note")
    assert "weights" in note and "python -c" not in note and "torchaudio" not in note and len(note) < 90, note


def test_drop_a_file_to_continue_it(page, daemon_root, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, (np.random.default_rng(0).standard_normal((32000, 1)) * 0.1).astype(np.float32), 32000)
    page.set_input_files("#file", str(clip))
    page.wait_for_function("() => document.getElementById('input-path').value.includes('clip.wav')")
    assert page.input_value("#input-path").startswith((daemon_root / "inbox").as_posix())
    job_id = submit(page, "#continue")
    job_card(page, job_id).locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)




def test_continuing_a_render_keeps_its_tempo_and_no_key_is_invented(page):
    """A 92 BPM render continued with the Tempo field empty renders at 92 (the daemon read its manifest); the old
    page sent its 120 BPM default. With no key given, the prompt names none."""
    made = submit(page, prompt="pad", bpm="92")
    job_card(page, made).locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    record = page.evaluate("([id]) => fetch(`/api/jobs/${id}`).then(r => r.json())", [made])["job"]
    assert "major" not in str(record) and "minor" not in str(record)
    page.fill("#bpm", "")
    page.fill("#input-path", record["outputs"][0]["path"])
    continued = submit(page, "#continue")
    card = job_card(page, continued)
    card.locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    assert audio_seconds(card) == pytest.approx(4 * 60 / 92, abs=0.01)


def test_cards_and_downloads_carry_musical_names_bpm_key_and_the_source(page):
    """A card is titled with the musical name (prompt words, bars, BPM, key), shows BPM and key, and a continuation
    its source clip; the download carries the same name (the old card and file: web-gene-…-mix.wav)."""
    made = submit(page, prompt="Warm lo-fi piano", bpm="100", key="F# minor")
    card = job_card(page, made)
    card.locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    assert card.locator(".title").inner_text() == "warm-lofi-piano_1bars_100bpm_F#min"
    facts = card.locator(".prompt").inner_text()
    assert "100 BPM" in facts and "F# minor" in facts and "1 bar" in facts
    with page.expect_download() as download:
        card.locator("a.drag").click()
    assert download.value.suggested_filename == "warm-lofi-piano_1bars_100bpm_F#min.wav"
    record = page.evaluate("([id]) => fetch(`/api/jobs/${id}`).then(r => r.json())", [made])["job"]
    page.fill("#bpm", "")
    page.fill("#key", "")
    page.fill("#input-path", record["outputs"][0]["path"])
    continued = job_card(page, submit(page, "#continue", prompt=""))
    continued.locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    page.wait_for_function("([id]) => document.querySelector(`.job[data-job-id='${id}'] .prompt`).textContent"
                           ".includes('BPM')", arg=[continued.get_attribute("data-job-id")])
    facts = continued.locator(".prompt").inner_text()  # the file's own tempo and key, from the daemon's journal
    assert "from warm-lofi-piano_1bars_100bpm_F#min.wav" in facts and "100 BPM" in facts and "F# minor" in facts, facts
    assert continued.locator(".title").inner_text() == "warm-lofi-piano_1bars_100bpm_F#min"  # the source's words
    assert page.problems == []


def test_results_chain_without_download_or_upload_and_the_join_can_be_heard(page):
    """Every output has Continue / Vary / Stems beside its download: a chained job is sent with the output's path
    where the daemon keeps it (no upload, no download; the old card had no such buttons), in the file's own tempo;
    a continuation has a "hear the join" player: the input's end, the gap to the next downbeat, the new bars."""
    made = submit(page, prompt="pad", bpm="92")
    card = job_card(page, made)
    card.locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    assert card.locator(".chain button").all_inner_texts() == ["Continue", "Vary", "Stems"]
    assert card.locator("[data-chain='stems']").is_disabled()  # this daemon has no stems weights: greyed, says why
    assert "weights" in card.locator("[data-chain='stems']").get_attribute("title")
    path = page.evaluate("([id]) => fetch(`/api/jobs/${id}`).then(r => r.json())", [made])["job"]["outputs"][0]["path"]
    page.fill("#bpm", "")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(f"{request.method} {request.url}"))
    before = page.locator(".job").count()
    card.locator("[data-chain='continue']").click()
    page.wait_for_function("([n]) => document.querySelectorAll('.job').length > n", arg=[before])
    continued = page.locator(".job").first
    continued.locator(".join audio").wait_for(timeout=JOB_TIMEOUT_MS)
    status_is(page, continued.get_attribute("data-job-id"), "done")
    assert not [r for r in requests if "/api/inputs" in r or "/files/" in r], requests  # nothing moved twice
    record = page.evaluate("([id]) => fetch(`/api/jobs/${id}`).then(r => r.json())",
                           [continued.get_attribute("data-job-id")])["job"]
    assert record["op"] == "continue" and record["params"]["input_path"] == path
    bar_s = 4 * 60 / 92  # the render's own tempo: the field was empty
    assert audio_seconds(continued) == pytest.approx(bar_s, abs=0.01)
    joined = continued.locator(".join audio").evaluate(
        "a => new Promise(ok => { a.addEventListener('loadedmetadata', () => ok(a.duration)); a.preload = 'metadata';"
        " a.load(); })")
    assert joined == pytest.approx(2 * bar_s, abs=0.01)  # one bar of input (on the grid: no gap), one new bar
    card.locator("[data-chain='variations']").click()
    page.wait_for_function("() => document.querySelector('.job').dataset.jobId.startsWith('web-vari-')")
    assert page.locator(".job").first.locator(".prompt").inner_text().endswith("from pad_1bars_92bpm.wav")
    assert page.problems == []


def test_a_reload_keeps_the_history(page):
    job_id = submit(page)
    job_card(page, job_id).locator("audio").first.wait_for(timeout=JOB_TIMEOUT_MS)
    page.reload()
    card = job_card(page, job_id)
    card.locator("audio").first.wait_for(timeout=10_000)
    assert "done" in card.locator(".status").inner_text()
    assert page.problems == []


def status_is(page, job_id: str, word: str) -> None:
    page.wait_for_function("([id, word]) => (document.querySelector(`.job[data-job-id='${id}'] .status`) || {})"
                           ".textContent?.includes(word)", arg=[job_id, word], timeout=JOB_TIMEOUT_MS)


def test_a_job_another_client_starts_while_the_page_loads_is_not_missed(page, osc_client):
    """The page reads its history, then opens the event stream: a job that begins and ends between the two (here
    the stream's request is held until an OSC client's job is queued and cancelled) still reaches the page, since
    the stream starts after the history's event id. On the page before, its card never appeared."""
    def hold(route) -> None:
        osc_client.send("/continuo/generate", "osc-gap-1", "default", "x", 16.0)
        osc_client.wait_for(lambda a, args: a == "/continuo/queued" and args[0] == "osc-gap-1", 10)
        osc_client.send("/continuo/cancel", "osc-gap-1")
        osc_client.wait_for(lambda a, args: a == "/continuo/error" and args[0] == "osc-gap-1", 60)
        route.continue_()

    page.route("**/api/events*", hold, times=1)
    page.reload()
    page.wait_for_selector("body[data-ready='1']", state="attached")
    status_is(page, "osc-gap-1", "cancelled")
    assert page.problems == []


def test_cancel_works_and_the_header_follows_the_jobs_live(page):
    running = submit(page, bars="16")
    waiting = submit(page, bars="16")
    page.wait_for_function("([id]) => Number(document.querySelector(`.job[data-job-id='${id}']`).dataset"
                           ".progressEvents || 0) > 0", arg=[running], timeout=JOB_TIMEOUT_MS)
    # from the event stream, not the 5 s status poll (which said "idle" while the job ran)
    header = page.inner_text("#daemon-line")  # one running, one waiting; or both, where the daemon batches them
    assert ("rendering 1 job, 1 waiting" in header or "rendering 2 jobs" in header) and "idle" not in header
    job_card(page, waiting).locator(".cancel").click()
    page.wait_for_function("([id]) => document.querySelector(`.job[data-job-id='${id}'] .status`).textContent"
                           ".includes('cancelled')", arg=[waiting], timeout=JOB_TIMEOUT_MS)
    job_card(page, running).locator(".cancel").click()
    page.wait_for_function("([id]) => document.querySelector(`.job[data-job-id='${id}'] .status`).textContent"
                           ".includes('cancelled')", arg=[running], timeout=JOB_TIMEOUT_MS)
    assert "cancelled" in job_card(page, running).locator(".error").inner_text()
    page.wait_for_function("() => document.getElementById('daemon-line').textContent.includes(' idle ')")
    assert page.problems == []


HOLD_THE_FORM_REPLY = """
(() => {
  const fetch0 = window.fetch;
  window.fetch = async (url, options) => {
    const response = await fetch0(url, options);
    if (!(options && options.method === "POST" && String(url).endsWith("/api/jobs"))) return response;
    const id = JSON.parse(options.body).job_id;
    for (let i = 0; i < 1200; i += 1) {  // until the event stream has brought the job's done (at most 120 s)
      if (document.querySelector(`.job[data-job-id='${id}']`)?.dataset.terminalEvents) break;
      await new Promise((ok) => setTimeout(ok, 100));
    }
    window.formRepliesReleased = (window.formRepliesReleased || 0) + 1;
    return response;
  };
})();
"""


def test_a_late_form_reply_does_not_put_a_finished_job_back_in_the_queue(page):
    """The POST's reply can reach the page after the event stream brought the job's progress or done (CI saw the
    header say "2 waiting" while one rendered). Holding the reply until the done is in makes the race certain: the
    old page set the job back to queued, and it stayed there."""
    page.evaluate(HOLD_THE_FORM_REPLY)
    job_id = submit(page)  # the card comes from the stream's queued event, before the reply
    page.wait_for_function("() => window.formRepliesReleased === 1", timeout=JOB_TIMEOUT_MS)
    page.wait_for_timeout(300)  # the reply is handled on the next turns of the event loop
    assert "done" in job_card(page, job_id).locator(".status").inner_text()
    assert " idle " in page.inner_text("#daemon-line")
    assert page.problems == []


def test_a_job_error_from_another_client_leaves_the_connection_notice_clear(page, osc_client):
    """The daemon's SSE `error` event (a job failed) is not a lost connection: no "reconnecting" notice."""
    osc_client.send("/continuo/generate", "osc-refused-1", "no-such-preset", "x", 1.0)  # refused: not_found
    osc_client.send("/continuo/generate", "osc-cancel-1", "default", "x", 16.0)
    osc_client.wait_for(lambda a, args: a == "/continuo/queued" and args[0] == "osc-cancel-1", 10)
    osc_client.send("/continuo/cancel", "osc-cancel-1")
    status_is(page, "osc-cancel-1", "cancelled")  # the other client's job error reached the page
    page.wait_for_timeout(2500)  # its re-sends too (the OSC client does not ack here)
    assert page.inner_text("#link-state") == ""
    assert page.get_attribute("body", "data-link") == "open"
    assert page.problems == []


def test_the_page_acks_its_jobs_so_nothing_is_re_sent(page):
    job_id = submit(page)
    status_is(page, job_id, "done")
    page.wait_for_timeout(ACK_INTERVAL_S * 1000 * 5)  # past the first two re-sends, had there been no ack
    assert ("api/requests/ack", f'{{"job_id":"{job_id}"}}') in page.posts
    assert job_card(page, job_id).get_attribute("data-terminal-events") == "1"
    assert page.problems == []


def test_a_history_of_50_jobs_loads_under_1_mb_without_any_audio(browser, daemon_process, daemon_root, osc_client):
    """Waveforms come from the daemon's peaks (1 KiB a file), not from the files (the old page downloaded every
    WAV of the history: 61 MB for 15 outputs); audio is fetched only to play it. An older render without peaks
    gets them measured once, kept beside it."""
    for n in range(50):
        osc_client.send("/continuo/generate", f"hist-{n}", "default", "x", 0.25, "sample_rate", 22050)
        osc_client.wait_job(f"hist-{n}", JOB_TIMEOUT_MS / 1000, ack=True)
    older = daemon_root / "renders" / "hist-49" / "mix.peaks"
    assert older.stat().st_size == 1024
    older.unlink()  # as a render from before peaks were written
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    sizes, urls = [], []
    page.on("requestfinished", lambda request: (urls.append(request.url), sizes.append(
        request.sizes()["responseBodySize"] + request.sizes()["responseHeadersSize"])))
    page.goto(daemon_process.http_url)
    page.wait_for_selector("body[data-ready='1']", state="attached")
    page.wait_for_function("() => document.querySelectorAll('.job canvas').length >= 50 && "
                           "[...document.querySelectorAll('.job canvas')].slice(0, 50).every(c => c.dataset.drawn)")
    assert page.locator(".job").count() >= 50
    assert not [url for url in urls if "/files/" in url or "/preview/" in url]  # no audio before a play
    print(f"history of {page.locator('.job').count()} jobs: {sum(sizes)} bytes in {len(sizes)} requests")
    assert sum(sizes) < 1_000_000, f"{sum(sizes)} bytes for the page and its history"
    assert older.stat().st_size == 1024  # measured again from the file, kept
    context.close()


def contrast(page, selector: str, panel: str) -> float:
    """WCAG contrast ratio of selector's text colour on panel's background."""
    def luminance(css: str) -> float:
        channels = [int(v) / 255 for v in re.findall(r"\d+", css)[:3]]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    fg = page.eval_on_selector(selector, "e => getComputedStyle(e).color")
    bg = page.eval_on_selector(panel, "e => getComputedStyle(e).backgroundColor")
    light, dark = sorted([luminance(fg), luminance(bg)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_keyboard_and_screen_reader(page):
    """Ctrl+Enter generates from the prompt; Enter on the drop zone opens the file chooser; status changes are
    announced (aria-live); each cancel button names its job; the API link has AA contrast (4.5:1)."""
    page.focus("#prompt")
    page.keyboard.type("keys only")
    page.fill("#length", "1")
    before = page.locator(".job").count()
    page.focus("#prompt")
    page.keyboard.press("Control+Enter")
    page.wait_for_function("([n]) => document.querySelectorAll('.job').length > n", arg=[before])
    job_id = page.locator(".job").first.get_attribute("data-job-id")
    assert job_id.startswith("web-gene-")
    status_is(page, job_id, "done")
    page.wait_for_function("([id]) => document.getElementById('announce').textContent.includes(id)", arg=[job_id])
    assert page.get_attribute("#announce", "aria-live") == "polite" and "done" in page.inner_text("#announce")
    assert page.get_attribute("#link-state", "aria-live") == "polite"
    labels = page.eval_on_selector_all(".job .cancel", "bs => bs.map(b => b.getAttribute('aria-label'))")
    assert labels and all(label and label.startswith("cancel ") for label in labels)
    assert len(set(labels)) == len(labels)  # one per job, not "cancel" each
    page.evaluate("() => document.getElementById('file').addEventListener('click', e => { "
                  "window.chooserOpened = (window.chooserOpened || 0) + 1; e.preventDefault(); })")
    page.focus("#drop")
    page.keyboard.press("Enter")  # opens the file chooser (the click on the file input that a mouse would make)
    page.keyboard.press(" ")
    assert page.evaluate("() => window.chooserOpened") == 2
    assert contrast(page, "#api-link", "#library") >= 4.5
    assert page.problems == []


def test_the_training_panel_trains_from_the_keyboard_and_shows_its_progress(page, daemon_root):
    """Folder, name and epochs typed, Enter starts it: the job goes through the daemon's queue, the panel shows its
    /continuo/training steps to the end and names the adapter, which lies in the daemon's lora_dir; a missing name
    and a folder outside the input roots are refused in plain words, before and by the daemon."""
    folder = daemon_root / "inbox" / "band"
    folder.mkdir(exist_ok=True)
    t = np.arange(32_000 * 16) / 32_000
    for index, hz in enumerate((220.0, 277.0, 330.0, 392.0)):
        sf.write(str(folder / f"take {index}.wav"), (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 32_000)
    page.focus("#training-folder")
    page.keyboard.type(str(folder))
    page.keyboard.press("Enter")  # no name yet: refused here, the name field focused
    assert "a name for the adapter" in page.inner_text("#training-error")
    assert page.evaluate("() => document.activeElement.id") == "training-name"
    page.keyboard.type("web-band")
    page.fill("#training-epochs", "1")
    page.focus("#training-name")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.getElementById('training-state').textContent.includes('is ready')",
                           timeout=JOB_TIMEOUT_MS)
    assert page.inner_text("#training-state") == "web-band is ready: renders take it with lora web-band"
    steps = page.get_attribute("#training-progress", "data-steps")
    assert steps and int(steps) >= 1 and page.evaluate("() => document.getElementById('training-progress').value") == 1
    assert (daemon_root / "loras" / "web-band" / "card.json").is_file()
    card = page.locator(".job.done").filter(has_text="train web-band")
    assert card.count() == 1 and "done in" in card.locator(".status").inner_text()
    assert page.get_attribute("#training-state", "aria-live") == "polite" and page.is_hidden("#training-cancel")
    assert page.problems == []  # the refusal's 400 below is the browser's one console line for it
    page.fill("#training-folder", str(daemon_root.parent))  # outside the daemon's input folders
    page.fill("#training-name", "elsewhere")
    page.click("#train")
    page.wait_for_function("() => !document.getElementById('training-error').hidden")
    assert "outside the allowed input folders" in page.inner_text("#training-error")
    assert page.problems == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
