"""The listening-test page: one HTML file, its styles and script inline, the test embedded as JSON.

The script builds the MUSHRA trials and A/B pairs from the embedded test description, keeps the answers
in the browser's localStorage (a reload keeps them), and offers them as JSON and CSV downloads whose
format :mod:`gan_enhance.evaluate.listening.results` reads. Audio is played from relative paths, so the
page works straight from disk with no server.

DOM hooks the tests (and other scripted listeners) use: ``.trial[data-trial]`` sections shown one at a
time, ``input.score[data-condition]`` sliders, ``#next``/``#prev``, ``.pair[data-pair]`` with radio
inputs valued ``a``/``b``/``none``, ``#listener``, ``#download-json``, ``#download-csv`` and ``#reset``
(clears the stored answers).
"""

from __future__ import annotations

import html
import json

ANSWERS_FORMAT = "gan_enhance.listening_answers"
CSV_COLUMNS = ["test_id", "listener", "test", "trial", "item", "system", "score", "a", "b", "choice"]

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1rem auto; padding: 0 1rem; color: #222; }
section { margin: 1.5rem 0; } h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; border-bottom: 1px solid #ccc; }
.row { display: flex; align-items: center; gap: 0.75rem; margin: 0.4rem 0; }
.row input[type=range] { flex: 1; } output { width: 2.5rem; text-align: right; font-variant-numeric: tabular-nums; }
button.play { min-width: 6rem; } button.playing { background: #2a7; color: white; }
.unrated output { color: #c33; } .scale { display: flex; justify-content: space-between; font-size: 0.8rem;
  color: #666; margin-left: 6.75rem; margin-right: 3.25rem; }
.pair { border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 1rem; margin: 0.75rem 0; }
#status { font-weight: bold; }
"""

SCRIPT = r"""
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const storageKey = "gan_enhance:" + config.test_id;
let state = { listener: "", started: new Date().toISOString(), mushra: {}, ab: {} };
try { Object.assign(state, JSON.parse(localStorage.getItem(storageKey) || "{}")); } catch (e) { /* fresh start */ }
const save = () => { try { localStorage.setItem(storageKey, JSON.stringify(state)); } catch (e) { /* private mode */ } };
const el = (tag, attrs = {}, text = "") => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
};

function stopAll() {
  for (const a of document.querySelectorAll("audio")) a.pause();
  for (const b of document.querySelectorAll("button.playing")) b.classList.remove("playing");
}
// Switch to another stimulus of the same group at the same position, as MUSHRA tools do.
function toggle(group, audio, button) {
  if (!audio.paused) { stopAll(); return; }
  const playing = [...group.querySelectorAll("audio")].find(a => !a.paused);
  const position = playing ? playing.currentTime : 0;
  stopAll();
  audio.currentTime = Math.min(position, audio.duration || position);
  button.classList.add("playing");
  audio.play().catch(() => button.classList.remove("playing"));
  audio.onended = () => button.classList.remove("playing");
}
function stimulus(group, label, src) {
  const row = el("div", { class: "row" });
  const button = el("button", { class: "play", type: "button" }, label);
  const audio = el("audio", { class: "stimulus", src: src, preload: "auto" });
  button.addEventListener("click", () => toggle(group, audio, button));
  row.append(button, audio);
  return row;
}

function buildTrials() {
  const holder = document.getElementById("trials");
  config.mushra.forEach((trial, index) => {
    const box = el("div", { class: "trial", "data-trial": trial.trial });
    box.hidden = true;
    box.append(el("h3", {}, `Trial ${index + 1} of ${config.mushra.length}`));
    box.append(stimulus(box, "Reference", trial.reference));
    const scale = el("div", { class: "scale" });
    for (const word of ["Bad", "Poor", "Fair", "Good", "Excellent"]) scale.append(el("span", {}, word));
    box.append(scale);
    const scores = state.mushra[trial.trial] = state.mushra[trial.trial] || {};
    trial.conditions.forEach((condition, position) => {
      const row = stimulus(box, `Sound ${position + 1}`, condition.src);
      const slider = el("input", { type: "range", class: "score", min: 0, max: 100, step: 1,
                                   "data-condition": condition.id, "aria-label": `score of sound ${position + 1}` });
      const shown = el("output");
      const rated = condition.id in scores && scores[condition.id] !== null;
      slider.value = rated ? scores[condition.id] : 0;
      shown.textContent = rated ? slider.value : "-";
      row.classList.toggle("unrated", !rated);
      slider.addEventListener("input", () => {
        scores[condition.id] = Number(slider.value);
        shown.textContent = slider.value;
        row.classList.remove("unrated");
        save(); updateStatus();
      });
      row.append(slider, shown);
      box.append(row);
    });
    const stop = el("button", { type: "button" }, "Stop");
    stop.addEventListener("click", stopAll);
    box.append(stop);
    holder.append(box);
  });
}

let current = 0;
function show(index) {
  const trials = document.querySelectorAll(".trial");
  if (!trials.length) return;
  current = Math.max(0, Math.min(trials.length - 1, index));
  stopAll();
  trials.forEach((t, i) => { t.hidden = i !== current; });
  document.getElementById("prev").disabled = current === 0;
  document.getElementById("next").disabled = current === trials.length - 1;
}

function buildPairs() {
  const holder = document.getElementById("pairs");
  config.ab.forEach((pair, index) => {
    const box = el("div", { class: "pair", "data-pair": pair.pair });
    box.append(el("h3", {}, `Pair ${index + 1} of ${config.ab.length}`));
    const players = el("div", { class: "row" });
    players.append(stimulus(box, "A", pair.a.src), stimulus(box, "B", pair.b.src));
    box.append(players);
    const choices = el("div", { class: "row" });
    for (const [value, text] of [["a", "A is better"], ["b", "B is better"], ["none", "No preference"]]) {
      const label = el("label");
      const input = el("input", { type: "radio", name: pair.pair, value: value });
      input.checked = state.ab[pair.pair] === value;
      input.addEventListener("change", () => { state.ab[pair.pair] = value; save(); updateStatus(); });
      label.append(input, " " + text);
      choices.append(label);
    }
    box.append(choices);
    holder.append(box);
  });
}

function answers() {
  const mushra = [];
  for (const trial of config.mushra) {
    for (const c of trial.conditions) {
      const score = (state.mushra[trial.trial] || {})[c.id];
      mushra.push({ trial: trial.trial, item: trial.item, condition: c.id, system: c.system,
                    score: score === undefined ? null : score });
    }
  }
  const ab = config.ab.map(p => ({ pair: p.pair, item: p.item, a: p.a.system, b: p.b.system,
                                   choice: state.ab[p.pair] || null }));
  const complete = mushra.every(r => r.score !== null) && ab.every(r => r.choice !== null);
  return { format: "__FORMAT__", version: 1, test_id: config.test_id, title: config.title,
           listener: state.listener || "anonymous", started: state.started, finished: new Date().toISOString(),
           complete: complete, mushra: mushra, ab: ab };
}
function csvCell(value) {
  const text = value === null || value === undefined ? "" : String(value);
  return '"' + text.replace(/"/g, '""') + '"';
}
function toCsv(result) {
  const lines = [__COLUMNS__.join(",")];
  const common = [result.test_id, result.listener];
  for (const r of result.mushra) lines.push([...common, "mushra", r.trial, r.item, r.system, r.score, "", "", ""].map(csvCell).join(","));
  for (const r of result.ab) lines.push([...common, "ab", r.pair, r.item, "", "", r.a, r.b, r.choice].map(csvCell).join(","));
  return lines.join("\n") + "\n";
}
function download(extension, text, type) {
  const result = answers();
  const name = `answers-${config.test_id}-${result.listener.replace(/[^A-Za-z0-9_-]/g, "_")}.${extension}`;
  const link = el("a", { href: URL.createObjectURL(new Blob([text], { type: type })), download: name });
  document.body.append(link);
  link.click();
  link.remove();
}
function updateStatus() {
  const result = answers();
  const rated = result.mushra.filter(r => r.score !== null).length;
  const chosen = result.ab.filter(r => r.choice !== null).length;
  document.getElementById("status").textContent =
    `${rated} of ${result.mushra.length} ratings and ${chosen} of ${result.ab.length} preferences given` +
    (result.complete ? " - complete, please download your answers." : ".");
}

document.getElementById("title").textContent = config.title;
document.title = config.title;
const listener = document.getElementById("listener");
listener.value = state.listener;
listener.addEventListener("input", () => { state.listener = listener.value.trim(); save(); });
buildTrials();
buildPairs();
document.getElementById("mushra-section").hidden = config.mushra.length === 0;
document.getElementById("ab-section").hidden = config.ab.length === 0;
document.getElementById("prev").addEventListener("click", () => show(current - 1));
document.getElementById("next").addEventListener("click", () => show(current + 1));
document.getElementById("download-json").addEventListener("click",
  () => download("json", JSON.stringify(answers(), null, 1), "application/json"));
document.getElementById("download-csv").addEventListener("click", () => download("csv", toCsv(answers()), "text/csv"));
// Answers persist in this browser until cleared, so a second listener on the same computer starts here.
document.getElementById("reset").addEventListener("click", () => {
  if (!confirm("Clear all answers on this page? Download them first if you have not.")) return;
  localStorage.removeItem(storageKey);
  location.reload();
});
show(0);
updateStatus();
save();
document.body.dataset.ready = "true";
"""

BODY = """
<h1 id="title"></h1>
<section id="intro">
<p>Use headphones in a quiet room and set a comfortable volume before you start; do not change it later.</p>
<p><b>Part 1.</b> Each trial has a <i>Reference</i> and several sounds. Rate how close each sound is to the
reference in quality, from 0 (bad) to 100 (excellent). One of the sounds is the reference itself: rate
it 100. Buttons switch between sounds at the same position. <b>Part 2.</b> For each pair, say which of
A and B sounds better. When done, download your answers and send the file back.</p>
<p><label>Your name or code: <input id="listener" autocomplete="off"></label></p>
</section>
<section id="mushra-section"><h2>Part 1: quality ratings</h2><div id="trials"></div>
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
    # "</" inside the JSON would end the <script> element early; "<\\/" is the same JSON string.
    embedded = json.dumps(config, ensure_ascii=False).replace("</", "<\\/")
    script = SCRIPT.replace("__FORMAT__", ANSWERS_FORMAT).replace("__COLUMNS__", json.dumps(CSV_COLUMNS))
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(config.get('title', 'Listening test'))}</title>\n<style>{STYLE}</style>\n</head>\n"
        f'<body>{BODY}\n<script type="application/json" id="config">{embedded}</script>\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
