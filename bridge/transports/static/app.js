// Continuo control room: plain JS against the daemon's HTTP API (docs/openapi.json); no build step, no CDN.
"use strict";

const $ = (id) => document.getElementById(id);
const jobs = new Map(); // job_id -> {data, el}
const TERMINAL = new Set(["done", "failed", "cancelled", "interrupted"]);
const SAMPLE_RATES = [22050, 32000, 44100, 48000, 88200, 96000, 176400, 192000];
let audioContext = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function api(method, path, body, contentType = "application/json") {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = contentType === "application/json" ? JSON.stringify(body) : body;
    init.headers["content-type"] = contentType;
  }
  const response = await fetch(path, init);
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: { message: `HTTP ${response.status}` } }; }
  return { ok: response.ok, status: response.status, data };
}

function showFormError(message) {
  const box = $("form-error");
  box.textContent = message || "";
  box.hidden = !message;
}

// -- the top line: model, device, memory, smoke warning; its state live from the event stream ----------------
let daemonStatus = null; // the last /api/status: {status, daemon}

async function loadStatus() {
  const { ok, data } = await api("GET", "/api/status");
  if (!ok) { $("daemon-line").textContent = "status unavailable: " + (data.error || {}).message; return; }
  const status = (data.events.find((e) => e.event === "status") || {}).args || {};
  const daemon = data.daemon || {};
  daemonStatus = { status, daemon };
  showHeader();
  $("smoke-warning").hidden = !daemon.smoke_model;
  showStorage((data.events.find((e) => e.event === "storage") || {}).args);
  applyFormLimits(data.form || {});
  showStemsState(daemon.stems_unavailable || "");
  if (!$("sample-rate").dataset.filled && daemon.session_sample_rate) {
    $("sample-rate").value = String(daemon.session_sample_rate);
    $("bpm").placeholder = String(daemon.session_bpm);
    $("bpm").title = `empty: the input file's own tempo (a file Continuo made), else the session's (${daemon.session_bpm})`;
    $("sample-rate").dataset.filled = "1";
  }
}

// The state is the jobs the page knows (every client's: the event stream carries them all, the history the ones
// from before the page loaded), so it changes with each event; the daemon's own word counts while it loads a model.
function liveState(daemonState) {
  if (daemonState !== "idle" && daemonState !== "busy") return daemonState;
  let running = 0, waiting = 0;
  for (const job of jobs.values()) {
    if (job.data.status === "running") running += 1;
    else if (job.data.status === "queued") waiting += 1;
  }
  if (!running && !waiting) return "idle";
  return [running ? `rendering ${running} job${running > 1 ? "s" : ""}` : "",
          waiting ? `${waiting} waiting` : ""].filter(Boolean).join(", ");
}

function showHeader() {
  if (!daemonStatus) return;
  const { status, daemon } = daemonStatus;
  const line = $("daemon-line");
  line.textContent =
    `model ${daemon.model || status.model} on ${daemon.device || "?"} · ${liveState(status.state)} · ` +
    `memory ${status.mem_used_gb.toFixed(1)} of ${status.mem_total_gb.toFixed(1)} GB · Continuo ${daemon.version || ""}`;
}

// where renders live, the space they take and what is free (/continuo/storage, after status)
function megabytes(mb) {
  return mb >= 1000 ? `${(mb / 1000).toFixed(1)} GB` : `${mb.toFixed(1)} MB`;
}

function showStorage(storage) {
  if (!storage) return;
  const auto = storage.auto_trash_days ? `auto-trash after ${storage.auto_trash_days} days` : "auto-trash off";
  $("storage-line").textContent =
    `renders ${megabytes(storage.renders_mb)} in ${storage.jobs} job(s), kept until you prune them · ` +
    `trash ${megabytes(storage.trash_mb)} · ${megabytes(storage.free_mb)} free · ${auto} · ${storage.output_root}`;
  $("storage-line").classList.toggle("low", storage.free_mb < 1000);
}

async function loadLibrary() {
  const { ok, data } = await api("GET", "/api/presets");
  if (!ok) return;
  const list = $("preset-list"), midi = $("midi-list");
  list.replaceChildren(); midi.replaceChildren();
  const presets = data.events.filter((e) => e.event === "presets");
  for (const select of [$("preset"), $("jam-preset")]) { // the form's and the jam's
    const chosen = select.value || "default";
    select.replaceChildren(...presets.map((e) => el("option", { value: e.args.name, text: e.args.name })));
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : (select.options[0] || {}).value;
  }
  for (const event of presets) list.append(el("li", { text: event.args.name }, el("small", { text: event.args.description })));
  for (const map of data.midi_maps || []) midi.append(el("li", { text: map.name }, el("small", { text: map.description })));
  if (!(data.midi_maps || []).length) midi.append(el("li", { class: "muted", text: "none" }));
}

