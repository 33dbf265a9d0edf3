// Continuo control room, the Jam panel: start a jam, steer it at the next bar, hear it here, beat-aligned.
//
// The daemon generates bar chunks ahead of its playhead and announces each one (/continuo/jam/chunk on the event
// stream: bar, start_beat, beats, bpm, prompt_id, held, url). The page fetches each bar's WAV, decodes it and
// schedules it on one AudioContext timeline. The first chunk is anchored to the daemon's own playhead: the
// /continuo/jam/state after its bar says how far the stream runs ahead of the playhead (lead_s), so the bar starts
// lead_s minus its length after that state arrived, plus JAM_LEAD_S (the page's own latency, for the fetch and
// decode of the next bars): the page's beats are the jam clock's beats, JAM_LEAD_S late (without that state, the
// chunk starts JAM_LEAD_S from now). Every later chunk is placed at its start beat on that timeline: right after
// the previous one when it continues it (contiguous, sample-exact joins), else where its start beat falls at the
// chunk's tempo. A chunk that arrives too late for its place is never started mid-bar: the
// timeline moves on by whole bars (the page re-anchors, counted and shown), so the music stays on its bar lines.
// The playhead (bar.beat, 1-based as a DAW counts) is read from the AudioContext clock against what is scheduled.
// The daemon's own figures come from /continuo/jam/state: its lead, RTF, lookahead, held bars and underruns.
// Requests go through the schema's HTTP path (POST /api/requests/<op>), as every other request of the page.
"use strict";

const JAM_LEAD_S = 0.35; // the first bar starts this long after its chunk is decoded
const JAM_KEEP = 8; // bars listed in the panel
const JAM_OPS = { start: "jam_start", control: "jam_control", stop: "jam_stop", bank: "jam_bank" }; // the schema's ops
const JAM_LIVE = new Set(["starting", "playing", "stopping"]);

const jam = {
  id: null, // the jam this page started (and follows)
  state: "stopped",
  beatsPerBar: 4,
  bars: [], // scheduled chunks: {bar, start_beat, beats, bpm, seconds, prompt_id, held, when, source}
  end: null, // where the last scheduled chunk ends: {beat, time}
  chain: Promise.resolve(), // chunks are fetched in parallel but scheduled in arrival order
  resyncs: 0, // times the page moved its timeline on by whole bars because a chunk came too late
  gain: null,
  leads: new Map(), // bar -> {lead_s, at}: the daemon's lead after that bar, and when (AudioContext time) it came
  stopHeardAt: null, // the AudioContext time the stop reached the page
  lastBar: null, // a stop's last bar to sound (/continuo/jam/state stopping): later bars are dropped
};

function jamError(message) {
  $("jam-error").textContent = message || "";
  $("jam-error").hidden = !message;
}

// web-jam-<YYYYMMDD>-<HHMMSS>-<8 hex>, the job ids' rules (a reused id is refused, never answered with an old jam)
function newJamId() {
  return newJobId("jam");
}

function jamNumber(id) {
  const input = $(id), text = input.value.trim(), value = Number(text);
  const label = input.closest("label")?.firstChild?.textContent.trim() || id;
  if (text === "" || Number.isNaN(value) || (input.min !== "" && value < Number(input.min))
      || (input.max !== "" && value > Number(input.max))) {
    throw new Error(`${label} must be from ${input.min} to ${input.max}, not ${text || "empty"}.`);
  }
  return value;
}

async function jamRequest(op, body) {
  const { ok, data } = await api("POST", `/api/requests/${JAM_OPS[op]}`, body);
  if (!ok) throw new Error((data.error && data.error.message) || `${op}: HTTP error`);
  for (const event of data.events || []) jamEvent(event);
  return data;
}

async function jamStart() {
  jamError("");
  let bpm, beatsPerBar;
  try { bpm = jamNumber("jam-bpm"); beatsPerBar = jamNumber("jam-beats-per-bar"); } catch (e) { jamError(e.message); return; }
  const context = ensureAudio(); // a click: the browser lets the page make sound from here on
  if (!context) { jamError("This browser has no Web Audio: the jam still plays to the daemon's other outputs."); return; }
  jamReset();
  jam.id = newJamId();
  jam.beatsPerBar = beatsPerBar;
  jam.gain = context.createGain();
  jam.gain.connect(context.destination);
  jamShowState({ jam_id: jam.id, state: "starting" });
  jamRemember();
  try {
    const settings = { bpm, beats_per_bar: beatsPerBar, preset: $("jam-preset").value || "default" };
    if ($("jam-behind-ok").checked) settings.behind_ok = 1; // else a model too slow for it is refused, with figures
    await jamRequest("start", { jam_id: jam.id, prompt: $("jam-prompt").value, settings });
  } catch (e) {
    jamError(`Jam not started: ${e.message}`);
    jamShowState({ jam_id: jam.id, state: "stopped" });
    jam.id = null;
  }
}

