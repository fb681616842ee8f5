"""`neurovox listen`: the blinded listening test, its database and its write-back into the report.

The end-to-end test drives the page in headless Chromium (Debian's `chromium` and `chromium-driver`,
installed by scripts/setup.sh when it runs as root) through Selenium, on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from neurovox.errors import ConfigError, DataError
from neurovox.evaluate.evaluate import evaluate_test_set
from neurovox.evaluate.listening import ListeningDB, load_items, start_server, summarize_answers, wilson_ci
from tests.conftest import PerfectDecoder, make_word_test_set

N_TRIALS = 4


def _resynthesis(audio: np.ndarray) -> np.ndarray:
    return audio + 0.01 * np.random.default_rng(1).standard_normal(audio.shape).astype(np.float32)


@pytest.fixture(scope="module")
def eval_template(tmp_path_factory):
    """An evaluation folder of 4 word trials x (decoded, reference, resynthesis): 12 recordings."""
    test = make_word_test_set(N_TRIALS)
    out = tmp_path_factory.mktemp("listen") / "eval"
    evaluate_test_set(PerfectDecoder(test), test, out, seed=0, n_boot=50, resynthesize=_resynthesis,
                      max_trial_figures=0)
    return out


@pytest.fixture
def eval_dir(eval_template, tmp_path):
    dst = tmp_path / "eval"
    shutil.copytree(eval_template, dst)
    return dst


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode()


def _post(url: str, form: dict) -> int:
    data = urllib.parse.urlencode(form).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_page_is_blinded_resumable_and_written_back(eval_dir):
    server = start_server(eval_dir, port=0, n_choices=4, seed=0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        items = server.listening_test.items
        assert len(items) == 3 * N_TRIALS and {i.condition for i in items} == {"decoded", "reference", "resynthesis"}
        assert "Your name or code" in _get(base + "/")
        first = _get(base + "/?listener=ann")
        # blinded: neither the condition nor the file name reaches the page
        for secret in ("decoded", "reference", "resynthesis", ".wav", "trial0"):
            assert secret not in first, secret
        assert first == _get(base + "/?listener=ann")  # a reload shows the same recording and choices
        assert "Recording 1 of 12" in first
        choices = re.findall(r'name="answer" value="([^"]+)"', first)
        assert len(choices) == 4
        wav = urllib.request.urlopen(base + "/audio?listener=ann&pos=0", timeout=10).read()
        assert wav[:4] == b"RIFF"
        assert _post(base + "/answer", {"listener": "ann", "pos": 0, "answer": choices[0]}) == 400  # no rating
        assert _post(base + "/answer", {"listener": "ann", "pos": 0, "answer": choices[0], "rating": 9}) == 400
        plan = server.listening_test.db.plan("ann", items, [], 4, 0)
        for pos, (item_id, shown) in enumerate(plan):
            right = items[item_id].label
            answer = right if items[item_id].condition == "reference" else next(c for c in shown if c != right)
            assert right in shown and _post(base + "/answer", {"listener": "ann", "pos": pos, "answer": answer,
                                                               "rating": 1 + pos % 5}) in (200, 303)
        # a resubmitted form changes nothing
        _post(base + "/answer", {"listener": "ann", "pos": 0, "answer": "zzz", "rating": 5})
        assert 'id="done"' in _get(base + "/?listener=ann")
    finally:
        server.shutdown()
        server.listening_test.db.close()
    answers = ListeningDB(eval_dir / "listening.sqlite").answers()
    assert len(answers) == 12
    saved = json.loads((eval_dir / "listening.json").read_text())
    assert saved == json.loads(json.dumps(summarize_answers(answers, 4)))
    assert saved["conditions"]["reference"]["accuracy"] == 1.0 and saved["conditions"]["decoded"]["accuracy"] == 0.0
    assert saved["chance"] == 0.25 and saved["n_listeners"] == 1
    page = (eval_dir / "report.html").read_text()
    assert page.count("<h2>Listening test</h2>") == 1
    ref = re.search(r'data-condition="reference" data-kind="accuracy" data-value="([^"]+)"', page)
    assert float(ref.group(1)) == 1.0


def test_typed_answers(eval_dir):
    server = start_server(eval_dir, port=0, n_choices=0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = _get(base + "/?listener=bo")
        assert 'name="answer" required autocomplete="off"' in page and 'type="radio" name="answer"' not in page
        item = server.listening_test.item_at("bo", 0)
        assert _post(base + "/answer", {"listener": "bo", "pos": 0, "answer": f"  {item.label.upper()} ",
                                        "rating": 4}) in (200, 303)
    finally:
        server.shutdown()
    assert ListeningDB(eval_dir / "listening.sqlite").answers()[0]["correct"] == 1
    assert json.loads((eval_dir / "listening.json").read_text())["chance"] is None


def test_bad_input_is_named(eval_dir, tmp_path):
    with pytest.raises(DataError, match="not an evaluation folder"):
        load_items(tmp_path)
    (eval_dir / "audio" / "trial001_decoded.wav").unlink()
    with pytest.raises(DataError, match="trial001_decoded.wav.*missing"):
        load_items(eval_dir)
    sf.write(eval_dir / "audio" / "trial001_decoded.wav", np.zeros(8000), 8000)
    with pytest.raises(DataError, match="8000 Hz"):
        load_items(eval_dir)
    sf.write(eval_dir / "audio" / "trial001_decoded.wav", np.zeros(16000), 16000)  # silence is a valid recording
    assert len(load_items(eval_dir)[0]) == 12
    result = json.loads((eval_dir / "metrics.json").read_text())
    for row in result["trials"]:
        row.pop("wav_decoded")
        row.pop("wav_reference")
        row.pop("wav_resynthesis")
    (eval_dir / "metrics.json").write_text(json.dumps(result))
    with pytest.raises(DataError, match="lists no audio"):
        load_items(eval_dir)


def test_port_in_use_and_cli_message(eval_template, capsys):
    from neurovox.cli import main

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*in use"):
            start_server(eval_template, port=port)
        assert main(["listen", "--eval", str(eval_template), "--port", str(port)]) == 2
    assert "--port 0" in capsys.readouterr().err
    assert main(["listen", "--eval", str(eval_template / "nowhere")]) == 2
    assert "not an evaluation folder" in capsys.readouterr().err


def test_wilson_interval():
    lo, hi = wilson_ci(8, 10)  # reference value: 0.4902, 0.9433 (Wilson 1927; statsmodels proportion_confint)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)


def _chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)


def test_listening_in_headless_chromium(eval_dir):
    """A scripted listener in a real browser: starts, answers half, closes the browser, comes back and
    finishes; the database, listening.json and the report agree."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/setup.sh installs them when run as root)")
    pytest.importorskip("selenium", reason="needs selenium (pip install -e '.[test]')")
    from selenium.webdriver.common.by import By

    server = start_server(eval_dir, port=0, n_choices=4, seed=3)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    n_items = len(server.listening_test.items)
    rng = np.random.default_rng(0)

    def answer_some(driver, n):
        from selenium.webdriver.support import expected_conditions as EC
        from selenium.webdriver.support.ui import WebDriverWait

        for _ in range(n):
            radios = driver.find_elements(By.CSS_SELECTOR, 'input[name="answer"]')
            radios[int(rng.integers(len(radios)))].click()
            driver.find_elements(By.CSS_SELECTOR, 'input[name="rating"]')[int(rng.integers(5))].click()
            button = driver.find_element(By.ID, "next")
            button.click()
            WebDriverWait(driver, 20).until(EC.staleness_of(button))  # the next page has replaced this one

    try:
        driver = _chromium()
        try:
            driver.get(base)
            driver.find_element(By.NAME, "listener").send_keys("carla")
            driver.find_element(By.ID, "start").click()
            assert driver.find_element(By.TAG_NAME, "audio").get_attribute("src").startswith(base + "audio?")
            answer_some(driver, n_items // 2)
        finally:
            driver.quit()  # the listener closes the browser half-way
        driver = _chromium()
        try:
            driver.get(base + "?listener=carla")
            assert f"Recording {n_items // 2 + 1} of {n_items}" in driver.page_source  # nothing lost
            answer_some(driver, n_items - n_items // 2)
            assert driver.find_elements(By.ID, "done")
        finally:
            driver.quit()
    finally:
        server.shutdown()
        server.listening_test.db.close()
    answers = ListeningDB(eval_dir / "listening.sqlite").answers()
    assert sorted(a["position"] for a in answers) == list(range(n_items))
    summary = json.loads(json.dumps(summarize_answers(answers, 4)))
    assert json.loads((eval_dir / "listening.json").read_text()) == summary
    page = (eval_dir / "report.html").read_text()
    for cond, s in summary["conditions"].items():
        cell = re.search(rf'data-condition="{cond}" data-kind="accuracy" data-value="([^"]+)"', page)
        assert float(cell.group(1)) == pytest.approx(s["accuracy"]), cond