// -- the form's limits and its refusals, in plain words --------------------------------------------------------
// Each number field takes the range /api/status gives (the schema's, capped by this daemon's max_bars and
// max_variations), and the page refuses a value outside it before sending, naming the field as the page labels it.
const FIELDS = { // schema name -> [the page's control, its label, the unit after a number]
  bars: ["length", "Length", " bars"], beats: ["length", "Length", " beats"], count: ["count", "Variations", ""],
  bpm: ["bpm", "Tempo", " BPM"], beats_per_bar: ["beats-per-bar", "Metre", " beats per bar"], seed: ["seed", "Seed", ""],
  key: ["key", "Key", ""], stems: ["stems", "Stems", ""], sample_rate: ["sample-rate", "Rate", ""],
  prompt: ["prompt", "Prompt", ""], preset: ["preset", "Preset", ""], input_path: ["input-path", "Input", ""],
};
let formLimits = {};

function applyFormLimits(form) {
  formLimits = form;
  for (const [name, range] of Object.entries(form)) {
    const input = FIELDS[name] && $(FIELDS[name][0]);
    if (!input) continue;
    if (range.min != null) input.min = String(range.min);
    if (range.max != null) input.max = String(range.max);
  }
}

// "Length must be from 0.25 to 64 bars, not 0": the field's value checked against its range; "" when it fits
function outOfRange(name, text) {
  const range = formLimits[name], [, label, unit] = FIELDS[name];
  const value = Number(text);
  if (!range || text.trim() === "") return "";
  if (Number.isNaN(value) || (range.min != null && value < range.min) || (range.max != null && value > range.max)
      || (/whole/.test(range.rule || "") && !Number.isInteger(value))) {
    const whole = /whole/.test(range.rule || "") ? "a whole number " : "";
    return `${label} must be ${whole}from ${range.min} to ${range.max}${unit}, not ${text.trim()}.`;
  }
  return "";
}

function formProblem(op) {
  const input = $("input-path").value.trim();
  if ((op === "continue" || op === "stems") && !input) {
    return op === "continue" ? "Drop or choose a file first: Continue carries on from the end of an audio file."
                             : "Drop or choose a file first: Stems splits an audio file.";
  }
  const checks = [["bpm", $("bpm").value], ["beats_per_bar", $("beats-per-bar").value], ["seed", $("seed").value]];
  if (op !== "stems" && $("length-unit").value === "bars") checks.unshift(["bars", $("length").value || " "]);
  if (op === "variations") checks.push(["count", $("count").value]);
  for (const [name, text] of checks) {
    const problem = name === "bars" && text.trim() === "" ? "Length: give a number of bars." : outOfRange(name, text);
    if (problem) return problem;
  }
  return "";
}

// The daemon's refusal (HTTP gives the field, the rule and the value) said with the page's label for that field.
function refusalText(op, error) {
  const field = FIELDS[error.field];
  if (!field) return `${op}: ${error.message}`;
  return `${field[1]} must be ${error.rule}${field[2]}, not ${error.got}.`;
}

// Stems cannot work without their weights (offline, never downloaded): the buttons are greyed and say why, short.
let stemsReason = "";
function showStemsState(reason, within = document) {
  stemsReason = reason;
  for (const button of within.querySelectorAll("#stems-button, [data-chain='stems']")) {
    button.disabled = !!reason;
    button.title = reason ? `Stems are off: ${reason}` : "split into stems";
  }
  if (within === document) $("stems-note").textContent = reason ? `Stems off: ${reason}.` : "";
}