// A reload (or a second look from a phone) does not stop a jam: the daemon plays on. The page keeps the id of the
// jam it started (localStorage, until the jam stops) and takes it up again: its controls and Stop work at once,
// and "Listen here" (a click: the browser lets a page make sound only after one) plays it from its next bar.
const JAM_KEY = "continuo-jam";

function jamRemember() {
  try { if (jam.id) localStorage.setItem(JAM_KEY, JSON.stringify({ id: jam.id, beatsPerBar: jam.beatsPerBar })); }
  catch (e) { /* storage off: a reload then forgets the jam */ }
}

function jamForget() {
  try { localStorage.removeItem(JAM_KEY); } catch (e) { /* as above */ }
}

function jamResume() {
  let kept = null;
  try { kept = JSON.parse(localStorage.getItem(JAM_KEY) || "null"); } catch (e) { kept = null; }
  if (!kept || !kept.id) return;
  jam.id = kept.id;
  jam.beatsPerBar = kept.beatsPerBar || 4;
  jamShowState({ jam_id: jam.id, state: "playing" }); // until the daemon's next state says otherwise
  $("jam-message").textContent = `taken up again: ${jam.id} (it played on while the page was away)`;
  $("jam-listen").hidden = false;
}

function jamListen() {
  const context = ensureAudio();
  if (!context || !jam.id || jam.gain) return;
  jam.gain = context.createGain();
  jam.gain.connect(context.destination);
  $("jam-listen").hidden = true;
}

async function jamStop() {
  if (!jam.id) return;
  try { await jamRequest("stop", { jam_id: jam.id }); } catch (e) {
    jamError(`Stop: ${e.message}`); // the daemon has no such jam playing (it ended while the page was away)
    jamShowState({ jam_id: jam.id, state: "stopped" });
  }
}

async function jamControl(name, value) {
  if (!jam.id) return;
  jamError("");
  try { await jamRequest("control", { jam_id: jam.id, name, value: String(value) }); }
  catch (e) { jamError(`${name}: ${e.message}`); }
}

async function jamApply() {
  let values;
  try {
    values = [["temperature", jamNumber("jam-temperature")], ["guidance", jamNumber("jam-guidance")],
              ["keep_loop", jamNumber("jam-keep")]];
  } catch (e) { jamError(e.message); return; }
  for (const [name, value] of values) {
    if ($(`jam-${name === "keep_loop" ? "keep" : name}`).dataset.sent !== String(value)) {
      await jamControl(name, value);
      $(`jam-${name === "keep_loop" ? "keep" : name}`).dataset.sent = String(value);
    }
  }
}

async function jamBank(action) {
  if (!jam.id) return;
  let slot;
  try { slot = jamNumber("jam-slot"); } catch (e) { jamError(e.message); return; }
  try {
    await jamRequest("bank", { jam_id: jam.id, action, slot });
    $("jam-scheduled").textContent = action === "save" ? `saved in slot ${slot}` : `slot ${slot} recalled at the next bar`;
  } catch (e) { jamError(`Bank ${action}: ${e.message}`); }
}

// -- events ---------------------------------------------------------------------------------------------------
function jamEvent(event) {
  const a = event.args || {};
  if (!jam.id || a.jam_id !== jam.id) return;
  if (event.event === "jam/chunk") jamChunk(a);
  if (event.event === "jam/state") jamShowState(a);
  if (event.event === "jam/scheduled") {
    const value = a.name === "prompt" ? `“${a.value}”` : a.value;
    $("jam-scheduled").textContent = `${a.name} ${value} from bar ${Number(a.bar) + 1}`;
    $("jam-scheduled").dataset.bar = String(a.bar);
    $("jam-scheduled").dataset.name = a.name;
  }
}

