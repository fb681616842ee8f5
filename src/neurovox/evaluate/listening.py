"""A blinded listening test over an evaluation folder: people identify the decoded words and rate them.

    server = start_server("runs/resnet/eval", port=8000)      # http://127.0.0.1:8000/
    ...; server.shutdown()

Every trial's WAVs in the folder (decoded, reference, the speech model's resynthesis and the no-neural
baseline, as `neurovox evaluate` wrote them) become items. Each listener gets all items in their own
random order (seeded by the listener's name, so a reload shows the same order) and, per item, a forced
choice among N words of the recording (the spoken word and N-1 others; N = 0: the word is typed) and a
1-5 naturalness rating. The page never says which condition an item is: its audio is served by position
in the listener's plan, not by file name.

Answers go to EVAL/listening.sqlite, committed one by one, so a closed browser or a stopped server loses
nothing: the listener continues where they stopped. After every answer EVAL/listening.json (accuracy and
rating per condition with 95 % CIs, chance) is rewritten and the same table replaces the "Listening test"
section of EVAL/report.html (both written atomically).
"""

from __future__ import annotations

import html
import json
import math
import random
import sqlite3
import threading
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

from neurovox.errors import ConfigError, DataError
from neurovox.utils.files import write_json_atomic, write_text_atomic

CONDITIONS = ("decoded", "reference", "resynthesis", "onset_mean")  # the WAVs of an evaluation, wav_<condition>
CONDITION_LABELS = {"decoded": "decoded", "reference": "reference (real speech)",
                    "resynthesis": "speech-model resynthesis", "onset_mean": "no-neural baseline"}
SAMPLE_RATE_HZ = 16_000
DEFAULT_CHOICES = 4
_BEGIN, _END = "<!-- listening:begin -->", "<!-- listening:end -->"


@dataclass(frozen=True)
class Item:
    """One WAV to judge: a test trial's audio under one condition."""

    item_id: int
    trial_index: int
    condition: str
    wav: Path
    label: str


def load_items(eval_dir: str | Path) -> tuple[list[Item], list[str]]:
    """The items of an evaluation folder and its word list; DataError (what is wrong, what to do) for a
    folder that is not a finished evaluation, lacks audio, holds WAVs at another rate, or has no words."""
    import soundfile as sf

    from neurovox.evaluate.asr import normalize_word

    eval_dir = Path(eval_dir)
    metrics = eval_dir / "metrics.json"
    if not metrics.is_file():
        raise DataError(f"{str(eval_dir)!r} is not an evaluation folder (no metrics.json). Run `neurovox evaluate "
                        "--run RUN --data FILE --out DIR` first and pass that DIR.")
    result = json.loads(metrics.read_text())
    trials = result.get("trials") or []
    if not any(row.get("wav_decoded") for row in trials):
        raise DataError(f"The evaluation in {str(eval_dir)!r} lists no audio (no trials with WAVs in metrics.json); "
                        "rerun `neurovox evaluate` to write them.")
    labels = [normalize_word(row.get("label", "")) for row in trials]
    if not all(labels):
        raise DataError(f"The test windows of {str(eval_dir)!r} carry no word labels (e.g. continuous SWPD tiles): "
                        "a word-identification listening test needs one word per trial.")
    items = []
    for row, label in zip(trials, labels):
        for cond in CONDITIONS:
            rel = row.get(f"wav_{cond}")
            if not rel:
                continue
            wav = eval_dir / rel
            if not wav.is_file():
                raise DataError(f"{str(wav)!r} is listed in metrics.json but missing: the evaluation's audio/ folder is "
                                "incomplete. Rerun `neurovox evaluate` into a fresh folder.")
            info = sf.info(str(wav))
            if info.samplerate != SAMPLE_RATE_HZ or info.channels != 1:
                raise DataError(f"{str(wav)!r} is {info.samplerate} Hz with {info.channels} channel(s); the listening "
                                f"test plays the evaluation's own {SAMPLE_RATE_HZ} Hz mono WAVs. Was the file replaced? "
                                "Rerun `neurovox evaluate`.")
            items.append(Item(len(items), int(row.get("index", len(items))), cond, wav, label))
    vocabulary = sorted(set((result.get("asr") or {}).get("vocabulary") or []) | set(labels))
    return items, vocabulary