// -- requests ---------------------------------------------------------------------------------------------
// web-<op>-<YYYYMMDD>-<HHMMSS>-<8 hex>: the date and time (not a counter) and 32 random bits from the browser's
// crypto, so ids stay unique across reloads, reboots and machines; the daemon refuses a reused id with another
// request (id_conflict) rather than hand back an old take
function newJobId(op) {
  const now = new Date();
  const two = (n) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}${two(now.getMonth() + 1)}${two(now.getDate())}-` +
    `${two(now.getHours())}${two(now.getMinutes())}${two(now.getSeconds())}`;
  const random = Array.from(crypto.getRandomValues(new Uint8Array(4)), (b) => b.toString(16).padStart(2, "0")).join("");
  return `web-${op.slice(0, 4)}-${stamp}-${random}`;
}

function numberOrText(value) {
  return value.trim() !== "" && !Number.isNaN(Number(value)) ? Number(value) : value;
}

function formSettings(op) {
  const settings = {};
  if (op === "stems") return settings;
  // Tempo, metre and key go only when filled in: the daemon then takes an input file's own (a file it made) or
  // the session's, and no key is ever invented.
  if ($("bpm").value.trim()) settings.bpm = numberOrText($("bpm").value);
  if ($("beats-per-bar").value.trim()) {
    settings.beats_per_bar = numberOrText($("beats-per-bar").value);
    settings.beat_unit = numberOrText($("beat-unit").value);
  }
  settings.sample_rate = numberOrText($("sample-rate").value);
  if ($("key").value.trim()) settings.key = $("key").value.trim();
  if ($("seed").value.trim()) settings.seed = numberOrText($("seed").value);
  if ($("loop").checked) settings.loop = 1;
  if ($("stream").checked) settings.stream = 1;
  if ($("stems").value.trim()) settings.stems = $("stems").value.trim();
  if ($("length-unit").value === "beats") settings.beats = numberOrText($("length").value);
  if (op !== "generate" && $("prompt").value.trim()) settings.prompt = $("prompt").value;
  if ($("midi").checked && op !== "variations") settings.midi = 1;
  return settings;
}

async function submit(op, source = "") {
  showFormError(formProblem(op));
  if (formProblem(op)) return;
  ensureAudio();
  const job_id = newJobId(op);
  const body = { op, job_id };
  const length = numberOrText($("length").value);
  const bars = $("length-unit").value === "beats" ? 1 : length;
  const input = $("input-path").value.trim();
  if (op === "generate") Object.assign(body, { preset: $("preset").value, prompt: $("prompt").value, bars });
  if (op === "continue") Object.assign(body, { preset: $("preset").value, input_path: input, bars });
  if (op === "variations") Object.assign(body, { preset: $("preset").value, input_path: input,
                                                  count: numberOrText($("count").value), bars });
  if (op === "stems") { body.input_path = input; if ($("stems").value.trim()) body.stems = $("stems").value.trim(); }
  if (op === "stems" && $("midi").checked) body.midi = 1;
  body.settings = formSettings(op);
  if (op === "stems") delete body.settings;
  const { ok, data } = await api("POST", "/api/jobs", body);
  if (!ok) { showFormError(data.error.field ? refusalText(op, data.error) : `${op}: ${data.error.message}`); return; }
  // The event stream can bring this job's queued, progress, outputs, even its done, before this reply: keep them.
  const live = jobs.get(job_id)?.data;
  upsertJob({ job_id, op, status: live?.status ?? "queued", outputs: live?.outputs ?? [], source: source || undefined,
              params: { prompt: body.prompt || body.settings?.prompt || "", bars: op === "stems" ? undefined : bars,
                        input_path: body.input_path, settings: body.settings || {}, loop: !!(body.settings || {}).loop } });
  for (const event of data.events) handleEvent(event);
}

async function upload(file) {
  showFormError("");
  $("drop-state").textContent = `uploading ${file.name}…`;
  const { ok, data } = await api("POST", `/api/inputs?name=${encodeURIComponent(safeName(file.name))}`, file,
                                 "application/octet-stream");
  $("drop-state").textContent = ok ? `${file.name}: ${data.seconds.toFixed(1)} s uploaded` : "";
  if (!ok) { showFormError(`upload: ${data.error.message}`); return; }
  $("input-path").value = data.path;
  analyzeInput(data.path, file);
}

function safeName(name) {
  return name.replace(/[^A-Za-z0-9 ._-]/g, "_").replace(/^[^A-Za-z0-9]+/, "").slice(0, 120) || "clip.wav";
}


// -- jobs ---------------------------------------------------------------------------------------------------
function upsertJob(data) {
  let job = jobs.get(data.job_id);
  if (!job) {
    job = { data: { outputs: [], ...data }, el: null, outputs: new Map(), preview: null };
    jobs.set(data.job_id, job);
    job.el = renderJob(job);
    $("jobs").prepend(job.el);
  } else {
    Object.assign(job.data, data);
  }
  updateJob(job);
  for (const output of data.outputs || []) addOutput(job, output);
  showHeader();
  return job;
}

function renderJob(job) {
  const d = job.data;
  const cancel = el("button", { class: "small cancel", type: "button", text: "cancel",
                                 "aria-label": `cancel ${d.op || "job"} ${d.job_id}` });
  cancel.addEventListener("click", () => cancelJob(d.job_id));
  const node = el("div", { class: "job", "data-job-id": d.job_id },
    el("header", {}, el("span", { class: "title" }), el("span", { class: "op", text: d.op }),
       el("span", { class: "status" }), el("span", { class: "stage muted" }), cancel),
    el("div", { class: "prompt" }), el("div", { class: "id muted", text: d.job_id }),
    el("progress", { max: "1", value: "0" }),
    el("div", { class: "error", role: "alert" }), el("div", { class: "outputs" }));
  return node;
}

function updateJob(job) {
  const d = job.data, node = job.el;
  node.className = `job ${d.status}`;
  let status = d.status;
  if (d.status === "queued" && d.position !== undefined) status = d.position === 0 ? "next" : `queued, position ${d.position}`;
  if (d.status === "done" && d.elapsed_s != null) status = `done in ${Number(d.elapsed_s).toFixed(1)} s` +
    (d.op === "train_style" ? "" : ` (seed ${d.seed})`);
  if (node.querySelector(".status").textContent !== status && (TERMINAL.has(d.status) || d.status === "running")
      && job.announced !== d.status) {
    job.announced = d.status; // once per change: a screen reader hears "started" and how it ended, not each step
    $("announce").textContent = `${d.op || "job"} ${d.job_id}: ${status}`;
  }
  node.querySelector(".status").textContent = status;
  node.querySelector(".stage").textContent = d.status === "running" && d.stage ? d.stage : "";
  node.querySelector(".title").textContent = cardTitle(job);
  node.querySelector(".prompt").textContent = musicalFacts(d.params || {}, d.source).join(" · ");
  const bar = node.querySelector("progress");
  bar.value = d.status === "done" ? 1 : d.fraction || 0;
  bar.hidden = TERMINAL.has(d.status) && d.status !== "done";
  node.querySelector(".error").textContent = d.error_message ? `${d.error_code}: ${d.error_message}` : "";
  node.querySelector(".cancel").hidden = TERMINAL.has(d.status);
}

// A card is titled with its musical name (the first output's DAW name: prompt words, bars, BPM, key), or, until
// an output exists, the prompt's words; the job id stays below it, small.
function cardTitle(job) {
  const first = [...job.outputs.values()][0];
  if (first && first.dataset.dawName) return first.dataset.dawName.replace(/\.wav$/, "");
  const params = job.data.params || {};
  return (params.prompt || params.settings?.prompt || "").trim() || job.data.op || "job";
}

// prompt · bars · BPM · key · the source clip: the tempo and key the job asked for, else its context (the session's,
// or, for a file Continuo made, that file's, as the daemon journalled it); no key, none shown.
function musicalFacts(params, source) {
  const settings = params.settings || {}, context = params.context || {};
  const bpm = settings.bpm ?? context.bpm, key = settings.key ?? context.key;
  const bars = params.bars ? `${Number(params.bars)} bar${Number(params.bars) === 1 ? "" : "s"}` : "";
  const clip = source || (params.input_path || "").split("/").pop();
  return [params.prompt || settings.prompt, bars, bpm ? `${Number(bpm)} BPM` : "", key || "", clip ? `from ${clip}` : ""]
    .filter(Boolean);
}

function statusForError(code) {
  return code === "cancelled" ? "cancelled" : code === "interrupted" ? "interrupted" : "failed";
}

function handleEvent(event) {
  const a = event.args;
  if (!a || !a.job_id) return;
  if (event.event === "training" || a.job_id === training.jobId) showTraining(event);
  // A job this page has not seen appears when it is accepted (any client's); a refusal is shown at the form.
  if (!jobs.has(a.job_id) && event.event !== "queued") return;
  const job = jobs.get(a.job_id) || upsertJob({ job_id: a.job_id, op: "", status: "queued", params: {} });
  const d = job.data;
  if (event.event === "queued" && !TERMINAL.has(d.status)) Object.assign(d, { status: d.status === "running" ? "running" : "queued", position: a.position });
  if (event.event === "progress") {
    Object.assign(d, { status: "running", fraction: a.fraction, stage: a.stage });
    job.el.dataset.progressEvents = String(Number(job.el.dataset.progressEvents || 0) + 1);
  }
  if (event.event === "partial") playPreview(job, a);
  if (event.event === "analysis") d.params = { ...d.params, prompt: [d.params?.prompt, heardLine(a)].filter(Boolean).join(" · ") };
  if (event.event === "output") addOutput(job, a);
  if (event.event === "done") {
    Object.assign(d, { status: "done", seed: a.seed, elapsed_s: a.elapsed_s });
    refreshParams(job);
  }
  if (event.event === "error") Object.assign(d, { status: statusForError(a.code), error_code: a.code, error_message: a.message });
  if (event.event === "done" || event.event === "error") {
    job.el.dataset.terminalEvents = String(Number(job.el.dataset.terminalEvents || 0) + 1);
    ackJob(a.job_id);
  }
  updateJob(job);
  showHeader();
}

// The page's jobs (web-…, this tab's or an earlier one's) are acked once their done or error arrives, so the daemon
// does not re-send them (the event stream resumes by itself after a drop; re-sends would only repeat them).
// Other clients' jobs are left to those clients: their re-sends are theirs.
const acked = new Set();
function ackJob(jobId) {
  if (!jobId.startsWith("web-") || acked.has(jobId)) return;
  acked.add(jobId);
  api("POST", "/api/requests/ack", { job_id: jobId }).catch(() => acked.delete(jobId));
}

// The journal's params (the context the daemon rendered in: an input's own tempo and key) once a job is done, from
// the history listing: GET /api/jobs/{id} would replay the job's events to every page (its done again, and so on).
async function refreshParams(job) {
  if (job.refreshed) return;
  job.refreshed = true;
  const { ok, data: listing } = await api("GET", "/api/jobs?limit=20");
  const record = ok ? listing.jobs.find((j) => j.job_id === job.data.job_id) : null;
  const data = { job: record };
  if (record) {
    Object.assign(job.data, { params: { ...job.data.params, ...data.job.params }, source: data.job.source,
                              op: job.data.op || data.job.op });
    addJoin(job);
    updateJob(job);
  }
}

async function cancelJob(jobId) {
  const { ok, data } = await api("DELETE", `/api/jobs/${encodeURIComponent(jobId)}`);
  const job = jobs.get(jobId);
  if (!ok && job) { job.data.error_code = data.error.code; job.data.error_message = data.error.message; updateJob(job); }
  for (const event of data.events || []) handleEvent(event);
}

// -- outputs: waveform, play/stop, loop, LUFS and true peak, drag out ----------------------------------------
function addOutput(job, o) {
  if (job.outputs.has(o.name)) return;
  if (String(o.path || "").endsWith(".mid")) { addMidiOutput(job, o); return; }
  const url = o.url || `/api/jobs/${job.data.job_id}/files/${o.name}`;
  const filename = o.daw_name || `${job.data.job_id}-${o.name}.wav`; // the musical name, as the DAW shows it
  const audio = el("audio", { controls: "", preload: "none", src: url }); // the audio is fetched only to play it
  if ((job.data.params || {}).loop || ((job.data.params || {}).settings || {}).loop) audio.loop = true;
  const link = el("a", { class: "drag", href: url, download: filename, draggable: "true", text: `⇩ ${o.name}`,
                         "aria-label": `download ${filename}` });
  link.title = "drag into your DAW or onto the desktop; click to download";
  link.addEventListener("dragstart", (e) => {
    const absolute = new URL(url, location.href).href;
    e.dataTransfer.setData("DownloadURL", `audio/wav:${filename}:${absolute}`); // Chromium: drop makes the file
    e.dataTransfer.setData("text/uri-list", absolute);
  });
  const canvas = el("canvas", { width: "600", height: "48" });
  const meta = el("div", { class: "meta", text:
    `${Number(o.seconds).toFixed(2)} s · ${Number(o.bars).toFixed(2)} bars · ${o.sample_rate} Hz · ${o.channels} ch · ` +
    `${o.lufs == null ? "-" : Number(o.lufs).toFixed(1)} LUFS · true peak ${o.peak_db == null ? "-" : Number(o.peak_db).toFixed(1)} dBTP` });
  const row = el("div", { class: "output", "data-output": o.name }, link, audio, canvas, meta, chainButtons(o, filename));
  row.dataset.dawName = filename;
  job.el.querySelector(".outputs").append(row);
  job.outputs.set(o.name, row);
  addJoin(job);
  updateJob(job);
  drawWaveform(canvas, `/api/jobs/${encodeURIComponent(job.data.job_id)}/peaks/${encodeURIComponent(o.name)}`);
}

// Results you can chain: Continue / Vary / Stems of this output, sent with its path where the daemon already keeps
// it (under its output root, an input folder): nothing is downloaded or uploaded again. The form's other fields
// apply; an empty Tempo or Key takes the file's own (the daemon reads its manifest).
const CHAINS = [["continue", "Continue"], ["variations", "Vary"], ["stems", "Stems"]];

function chainButtons(o, filename) {
  const box = el("div", { class: "chain" });
  for (const [op, text] of CHAINS) {
    const button = el("button", { class: "small", type: "button", text, "data-chain": op,
                                  "aria-label": `${text.toLowerCase()} ${filename}` });
    button.addEventListener("click", () => chain(op, o.path, filename));
    box.append(button);
  }
  if (o.path) showStemsState(stemsReason, box);
  else for (const button of box.querySelectorAll("button")) button.disabled = true; // another machine's path
  return box;
}

function chain(op, path, filename) {
  $("input-path").value = path;
  $("drop-state").textContent = `${filename} (a render of this daemon's, not uploaded again)`;
  submit(op, filename);
}

