"""The listening-test page: one HTML file, its styles and script (:mod:`.script`) inline, the test embedded
as JSON that names only opaque ids (see :mod:`.build`).

The script builds the MUSHRA trials and A/B pairs from the embedded test description, keeps the answers
in the browser's localStorage (a reload keeps them), and offers them as JSON and CSV downloads whose
format :mod:`gan_enhance.evaluate.listening.results` reads. Audio is played from relative paths, so the
page works straight from disk with no server and no network.

Listening aids (after webMUSHRA): switching between the sounds of a trial keeps the playback position;
the reference's waveform is drawn above each trial and pair, a click on it starts playback there and a
drag selects a region that plays in a loop (``Loop`` button or the ``L`` key); keys ``R`` and ``1``-``9``
(MUSHRA) or ``A``/``B`` (A/B) play a sound, ``S`` or ``Esc`` stops. An unrated slider shows no handle
and says "not rated" (not a score of 0), and the next trial opens only when every sound is rated.

DOM hooks the tests (and other scripted listeners) use: ``.trial[data-trial]`` sections shown one at a
time, ``input.score[data-condition]`` sliders in ``.row`` elements (class ``unrated`` until rated,
``flagged`` when the listener tried to go on without them), ``#next``/``#prev``, ``#trial-message``,
``canvas.waveform``, ``button.loop``, ``.pair[data-pair]`` with radio inputs valued ``a``/``b``/``none``,
``#listener``, ``#download-json``, ``#download-csv`` and ``#reset`` (clears the stored answers).
"""

from __future__ import annotations

import html
import json

ANSWERS_FORMAT = "gan_enhance.listening_answers"
ANSWERS_VERSION = 2
CSV_COLUMNS = ["test_id", "listener", "test", "trial", "condition", "score", "choice", "played"]
GENERATOR_MARK = "gan_enhance.listening_test"  # tells a later build that the folder holds a test page

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #222; }
section { margin: 1.5rem 0; } h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ccc; }
.row { display: flex; align-items: center; gap: 0.75rem; margin: 0.4rem 0; padding: 0.1rem 0.25rem; }
output { width: 5rem; text-align: right; font-variant-numeric: tabular-nums; }
button.play { min-width: 6rem; } button.playing { background: #2a7; color: white; }
button.loop[aria-pressed=true] { background: #36c; color: white; }
input.score { -webkit-appearance: none; appearance: none; flex: 1; height: 0.5rem; border-radius: 0.25rem;
  background: #9bc; margin: 0.6rem 0; }
input.score::-webkit-slider-thumb { -webkit-appearance: none; appearance: none; width: 1.2rem; height: 1.2rem;
  border-radius: 50%; background: #235; border: 2px solid #fff; box-shadow: 0 0 2px #000; cursor: pointer; }
input.score::-moz-range-thumb { width: 1.2rem; height: 1.2rem; border-radius: 50%; background: #235;
  border: 2px solid #fff; cursor: pointer; }
.unrated input.score { background: repeating-linear-gradient(90deg, #ddd 0 6px, #f2f2f2 6px 12px); }
.unrated input.score::-webkit-slider-thumb { opacity: 0; }
.unrated input.score::-moz-range-thumb { opacity: 0; }
.unrated output { color: #888; font-style: italic; }
.flagged { outline: 2px solid #c33; outline-offset: 1px; border-radius: 4px; }
#trial-message { color: #c33; min-height: 1.2rem; }
.scale { display: flex; justify-content: space-between; font-size: 0.8rem; color: #666; margin-left: 7.5rem;
  margin-right: 6.5rem; }
canvas.waveform { width: 100%; height: 4rem; border: 1px solid #ccc; border-radius: 4px; cursor: crosshair;
  touch-action: none; display: block; margin: 0.5rem 0 0.25rem; }
.tools { font-size: 0.9rem; color: #444; }
.pair { border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 1rem; margin: 0.75rem 0; }
kbd { border: 1px solid #bbb; border-radius: 3px; padding: 0 0.3rem; font-size: 0.85rem; }
#status { font-weight: bold; }
"""

BODY = """
<h1 id="title"></h1>
<section id="intro">
<p>Use headphones in a quiet room and set a comfortable volume before you start; do not change it later.</p>
<p><b>Part 1.</b> Each trial has a <i>Reference</i> and several sounds. Rate how close each sound is to the
reference in quality, from 0 (bad) to 100 (excellent). One of the sounds is the reference itself: rate
it 100. Every sound must be rated before the next trial. <b>Part 2.</b> For each pair, say which of
A and B sounds better. When done, download your answers and send the file back.</p>
<p>Switching sounds keeps the playback position. Click the waveform to start there; drag across it to
choose a region, which plays in a loop while <i>Loop</i> is on. Keys: <kbd>R</kbd> reference,
<kbd>1</kbd>-<kbd>9</kbd> sounds, <kbd>A</kbd>/<kbd>B</kbd> in a pair (after clicking it), <kbd>L</kbd>
loop on/off, <kbd>S</kbd> or <kbd>Esc</kbd> stop.</p>
<p><label>Your name or code: <input id="listener" type="text" autocomplete="off"></label></p>
</section>
<section id="mushra-section"><h2>Part 1: quality ratings</h2><div id="trials"></div>
<p id="trial-message" role="alert"></p>
<p><button id="prev" type="button">Previous trial</button> <button id="next" type="button">Next trial</button></p>
</section>
<section id="ab-section"><h2>Part 2: preferences</h2><div id="pairs"></div></section>
<section id="finish"><h2>Finish</h2><p id="status"></p>
<button id="download-json" type="button">Download answers (JSON)</button>
<button id="download-csv" type="button">Download answers (CSV)</button>
<p><button id="reset" type="button">Clear all answers (next listener on this computer)</button></p></section>
"""


def render_page(config: dict) -> str:
    """The complete HTML page for a test description (see :mod:`~gan_enhance.evaluate.listening.build`)."""
    from gan_enhance.evaluate.listening.script import SCRIPT

    # "</" inside the JSON would end the <script> element early; "<\\/" is the same JSON string.
    embedded = json.dumps(config, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    script = (
        SCRIPT.replace("__FORMAT__", ANSWERS_FORMAT)
        .replace("__VERSION__", str(ANSWERS_VERSION))
        .replace("__COLUMNS__", json.dumps(CSV_COLUMNS))
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="generator" content="{GENERATOR_MARK}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(config.get('title', 'Listening test'))}</title>\n<style>{STYLE}</style>\n</head>\n"
        f'<body>{BODY}\n<script type="application/json" id="config">{embedded}</script>\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