function jamShowState(a) {
  jam.state = a.state;
  if (a.state === "stopping" && a.bar != null) jamStopAfter(Number(a.bar));
  else if (audioContext && a.lead_s != null && a.bar >= 0) { // the last few: the first chunk played looks its bar up
    jam.leads.set(Number(a.bar), { lead_s: Number(a.lead_s), at: audioContext.currentTime });
    if (jam.leads.size > 8) jam.leads.delete(jam.leads.keys().next().value);
  }
  const panel = $("jam");
  panel.dataset.state = a.state;
  $("jam-state").textContent = a.state === "failed" ? `failed: ${a.message}` : a.state;
  if (a.lead_s != null) {
    $("jam-lead").textContent = `${Number(a.lead_s).toFixed(2)} s`;
    $("jam-rtf").textContent = Number(a.rtf).toFixed(2);
    $("jam-lookahead").textContent = `${a.lookahead_bars} bar${a.lookahead_bars === 1 ? "" : "s"}`;
    $("jam-held").textContent = String(a.held_bars);
    $("jam-underruns").textContent = String(a.underruns);
    panel.dataset.underruns = String(a.underruns);
    panel.dataset.heldBars = String(a.held_bars);
  }
  if (a.message && a.state !== "failed") $("jam-message").textContent = a.message;
  if (a.state === "failed") jamError(`The jam stopped: ${a.message}`);
  if (a.state === "stopped" || a.state === "failed") jamForget();
  const live = JAM_LIVE.has(a.state);
  $("jam-start").disabled = live;
  $("jam-stop").disabled = !live || a.state === "stopping";
  $("jam-next").disabled = !live;
}

// A stop lands at the end of the bar playing: /continuo/jam/state stopping names it, the last bar to sound. The bars
// after it that the page already holds are dropped, and any that still come are not fetched. A bar already sounding
// here plays out (never cut mid-bar): the page runs JAM_LEAD_S behind the daemon, so that happens only where the
// stop's state reached the page that much late (seen once in CI-like runs); stopHeardAt says when it came.
function jamStopAfter(last) {
  jam.lastBar = last;
  const now = audioContext ? audioContext.currentTime : 0;
  jam.stopHeardAt = now;
  const dropped = jam.bars.filter((bar) => Number(bar.bar) > last && bar.when > now);
  for (const bar of dropped) {
    try { bar.source.stop(); } catch (e) { /* already stopped */ } // before its start: it never sounds
    const item = document.querySelector(`#jam-bars li[data-bar="${Number(bar.bar)}"]`);
    if (item) { item.dataset.dropped = "1"; item.classList.add("dropped"); item.title = "after the stop: not played"; }
  }
  jam.bars = jam.bars.filter((bar) => !dropped.includes(bar));
  const kept = jam.bars[jam.bars.length - 1];
  if (dropped.length && kept) jam.end = { beat: Number(kept.start_beat) + Number(kept.beats), time: kept.when + kept.seconds };
  $("jam").dataset.droppedBars = String(Number($("jam").dataset.droppedBars || 0) + dropped.length);
}

function jamPastStop(a) {
  return jam.lastBar !== null && Number(a.bar) > jam.lastBar;
}

function jamChunk(a) {
  if (!jam.gain || jamPastStop(a)) return; // not heard here (a jam taken up again before Listen here, a bar past
  // the stop): nothing fetched
  const fetched = fetch(a.url).then((r) => {
    if (!r.ok) throw new Error(`HTTP ${r.status} for bar ${Number(a.bar) + 1}`);
    return r.arrayBuffer();
  }).then((bytes) => audioContext.decodeAudioData(bytes));
  jam.chain = jam.chain.then(() => fetched).then((audio) => jamSchedule(a, audio))
    .catch((e) => jamError(`Bar ${Number(a.bar) + 1} not played: ${e.message}`));
}

// Where a chunk starts on the AudioContext timeline: right after the previous chunk when it continues it, else
// at its start beat counted from the previous chunk's end at its tempo; the first one a lead after now.
function jamPlace(a, now) {
  if (jam.end) return jam.end.time + (Number(a.start_beat) - jam.end.beat) * 60 / Number(a.bpm);
  const lead = jam.leads.get(Number(a.bar)); // the daemon's playhead reaches this bar's end lead_s after `at`
  if (lead) return lead.at + lead.lead_s - Number(a.beats) * 60 / Number(a.bpm) + JAM_LEAD_S;
  return now + JAM_LEAD_S;
}