// A continuation's seam: the input's last bars, the silence to the next downbeat, the new bars (GET …/join, made by
// the daemon on request; fetched only when played).
function addJoin(job) {
  const mix = job.outputs.get("mix");
  if (job.data.op !== "continue" || !mix || mix.querySelector(".join")) return;
  const player = el("audio", { controls: "", preload: "none",
                               src: `/api/jobs/${encodeURIComponent(job.data.job_id)}/join` });
  mix.append(el("div", { class: "join" }, el("span", { class: "muted", text: "hear the join" }), player));
}

function ensureAudio() {
  if (!audioContext && window.AudioContext) audioContext = new AudioContext();
  if (audioContext && audioContext.state === "suspended") audioContext.resume();
  return audioContext;
}

// The waveform from the daemon's peaks (1 KiB per file, measured at the full rate: (min, max) int8 pairs), never from
// the audio itself, so a history of 50 jobs loads without downloading any of their audio.
async function drawWaveform(canvas, peaksUrl) {
  try {
    const response = await fetch(peaksUrl);
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const peaks = new Int8Array(await response.arrayBuffer());
    const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height, buckets = peaks.length / 2;
    g.fillStyle = "#6cc3ff";
    for (let x = 0; x < w; x++) {
      const b = Math.floor((x * buckets) / w);
      const lo = peaks[2 * b] / 127, hi = peaks[2 * b + 1] / 127;
      g.fillRect(x, ((1 - hi) / 2) * h, 1, Math.max(1, ((hi - lo) / 2) * h));
    }
    canvas.dataset.drawn = "1";
  } catch (e) {
    canvas.title = `no waveform: ${e}`;
  }
}