class ListeningDB:
    """EVAL/listening.sqlite: each listener's plan (item order and the choices shown) and their answers."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(str(self.path), check_same_thread=False)
        with self._con:
            self._con.execute("CREATE TABLE IF NOT EXISTS plan (listener TEXT, position INTEGER, item_id INTEGER, "
                              "choices TEXT, PRIMARY KEY (listener, position))")
            self._con.execute("CREATE TABLE IF NOT EXISTS answer (listener TEXT, position INTEGER, item_id INTEGER, "
                              "condition TEXT, answer TEXT, correct INTEGER, rating INTEGER, answered_at TEXT, "
                              "PRIMARY KEY (listener, position))")

    def plan(self, listener: str, items: list[Item], vocabulary: list[str], n_choices: int,
             seed: int) -> list[tuple[int, list[str]]]:
        """[(item_id, choices)] by position: made once per listener (seeded by seed and name), then read back."""
        with self._lock, self._con:
            rows = self._con.execute("SELECT item_id, choices FROM plan WHERE listener=? ORDER BY position",
                                     (listener,)).fetchall()
            if rows:
                return [(int(i), json.loads(c)) for i, c in rows]
            rng = random.Random(seed * 1_000_003 + zlib.crc32(listener.encode()))
            order = list(range(len(items)))
            rng.shuffle(order)
            plan = []
            for pos, idx in enumerate(order):
                item = items[idx]
                choices: list[str] = []
                if n_choices > 0:
                    others = [w for w in vocabulary if w != item.label]
                    choices = rng.sample(others, min(n_choices - 1, len(others))) + [item.label]
                    rng.shuffle(choices)
                plan.append((item.item_id, choices))
                self._con.execute("INSERT INTO plan VALUES (?, ?, ?, ?)", (listener, pos, item.item_id, json.dumps(choices)))
            return plan

    def answered(self, listener: str) -> set[int]:
        with self._lock:
            return {int(p) for (p,) in self._con.execute("SELECT position FROM answer WHERE listener=?", (listener,))}

    def record(self, listener: str, position: int, item: Item, answer: str, rating: int) -> bool:
        """Store one answer (committed at once); returns whether the word was right. A second answer to the
        same position (a resubmitted form) is ignored: the first one counts."""
        from neurovox.evaluate.asr import normalize_word

        correct = normalize_word(answer) == item.label
        with self._lock, self._con:
            self._con.execute("INSERT OR IGNORE INTO answer VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                              (listener, position, item.item_id, item.condition, normalize_word(answer), int(correct),
                               int(rating), datetime.now(timezone.utc).isoformat(timespec="seconds")))
        return correct

    def answers(self) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._con.execute("SELECT listener, position, item_id, condition, answer, correct, rating FROM answer")
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def close(self) -> None:
        self._con.close()


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n (answers treated as independent)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summarize_answers(answers: list[dict[str, Any]], n_choices: int) -> dict[str, Any]:
    """Per condition: answers, word accuracy with its Wilson 95 % CI, mean naturalness rating with a 95 % CI."""
    out: dict[str, Any] = {"n_answers": len(answers), "n_listeners": len({a["listener"] for a in answers}),
                           "n_choices": n_choices, "chance": (1.0 / n_choices) if n_choices > 0 else None,
                           "conditions": {}}
    for cond in CONDITIONS:
        rows = [a for a in answers if a["condition"] == cond]
        if not rows:
            continue
        k = sum(int(a["correct"]) for a in rows)
        lo, hi = wilson_ci(k, len(rows))
        ratings = [float(a["rating"]) for a in rows]
        mean = sum(ratings) / len(ratings)
        sd = math.sqrt(sum((r - mean) ** 2 for r in ratings) / (len(ratings) - 1)) if len(ratings) > 1 else float("nan")
        half = 1.96 * sd / math.sqrt(len(ratings)) if len(ratings) > 1 else float("nan")
        out["conditions"][cond] = {"n": len(rows), "correct": k, "accuracy": k / len(rows), "ci_low": lo, "ci_high": hi,
                                   "rating_mean": mean, "rating_ci_low": mean - half, "rating_ci_high": mean + half}
    return out


def summary_html(summary: dict[str, Any]) -> str:
    """The report's "Listening test" section (between markers, so that it can be replaced)."""
    def f(x: Any) -> str:
        return "&ndash;" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"

    rows = "".join(
        f"<tr><td class=\"name\">{CONDITION_LABELS[c]}</td><td class=\"v\" data-condition=\"{c}\" data-kind=\"n\">{s['n']}</td>"
        f"<td class=\"v\" data-condition=\"{c}\" data-kind=\"accuracy\" data-value=\"{s['accuracy']!r}\">{f(s['accuracy'])}"
        f"<span class=\"ci\">95% CI [{f(s['ci_low'])}, {f(s['ci_high'])}]</span></td>"
        f"<td class=\"v\" data-condition=\"{c}\" data-kind=\"rating\" data-value=\"{s['rating_mean']!r}\">{f(s['rating_mean'])}"
        f"<span class=\"ci\">95% CI [{f(s['rating_ci_low'])}, {f(s['rating_ci_high'])}]</span></td></tr>"
        for c, s in summary["conditions"].items())
    chance = (f"chance {f(summary['chance'])} (forced choice among {summary['n_choices']} words)"
              if summary["chance"] is not None else "typed answers (no fixed chance)")
    return (f"{_BEGIN}<h2>Listening test</h2><p class=\"sub\">{summary['n_answers']} answers from "
            f"{summary['n_listeners']} listener(s), blinded and in random order (`neurovox listen`); {chance}</p>"
            "<table class=\"metrics listening\"><thead><tr><th>audio</th><th>answers</th><th>word identified</th>"
            f"<th>naturalness (1-5)</th></tr></thead><tbody>{rows}</tbody></table>"
            "<p class=\"note\">Accuracy CIs are Wilson intervals treating answers as independent; with several "
            "listeners per item they are too narrow by the listeners' agreement.</p>" + _END)


