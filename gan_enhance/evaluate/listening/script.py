"""The listening page's script (plain JavaScript, no library, inlined by :func:`.page.render_page`).

``Player`` runs one group of sounds (a MUSHRA trial or an A/B pair): it switches between them at the same
position, draws the reference's waveform with the playhead and the loop region, and loops that region.
The rest builds the trials and pairs, stores the answers in localStorage and downloads them.
"""

SCRIPT = r"""
"use strict";
const config = JSON.parse(document.getElementById("config").textContent);
const storageKey = "gan_enhance:" + config.test_id;
let state = { listener: "", started: new Date().toISOString(), mushra: {}, ab: {}, played: {} };
try { Object.assign(state, JSON.parse(localStorage.getItem(storageKey) || "{}")); } catch (e) { /* fresh start */ }
const save = () => { try { localStorage.setItem(storageKey, JSON.stringify(state)); } catch (e) { /* private mode */ } };
const el = (tag, attrs = {}, text = "") => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
};
const outlines = Object.fromEntries(config.mushra.map(t => [t.trial, t]));

const players = [];
let activePlayer = null;
const stopAll = () => players.forEach(p => p.stop());

class Player {
  constructor(box, outline, seconds) {
    Object.assign(this, { box, outline, seconds, stimuli: [], region: null, loop: false, position: 0, playing: null });
    box.addEventListener("pointerdown", () => { activePlayer = this; });
    players.push(this);
  }
  duration() {
    const known = this.stimuli.map(s => s.audio.duration).find(d => Number.isFinite(d) && d > 0);
    return this.seconds || known || 1;
  }
  // A row with a play button for one sound, played with key `key`; `onPlay` runs when it starts.
  add(key, label, src, onPlay = null) {
    const row = el("div", { class: "row" });
    const button = el("button", { class: "play", type: "button" }, label);
    const audio = el("audio", { class: "stimulus", src: src, preload: "auto" });
    const stimulus = { key, audio, button, onPlay };
    button.addEventListener("click", () => this.toggle(stimulus));
    this.stimuli.push(stimulus);
    row.append(button, audio);
    return row;
  }
  inside(time) {
    if (this.region) return time >= this.region[0] && time < this.region[1] ? time : this.region[0];
    return time < this.duration() - 0.01 ? time : 0;
  }
  toggle(stimulus) { if (this.playing === stimulus) this.stop(); else this.start(stimulus); }
  start(stimulus) {
    const position = this.playing ? this.playing.audio.currentTime : this.position;
    stopAll();
    activePlayer = this;
    this.playing = stimulus;
    stimulus.audio.currentTime = this.inside(position);
    stimulus.button.classList.add("playing");
    if (stimulus.onPlay) stimulus.onPlay();
    stimulus.audio.play().catch(() => { if (this.playing === stimulus) this.stop(); });
  }
  stop() {
    if (!this.playing) return;
    this.position = this.playing.audio.currentTime;
    this.playing.audio.pause();
    this.playing.button.classList.remove("playing");
    this.playing = null;
    this.draw();
  }
  seek(time) {
    this.position = time;
    if (this.playing) this.playing.audio.currentTime = this.inside(time);
    this.draw();
  }
  // Called every few milliseconds while playing: keep playback inside the loop region.
  step() {
    const audio = this.playing.audio;
    const end = this.region ? this.region[1] : this.duration();
    if (audio.currentTime >= end || audio.ended) {
      if (this.loop) {
        audio.currentTime = this.region ? this.region[0] : 0;
        if (audio.paused) audio.play().catch(() => this.stop());
      } else {
        this.stop();
        this.position = this.region ? this.region[0] : 0;
      }
    }
    this.draw();
  }
  setLoop(on) {
    this.loop = on;
    this.loopButton.setAttribute("aria-pressed", String(on));
  }
  // The reference's waveform, the loop region and the playhead, with click-to-seek and drag-to-select.
  tools() {
    const canvas = el("canvas", { class: "waveform", width: 800, height: 64, title: "click: play from here; drag: loop region" });
    const bar = el("div", { class: "row tools" });
    this.loopButton = el("button", { class: "loop", type: "button", "aria-pressed": "false" }, "Loop");
    this.loopButton.addEventListener("click", () => this.setLoop(!this.loop));
    const clear = el("button", { class: "clear-region", type: "button" }, "Whole sound");
    clear.addEventListener("click", () => { this.region = null; this.draw(); });
    const stop = el("button", { class: "stop", type: "button" }, "Stop");
    stop.addEventListener("click", stopAll);
    this.label = el("span", { class: "region" });
    bar.append(stop, this.loopButton, clear, this.label);
    this.canvas = canvas;
    const timeAt = event => {
      const box = canvas.getBoundingClientRect();
      return Math.max(0, Math.min(1, (event.clientX - box.left) / box.width)) * this.duration();
    };
    let pressedAt = null;
    canvas.addEventListener("pointerdown", event => { pressedAt = timeAt(event); canvas.setPointerCapture(event.pointerId); });
    canvas.addEventListener("pointermove", event => {
      if (pressedAt === null) return;
      const time = timeAt(event);
      if (Math.abs(time - pressedAt) > 0.01 * this.duration()) {
        this.region = [Math.min(time, pressedAt), Math.max(time, pressedAt)];
        this.draw();
      }
    });
    canvas.addEventListener("pointerup", event => {
      if (pressedAt === null) return;
      const time = timeAt(event), dragged = Math.abs(time - pressedAt) > 0.01 * this.duration();
      pressedAt = null;
      if (dragged) { this.setLoop(true); this.seek(this.region[0]); return; }
      // A click outside the loop region leaves the loop; inside it, playback restarts there.
      if (this.region && (time < this.region[0] || time >= this.region[1])) this.region = null;
      this.seek(time);
      if (!this.playing && this.stimuli.length) this.start(this.stimuli[0]);
    });
    return [canvas, bar];
  }
  draw() {
    if (!this.canvas) return;
    const ctx = this.canvas.getContext("2d"), w = this.canvas.width, h = this.canvas.height;
    const scale = w / this.duration();
    ctx.clearRect(0, 0, w, h);
    if (this.region) {
      ctx.fillStyle = "rgba(51, 102, 204, 0.2)";
      ctx.fillRect(this.region[0] * scale, 0, (this.region[1] - this.region[0]) * scale, h);
    }
    ctx.fillStyle = "#789";
    const step = w / this.outline.length;
    this.outline.forEach((v, i) => { const bar = Math.max(1, v / 100 * (h - 4)); ctx.fillRect(i * step, (h - bar) / 2, Math.max(1, step - 0.5), bar); });
    const time = this.playing ? this.playing.audio.currentTime : this.position;
    ctx.fillStyle = "#c33";
    ctx.fillRect(time * scale - 1, 0, 2, h);
    this.label.textContent = this.region ? `loop region ${this.region[0].toFixed(2)}-${this.region[1].toFixed(2)} s` : "";
  }
}
setInterval(() => players.forEach(p => { if (p.playing) p.step(); }), 20);

function buildTrials() {
  const holder = document.getElementById("trials");
  config.mushra.forEach((trial, index) => {
    const box = el("div", { class: "trial", "data-trial": trial.trial });
    box.hidden = true;
    const player = box.player = new Player(box, trial.waveform, trial.seconds);
    box.append(el("h3", {}, `Trial ${index + 1} of ${config.mushra.length}`), ...player.tools());
    box.append(player.add("r", "Reference", trial.reference));
    const scale = el("div", { class: "scale" });
    for (const word of ["Bad", "Poor", "Fair", "Good", "Excellent"]) scale.append(el("span", {}, word));
    box.append(scale);
    const scores = state.mushra[trial.trial] = state.mushra[trial.trial] || {};
    const played = state.played[trial.trial] = state.played[trial.trial] || {};
    trial.conditions.forEach((condition, position) => {
      const row = player.add(String(position + 1), `Sound ${position + 1}`, condition.src,
                             () => { played[condition.id] = true; save(); });
      const slider = el("input", { type: "range", class: "score", min: 0, max: 100, step: 1,
                                   "data-condition": condition.id, "aria-label": `score of sound ${position + 1}` });
      const shown = el("output");
      const rated = typeof scores[condition.id] === "number";
      // An unrated slider has no visible handle and says so; its hidden value is not a score.
      slider.value = rated ? scores[condition.id] : 50;
      shown.textContent = rated ? slider.value : "not rated";
      row.classList.toggle("unrated", !rated);
      const rate = () => {
        scores[condition.id] = Number(slider.value);
        shown.textContent = slider.value;
        row.classList.remove("unrated", "flagged");
        save(); updateStatus();
      };
      slider.addEventListener("input", rate);
      // A click exactly on the hidden handle's value fires no input event, but is a rating.
      slider.addEventListener("pointerup", () => { if (row.classList.contains("unrated")) rate(); });
      row.append(slider, shown);
      box.append(row);
    });
    holder.append(box);
    player.draw();
  });
}

let current = 0;
function show(index) {
  const trials = document.querySelectorAll(".trial");
  if (!trials.length) return;
  current = Math.max(0, Math.min(trials.length - 1, index));
  stopAll();
  trials.forEach((t, i) => { t.hidden = i !== current; });
  activePlayer = trials[current].player;
  document.getElementById("trial-message").textContent = "";
  document.getElementById("prev").disabled = current === 0;
  document.getElementById("next").disabled = current === trials.length - 1;
}
function next() {
  const box = document.querySelectorAll(".trial")[current];
  const missing = [...box.querySelectorAll(".row.unrated")];
  if (missing.length) {
    missing.forEach(row => row.classList.add("flagged"));
    const names = missing.map(row => row.querySelector("button.play").textContent).join(", ");
    document.getElementById("trial-message").textContent = `Rate every sound before going on (not rated: ${names}).`;
    return;
  }
  show(current + 1);
}

function buildPairs() {
  const holder = document.getElementById("pairs");
  config.ab.forEach((pair, index) => {
    const box = el("div", { class: "pair", "data-pair": pair.pair });
    const source = outlines[pair.waveform_of] || { waveform: [], seconds: 0 };
    const player = new Player(box, source.waveform, source.seconds);
    box.append(el("h3", {}, `Pair ${index + 1} of ${config.ab.length}`), ...player.tools());
    const sides = el("div", { class: "row" });
    sides.append(player.add("a", "A", pair.a), player.add("b", "B", pair.b));
    box.append(sides);
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
    player.draw();
  });
}

document.addEventListener("keydown", event => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.target.matches("input[type=text], textarea")) return;
  const key = event.key.toLowerCase(), player = activePlayer;
  if (key === "escape" || key === "s") { stopAll(); return; }
  if (!player) return;
  if (key === "l") { player.setLoop(!player.loop); return; }
  const stimulus = player.stimuli.find(s => s.key === key);
  if (stimulus) { event.preventDefault(); player.toggle(stimulus); }
});

function answers() {
  const mushra = [];
  for (const trial of config.mushra) {
    for (const c of trial.conditions) {
      const score = (state.mushra[trial.trial] || {})[c.id];
      const played = Boolean((state.played[trial.trial] || {})[c.id]);
      mushra.push({ trial: trial.trial, condition: c.id, score: typeof score === "number" ? score : null, played });
    }
  }
  const ab = config.ab.map(p => ({ pair: p.pair, choice: state.ab[p.pair] || null }));
  const complete = mushra.every(r => r.score !== null) && ab.every(r => r.choice !== null);
  return { format: "__FORMAT__", version: __VERSION__, test_id: config.test_id, title: config.title,
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
  for (const r of result.mushra) lines.push([...common, "mushra", r.trial, r.condition, r.score, "", r.played].map(csvCell).join(","));
  for (const r of result.ab) lines.push([...common, "ab", r.pair, "", "", r.choice, ""].map(csvCell).join(","));
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
document.getElementById("next").addEventListener("click", next);
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