// A dropped file's waveform, decoded here (the file is already in the browser) at 48 kHz, so bright material is not
// lost as at 8 kHz; marks ({beat: [s], downbeat: [s]}) as lines over it, downbeats bright
async function drawPeaks(canvas, buffer, marks) {
  const context = new OfflineAudioContext(1, 1, 48000);
  const audio = await context.decodeAudioData(buffer);
  const data = audio.getChannelData(0);
  const g = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
  g.fillStyle = "#6cc3ff";
  const step = Math.max(1, Math.floor(data.length / w));
  for (let x = 0; x < w; x++) {
    let lo = 1, hi = -1;
    for (let i = x * step; i < Math.min(data.length, (x + 1) * step); i++) { lo = Math.min(lo, data[i]); hi = Math.max(hi, data[i]); }
    if (hi < lo) continue;
    g.fillRect(x, ((1 - hi) / 2) * h, 1, Math.max(1, ((hi - lo) / 2) * h));
  }
  for (const [kind, color, width] of [["beat", "#7d848c", 1], ["downbeat", "#ffcf5c", 2]]) {
    const times = (marks || {})[kind] || [];
    g.fillStyle = color;
    for (const t of times) g.fillRect(Math.round((t / audio.duration) * w), 0, width, h);
    canvas.dataset[`${kind}s`] = String(times.length);
  }
}