def write_back(eval_dir: Path, summary: dict[str, Any]) -> None:
    """EVAL/listening.json and the report's listening section, both replaced atomically."""
    write_json_atomic(eval_dir / "listening.json", summary)
    report = eval_dir / "report.html"
    if not report.is_file():
        return
    page = report.read_text()
    section = summary_html(summary)
    if _BEGIN in page and _END in page:
        page = page[:page.index(_BEGIN)] + section + page[page.index(_END) + len(_END):]
    else:
        page = page.replace("</main>", section + "\n</main>", 1)
    write_text_atomic(report, page)


_PAGE = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>neurovox listening test</title>"
         "<style>body{font:16px/1.5 sans-serif;max-width:640px;margin:40px auto;padding:0 16px}"
         "fieldset{border:1px solid #ccc;border-radius:6px;margin:14px 0}label{display:block;margin:4px 0}"
         "button{font-size:16px;padding:6px 18px}</style></head><body>{body}</body></html>")


class ListeningTest:
    """State shared by the request handlers: items, plans, database."""

    def __init__(self, eval_dir: str | Path, n_choices: int = DEFAULT_CHOICES, seed: int = 0):
        self.eval_dir = Path(eval_dir)
        self.items, self.vocabulary = load_items(self.eval_dir)
        if n_choices < 0 or n_choices == 1:
            raise ConfigError(f"--choices must be 0 (typed answers) or at least 2, got {n_choices}.")
        self.n_choices = min(n_choices, len(self.vocabulary))
        self.seed = seed
        self.db = ListeningDB(self.eval_dir / "listening.sqlite")

    def page(self, listener: str | None) -> str:
        if not listener:
            body = ("<h1>Listening test</h1><p>You will hear short recordings of single words, some of them "
                    "decoded from brain activity. For each, choose the word you hear and rate how natural it sounds.</p>"
                    "<form method=\"get\" action=\"/\"><label>Your name or code <input name=\"listener\" required "
                    "autofocus></label><button type=\"submit\" id=\"start\">Start</button></form>")
            return _PAGE.replace("{body}", body)
        plan = self.db.plan(listener, self.items, self.vocabulary, self.n_choices, self.seed)
        done = self.db.answered(listener)
        todo = [p for p in range(len(plan)) if p not in done]
        if not todo:
            return _PAGE.replace("{body}", f"<h1 id=\"done\">Thank you</h1><p>All {len(plan)} recordings answered.</p>")
        pos = todo[0]
        _, choices = plan[pos]
        q = urlencode({"listener": listener, "pos": pos})
        if choices:
            word = "".join(f"<label><input type=\"radio\" name=\"answer\" value=\"{html.escape(c)}\" required> "
                           f"{html.escape(c)}</label>" for c in choices)
        else:
            word = "<label>Word: <input name=\"answer\" required autocomplete=\"off\"></label>"
        rating = "".join(f"<label><input type=\"radio\" name=\"rating\" value=\"{r}\" required> {r}"
                         f"{' (not speech)' if r == 1 else ' (natural speech)' if r == 5 else ''}</label>"
                         for r in range(1, 6))
        body = (f"<h1>Recording {len(done) + 1} of {len(plan)}</h1><audio controls src=\"/audio?{q}\"></audio>"
                f"<form method=\"post\" action=\"/answer\"><input type=\"hidden\" name=\"listener\" "
                f"value=\"{html.escape(listener)}\"><input type=\"hidden\" name=\"pos\" value=\"{pos}\">"
                f"<fieldset><legend>Which word is it?</legend>{word}</fieldset>"
                f"<fieldset><legend>How natural does it sound?</legend>{rating}</fieldset>"
                "<button type=\"submit\" id=\"next\">Next</button></form>")
        return _PAGE.replace("{body}", body)

    def item_at(self, listener: str, pos: int) -> Item:
        plan = self.db.plan(listener, self.items, self.vocabulary, self.n_choices, self.seed)
        if not 0 <= pos < len(plan):
            raise KeyError(pos)
        return self.items[plan[pos][0]]

    def answer(self, listener: str, pos: int, answer: str, rating: int) -> None:
        if not 1 <= rating <= 5:
            raise ValueError("rating must be 1-5")
        self.db.record(listener, pos, self.item_at(listener, pos), answer, rating)
        write_back(self.eval_dir, summarize_answers(self.db.answers(), self.n_choices))