function jamSchedule(a, audio) {
  if (a.jam_id !== jam.id || !jam.gain || jamPastStop(a)) return;
  const context = audioContext, now = context.currentTime;
  let when = jamPlace(a, now);
  if (when < now + 0.02) { // too late for its place: move the whole timeline on by whole bars, never mid-bar
    const barS = jam.beatsPerBar * 60 / Number(a.bpm);
    when += Math.ceil((now + JAM_LEAD_S - when) / barS) * barS;
    jam.resyncs += 1; // (every earlier chunk has ended by then: this one was to follow them)
  }
  const source = context.createBufferSource();
  source.buffer = audio;
  source.connect(jam.gain);
  source.start(when);
  const seconds = audio.duration;
  jam.end = { beat: Number(a.start_beat) + Number(a.beats), time: when + seconds };
  jam.bars.push({ ...a, when, seconds, source });
  jam.bars = jam.bars.filter((bar) => bar.when + bar.seconds > now - 4 * seconds);
  jamListBar(a, when);
  $("jam").dataset.scheduledBars = String(Number($("jam").dataset.scheduledBars || 0) + 1);
  $("jam-page").textContent = jam.resyncs ? `${jam.resyncs} late (moved on by whole bars)` : "on time";
}

function jamListBar(a, when) {
  const item = el("li", { "data-bar": String(a.bar), "data-prompt-id": String(a.prompt_id),
                          "data-held": String(a.held), "data-start-beat": String(a.start_beat),
                          "data-when": when.toFixed(4),
                          text: `bar ${Number(a.bar) + 1} · prompt ${a.prompt_id}${Number(a.held) ? " · held" : ""}` });
  if (Number(a.held)) item.classList.add("held");
  const list = $("jam-bars");
  list.prepend(item);
  while (list.children.length > JAM_KEEP) list.lastChild.remove();
}

// -- the playhead ---------------------------------------------------------------------------------------------
function jamTick() {
  const context = audioContext, head = $("jam-playhead");
  if (context && jam.bars.length) {
    const now = context.currentTime;
    const playing = jam.bars.find((bar) => bar.when <= now && now < bar.when + bar.seconds);
    if (playing) {
      const beatIn = ((now - playing.when) / playing.seconds) * Number(playing.beats);
      const bar = Number(playing.bar) + Math.floor(beatIn / jam.beatsPerBar);
      const text = `${bar + 1}.${Math.floor(beatIn % jam.beatsPerBar) + 1}`;
      if (head.textContent !== text) head.textContent = text;
      head.dataset.beat = (Number(playing.start_beat) + beatIn).toFixed(3);
      head.dataset.bar = String(bar);
      head.dataset.promptId = String(playing.prompt_id);
    } else if (now < jam.bars[0].when) {
      head.textContent = "count-in";
    } else if (!JAM_LIVE.has(jam.state)) {
      head.textContent = "stopped";
      head.dataset.stoppedAt = head.dataset.stoppedAt || head.dataset.bar || "";
    } else {
      head.textContent = "waiting for the next bar"; // the page has played all it got: the daemon is behind
    }
    const buffered = jam.end ? Math.max(0, jam.end.time - now) : 0;
    $("jam-buffered").textContent = `${buffered.toFixed(2)} s`;
  }
  requestAnimationFrame(jamTick);
}

function jamReset() {
  for (const bar of jam.bars) { try { bar.source.stop(); } catch (e) { /* already ended */ } }
  if (jam.gain) jam.gain.disconnect();
  Object.assign(jam, { id: null, bars: [], end: null, chain: Promise.resolve(), resyncs: 0, gain: null,
                       leads: new Map(), lastBar: null, stopHeardAt: null });
  $("jam-bars").replaceChildren();
  for (const id of ["jam-lead", "jam-rtf", "jam-lookahead", "jam-held", "jam-underruns", "jam-buffered"]) $(id).textContent = "–";
  $("jam-scheduled").textContent = "";
  $("jam-message").textContent = "";
  $("jam-page").textContent = "";
  $("jam-listen").hidden = true;
  const head = $("jam-playhead");
  head.textContent = "–";
  for (const key of Object.keys(head.dataset)) delete head.dataset[key];
  delete $("jam").dataset.scheduledBars;
  delete $("jam").dataset.droppedBars;
  for (const id of ["jam-temperature", "jam-guidance", "jam-keep"]) delete $(id).dataset.sent;
}

function wireJam() {
  $("jam-start").addEventListener("click", jamStart);
  $("jam-stop").addEventListener("click", jamStop);
  $("jam-send-prompt").addEventListener("click", () => jamControl("prompt", $("jam-next-prompt").value));
  $("jam-next-prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); jamControl("prompt", $("jam-next-prompt").value); }
  });
  $("jam-prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !$("jam-start").disabled) { e.preventDefault(); jamStart(); }
  });
  $("jam-apply").addEventListener("click", jamApply);
  $("jam-save").addEventListener("click", () => jamBank("save"));
  $("jam-recall").addEventListener("click", () => jamBank("recall"));
  $("jam-listen").addEventListener("click", jamListen);
  jamResume();
  requestAnimationFrame(jamTick);
}

wireJam();