// Streaming previews (stream 1): each chunk is decoded and scheduled right after the previous one.
async function playPreview(job, a) {
  if (!a.url) return;
  const context = ensureAudio();
  if (!context) return;
  const key = a.path.includes("/variation-") && !a.path.includes("/variation-1/") ? null : "main";
  if (!key) return; // variations: only the first one's stream is played
  job.preview = job.preview || { at: 0, chain: Promise.resolve() };
  const preview = job.preview;
  preview.chain = preview.chain.then(async () => {
    const buffer = await (await fetch(a.url)).arrayBuffer();
    const audio = await context.decodeAudioData(buffer);
    const source = context.createBufferSource();
    source.buffer = audio;
    source.connect(context.destination);
    preview.at = Math.max(preview.at, context.currentTime + 0.05);
    source.start(preview.at);
    preview.at += audio.duration;
    job.el.querySelector(".stage").textContent = `previewing chunk ${a.index}`;
  }).catch(() => {});
}

// -- history (the journal) and live events ---------------------------------------------------------------------
let lastEventId = ""; // the newest event id this page has: a new event stream resumes after it (nothing missed)

async function loadHistory() {
  const { ok, data } = await api("GET", "/api/jobs?limit=50");
  if (!ok) return;
  if (data.event_id) lastEventId = data.event_id; // read before the history: events after it come on the stream
  for (const record of data.jobs.reverse()) {
    upsertJob({ ...record, params: { ...record.params, loop: ((record.params || {}).settings || {}).loop } });
    if (!TERMINAL.has(record.status)) {
      const reply = await api("GET", `/api/jobs/${encodeURIComponent(record.job_id)}`);
      for (const event of reply.data.events || []) handleEvent(event);
    }
  }
}