def _handler(test: ListeningTest) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the CLI prints its own status
            pass

        def _send(self, code: int, body: bytes, ctype: str = "text/html; charset=utf-8", **headers: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/":
                self._send(200, test.page(q.get("listener", "").strip() or None).encode())
            elif url.path == "/audio":
                try:
                    item = test.item_at(q["listener"], int(q["pos"]))
                except (KeyError, ValueError):
                    self._send(404, b"no such recording")
                    return
                self._send(200, item.wav.read_bytes(), "audio/wav")
            else:
                self._send(404, b"not found")

        def do_POST(self) -> None:
            if urlparse(self.path).path != "/answer":
                self._send(404, b"not found")
                return
            length = int(self.headers.get("Content-Length", 0))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            try:
                listener = form["listener"]
                test.answer(listener, int(form["pos"]), form["answer"], int(form["rating"]))
            except (KeyError, ValueError):
                self._send(400, b"incomplete answer: choose a word and a rating")
                return
            self._send(303, b"", Location="/?" + urlencode({"listener": listener}))

    return Handler


def start_server(eval_dir: str | Path, port: int = 8000, n_choices: int = DEFAULT_CHOICES,
                 seed: int = 0) -> ThreadingHTTPServer:
    """Serve the listening test of `eval_dir` on 127.0.0.1:`port` (0: any free port) in a background thread;
    `server.server_address[1]` is the port, `server.shutdown()` stops it."""
    test = ListeningTest(eval_dir, n_choices, seed)
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), _handler(test))
    except OSError as err:
        test.db.close()
        raise ConfigError(f"Cannot listen on 127.0.0.1:{port} ({err.strerror}): the port is in use or not allowed. "
                          "Choose another with --port (or --port 0 for any free one).") from err
    server.listening_test = test  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