// The connection notice reflects the connection alone. The daemon's `error` event (a job failed, any client's) and
// a lost connection both reach EventSource's "error" listener: the job's event carries data, a lost connection none.
// The stream starts after the history's event id (or the last event seen, after a drop), so a job another client
// started while the page loaded is not missed. Resolves when the stream is open (or failed: it retries itself).
function connectEvents() {
  const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
  const source = new EventSource(`/api/events${query}`);
  const seen = (message) => { if (message.lastEventId) lastEventId = message.lastEventId; };
  for (const name of ["queued", "progress", "partial", "output", "done", "analysis", "training"]) {
    source.addEventListener(name, (message) => { seen(message); handleEvent(JSON.parse(message.data)); });
  }
  // the jam panel's (jam.js, which may still be loading while this runs: until then no jam is the page's)
  for (const name of ["jam/chunk", "jam/state", "jam/scheduled"]) {
    source.addEventListener(name, (message) => { seen(message); window.jamEvent && jamEvent(JSON.parse(message.data)); });
  }
  source.addEventListener("reset", () => loadHistory());
  source.addEventListener("open", () => showLink(""));
  source.addEventListener("error", (message) => {
    if (typeof message.data === "string") { seen(message); handleEvent(JSON.parse(message.data)); return; }
    showLink(source.readyState === EventSource.OPEN ? "" : "reconnecting to the daemon…");
    if (source.readyState === EventSource.CLOSED) { source.close(); setTimeout(connectEvents, 2000); }
  });
  return new Promise((resolve) => {
    source.addEventListener("open", resolve, { once: true });
    source.addEventListener("error", resolve, { once: true });
  });
}

function showLink(text) {
  $("link-state").textContent = text;
  document.body.dataset.link = text ? "lost" : "open";
}

function wire() {
  for (const rate of SAMPLE_RATES) $("sample-rate").append(el("option", { value: String(rate), text: `${rate / 1000} kHz` }));
  $("sample-rate").value = "48000";
  $("generate").addEventListener("click", () => submit("generate"));
  $("continue").addEventListener("click", () => submit("continue"));
  $("variations").addEventListener("click", () => submit("variations"));
  $("stems-button").addEventListener("click", () => submit("stems"));
  $("train").addEventListener("click", () => train());
  $("training-cancel").addEventListener("click", () => { if (training.jobId) cancelJob(training.jobId); });
  $("training").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.tagName === "INPUT") { e.preventDefault(); train(); }
  });
  $("cancel-all").addEventListener("click", () => {
    for (const [id, job] of jobs) if (!TERMINAL.has(job.data.status)) cancelJob(id);
  });
  // Ctrl+Enter (Cmd+Enter) anywhere in the form generates: Generate is many Tab stops from the prompt.
  $("request").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit("generate"); }
  });
  const drop = $("drop");
  // The drop zone works from the keyboard: Enter or Space opens the file chooser.
  drop.addEventListener("keydown", (e) => {
    if ((e.key === "Enter" || e.key === " ") && e.target === drop) { e.preventDefault(); $("file").click(); }
  });
  $("file").addEventListener("change", (e) => { if (e.target.files[0]) upload(e.target.files[0]); });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault(); drop.classList.remove("over");
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
}

// -- training: a folder of the musician's recordings -> a LoRA adapter (/continuo/train_style, /continuo/training) --
// The panel follows this page's training job, or the latest one any client started (a `continuo train-style`);
// its job card in the queue shows it too.
const training = { jobId: "", name: "" };

function showTrainingError(message) {
  $("training-error").textContent = message || "";
  $("training-error").hidden = !message;
}

async function train() {
  const folder = $("training-folder").value.trim(), name = $("training-name").value.trim();
  if (!folder || !name) {
    showTrainingError(`give ${!folder ? "the folder of your recordings (its full path)" : "a name for the adapter"}`);
    ($(!folder ? "training-folder" : "training-name")).focus();
    return;
  }
  showTrainingError("");
  const job_id = newJobId("train_style");
  const body = { op: "train_style", job_id, folder, name, text: $("training-text").value.trim(),
                 epochs: numberOrText($("training-epochs").value || "4") };
  const { ok, data } = await api("POST", "/api/jobs", body);
  if (!ok) { showTrainingError(`training: ${data.error.message}`); return; }
  Object.assign(training, { jobId: job_id, name });
  const live = jobs.get(job_id)?.data;
  upsertJob({ job_id, op: "train_style", status: live?.status ?? "queued", outputs: [],
              params: { prompt: `train ${name} from ${folder}` } });
  showTraining({ event: "queued", args: { job_id } });
  for (const event of data.events) handleEvent(event);
}

function showTraining(event) {
  const a = event.args;
  if (event.event === "training" && a.job_id !== training.jobId) {
    const mine = training.jobId && !TERMINAL.has(jobs.get(training.jobId)?.data.status);
    if (mine) return; // another client's training while this page's runs: its card shows it
    Object.assign(training, { jobId: a.job_id, name: "" });
  }
  const bar = $("training-progress"), state = $("training-state");
  const who = training.name ? `${training.name}: ` : "";
  if (event.event === "queued") state.textContent = `${who}queued: renders go first, training waits between its steps`;
  if (event.event === "training") {
    bar.hidden = false;
    bar.value = a.step / a.steps;
    const eta = a.eta_s < 0 ? "" : ` · about ${duration(a.eta_s)} left`;
    state.textContent = `${who}epoch ${a.epoch}/${a.epochs} · step ${a.step}/${a.steps} · loss ${a.loss.toFixed(4)}${eta}`;
    bar.dataset.steps = String(a.step);
  }
  if (event.event === "done") {
    bar.value = 1;
    state.textContent = training.name ? `${training.name} is ready: renders take it with lora ${training.name}`
      : "training done: the adapter is in the daemon's lora_dir";
  }
  if (event.event === "error") {
    bar.hidden = true;
    state.textContent = "";
    showTrainingError(`${who}${a.code}: ${a.message}`);
  }
  $("training-cancel").hidden = event.event === "done" || event.event === "error";
}

function duration(seconds) {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  return seconds < 7200 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
}

// -- listening: a dropped file's tempo, metre and key (/continuo/analyze), its beats on its waveform; MIDI files --
async function analyzeInput(path, file) {
  const box = $("analysis"), canvas = $("drop-wave");
  box.textContent = "listening…";
  const { ok, data } = await api("POST", "/api/requests/analyze", { input_path: path });
  const found = ok ? (data.events.find((e) => e.event === "analysis") || {}).args : null;
  if (!found) { box.textContent = ok ? "" : `not analysed: ${data.error.message}`; return; }
  const marks = { beat: [], downbeat: [] };
  for (const e of data.events.filter((e) => e.event === "beats")) {
    marks[e.args.kind].push(...e.args.times.split(",").filter(Boolean).map(Number));
  }
  box.textContent = heardLine(found) + ` · ${found.bars.toFixed(2)} bars · ${found.lufs.toFixed(1)} LUFS`;
  box.dataset.bpm = String(found.bpm);
  box.dataset.key = found.key;
  if (found.bpm) {  // the form takes what was heard: send it as it is, or correct it
    $("bpm").value = found.bpm.toFixed(2);
    $("beats-per-bar").value = String(found.beats_per_bar);
    $("beat-unit").value = String(found.beat_unit);
  }
  if (found.key) $("key").value = found.key;
  canvas.hidden = false;
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  try { await drawPeaks(canvas, await file.arrayBuffer(), marks); } catch (e) { canvas.title = `no waveform: ${e}`; }
}

function heardLine(a) {
  const tempo = a.bpm ? `${a.bpm.toFixed(2)} BPM (confidence ${a.bpm_confidence.toFixed(2)}) · ${a.beats_per_bar}/${a.beat_unit}`
    : "no steady tempo heard";
  return `heard ${tempo} · ${a.key ? `${a.key} (confidence ${a.key_confidence.toFixed(2)})` : "no key heard"}`;
}

// a stem's notes (output <stem>-midi, a .mid): a download link beside the stem it came from
function addMidiOutput(job, o) {
  const stem = o.name.replace(/-midi$/, "");
  const url = o.url || `/api/jobs/${job.data.job_id}/files/${o.name}`;
  const link = el("a", { class: "midi", href: url, download: `${job.data.job_id}-${o.name}.mid`, text: `⇩ MIDI ${stem}` });
  link.title = "the stem's notes as a standard MIDI file at the session's tempo";
  const row = job.outputs.get(stem) || el("div", { class: "output", "data-output": o.name });
  row.querySelector(".meta") ? row.insertBefore(link, row.querySelector(".meta")) : row.append(link);
  if (!row.isConnected) job.el.querySelector(".outputs").append(row);
  job.outputs.set(o.name, row);
}

wire();
loadStatus().then(loadLibrary).then(loadHistory).then(connectEvents)
  .finally(() => { document.body.dataset.ready = "1"; });
setInterval(loadStatus, 5000);
