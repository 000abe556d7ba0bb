/* carewatch operator console: live queue, alarm sound, keyboard, and calls to the API.
 *
 * The pages are rendered on the server; this script only
 *  - listens to the API's live stream and asks htmx to refresh what changed,
 *  - runs the waiting clocks, the alarm sound and the keyboard shortcuts,
 *  - sends the operator's actions to the API (JSON, with the session's CSRF header).
 * No build step: plain ES2020, served as is.
 */
(function () {
  "use strict";

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const stringsEl = $("#strings");
  const T = stringsEl ? JSON.parse(stringsEl.textContent) : {};
  const csrf = ($('meta[name="csrf-token"]') || {}).content;
  const csrfHeader = ($('meta[name="csrf-header"]') || {}).content || "X-CSRF-Token";
  const WARN_S = 60;   // telecare targets: answered within 60 s ...
  const LATE_S = 180;  // ... and 180 s
  const MUTE_MS = 5 * 60 * 1000;

  /* ---- the API ---------------------------------------------------------------- */

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    headers[csrfHeader] = csrf;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const answer = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (answer.status === 401) { window.location.href = "/login"; throw new Error("signed out"); }
    const data = answer.status === 204 ? null : await answer.json().catch(() => null);
    if (!answer.ok) throw new Error(describe(data) || String(answer.status));
    return data;
  }

  function describe(data) {
    if (!data || data.detail === undefined) return "";
    if (typeof data.detail === "string") return data.detail;
    return data.detail.map((d) => (d.loc ? d.loc.slice(-1)[0] + ": " : "") + d.msg).join("; ");
  }

  function formBody(form) {
    const body = {};
    for (const field of $$("input, select, textarea", form)) {
      if (!field.name || field.value === "") continue;
      if (field.dataset.type === "minutes-from-now") {
        body[field.name] = new Date(Date.now() + Number(field.value) * 60000).toISOString();
      } else if (field.type === "number") {
        body[field.name] = Number(field.value);
      } else if (field.type === "checkbox") {
        body[field.name] = field.checked;
      } else {
        body[field.name] = field.value;
      }
    }
    return body;
  }

  async function act(element, body) {
    const [method, path] = element.dataset.api.split(" ");
    sentForm = element.closest("form");
    const error = element.closest("form") ? $(".form-error", element.closest("form")) : null;
    if (error) error.textContent = "";
    element.setAttribute("aria-busy", "true");
    try {
      await api(method, path, body);
      toast(T.done || "Done");
      redrawLater = false;
      refreshAlarm(true);
      changed();
    } catch (exc) {
      if (error) error.textContent = exc.message;
      toast((T.failed || "Failed") + ": " + exc.message, true);
    } finally {
      element.removeAttribute("aria-busy");
    }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target.closest("form[data-api]");
    if (!form) return;
    event.preventDefault();
    act(form, formBody(form));
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-api]");
    if (!button) return;
    act(button, button.dataset.body ? JSON.parse(button.dataset.body) : undefined);
  });

  function toast(text, bad) {
    const box = $("#toast");
    if (!box) return;
    box.textContent = text;
    box.classList.toggle("bad", !!bad);
    box.classList.add("shown");
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => box.classList.remove("shown"), 4000);
  }

  /* ---- the open alarm --------------------------------------------------------- */

  function openAlarmId() {
    const view = $("#alarm .alarm-view");
    return view ? Number(view.dataset.alertId) : null;
  }

  let ownRedraw = false;  // the redraw in flight follows the operator's own action
  function refreshAlarm(own) {
    const id = openAlarmId();
    ownRedraw = !!own;
    if (id && window.htmx) htmx.ajax("GET", "/ui/alerts/" + id, { target: "#alarm", swap: "innerHTML" });
  }

  // A colleague's change to the open alarm redraws it, but not under an operator who is
  // typing in one of its forms or has a draft in one: that waits until the draft is sent
  // (or cleared) and the field left.
  let redrawLater = false;
  function typing() {
    const field = document.activeElement;
    return !!field && field.closest("#alarm") !== null && ["INPUT", "TEXTAREA", "SELECT"].includes(field.tagName);
  }
  function drafting() {
    return $$("#alarm input, #alarm textarea").some((f) => f.type !== "hidden" && f.value !== f.defaultValue) ||
      $$("#alarm select").some((f) => Array.from(f.options).some((o) => o.selected !== o.defaultSelected));
  }
  function refreshAlarmSoon() {
    if (typing() || drafting()) { redrawLater = true; return; }
    refreshAlarm();
  }
  function redrawIfDue() {
    if (redrawLater && !typing() && !drafting()) { redrawLater = false; refreshAlarm(); }
  }
  document.addEventListener("focusout", () => { if (redrawLater) setTimeout(redrawIfDue, 500); });
  // A colleague's redraw that arrives after the operator started a draft waits too; the
  // redraw after the operator's own action keeps the drafts of the other forms.
  let keptDrafts = null;
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.target.id !== "alarm") return;
    const own = ownRedraw;
    ownRedraw = false;
    const sameAlarm = event.detail.requestConfig.path === "/ui/alerts/" + openAlarmId();
    const fromStream = sameAlarm && !own && !event.detail.requestConfig.elt.closest("#queue");
    if (fromStream && (typing() || drafting())) { event.detail.shouldSwap = false; redrawLater = true; return; }
    if (sameAlarm) keptDrafts = drafts();
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target.id !== "alarm" || !keptDrafts) return;
    for (const [id, value] of Object.entries(keptDrafts)) {
      const field = document.getElementById(id);
      if (field) field.value = value;
    }
    keptDrafts = null;
  });

  function drafts() {
    // What the operator typed and has not sent (the form just sent is not a draft).
    const kept = {};
    for (const field of $$("#alarm input[id], #alarm textarea[id], #alarm select[id]")) {
      if (field.closest("form") === sentForm) continue;
      const changed = field.tagName === "SELECT"
        ? Array.from(field.options).some((o) => o.selected !== o.defaultSelected)
        : field.value !== field.defaultValue;
      if (changed) kept[field.id] = field.value;
    }
    return kept;
  }
  let sentForm = null;

  const seen = new Set(JSON.parse(sessionStorage.getItem("cw-seen") || "[]"));
  function markSeen(id) {
    if (!id || seen.has(id)) return;
    seen.add(id);
    sessionStorage.setItem("cw-seen", JSON.stringify(Array.from(seen).slice(-500)));
  }

  /* ---- reading the queue again ------------------------------------------------ */

  // Every change is followed by a read of the queue (htmx, on `cw:changes`) that starts
  // after it, at most one every REREAD_MS: a burst's changes share reads, and the last
  // one is never left out. (htmx's own `throttle` drops what comes inside its window: an
  // alarm 100 ms after another change waited on screen for the change after it.) While a
  // read is in flight htmx keeps the latest trigger and sends it when the read is back.
  const REREAD_MS = 300;
  let lastRead = 0, readDue = null;
  function changed() {
    if (readDue !== null) return;  // a read is due that starts after this change
    readDue = setTimeout(() => {
      readDue = null;
      lastRead = Date.now();
      document.body.dispatchEvent(new Event("cw:changes"));
    }, Math.max(0, lastRead + REREAD_MS - Date.now()));
  }

  /* ---- the live stream -------------------------------------------------------- */

  function live(state) {
    const box = $("#live");
    if (!box) return;
    box.dataset.state = state;
    $(".live-text", box).textContent = state === "live" ? T.live : T.reconnecting;
  }

  let retry = 0;
  function listen() {
    // On every page: the header's status says whether alarms are reaching this console.
    const source = new EventSource("/api/v1/stream");
    window.cwStream = source;
    source.onopen = () => {
      live("live");
      // Back after a drop: the stream resumes from Last-Event-ID, and the queue is read
      // again in full, so nothing shown is stale.
      if (retry > 0) changed();
      retry = 0;
    };
    source.onerror = () => {
      live("reconnecting");
      retry += 1;
      // The browser retries a dropped stream by itself; one it gave up on (an error
      // answer, the network gone) is opened again after a growing delay, at most 5 s.
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(listen, Math.min(5000, 500 * 2 ** Math.min(retry, 4)) * (0.5 + Math.random() / 2));
      }
    };
    source.addEventListener("alert", (event) => {
      const change = JSON.parse(event.data);
      changed();
      if (change.alert_id === openAlarmId()) refreshAlarmSoon();
    });
  }

  /* ---- clocks ----------------------------------------------------------------- */

  function clockText(seconds) {
    const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
    return m + ":" + String(s).padStart(2, "0");
  }

  function tick() {
    const now = Date.now();
    for (const clock of $$(".clock[data-opened]")) {
      const opened = Number(clock.dataset.opened);
      if (!opened) continue;
      const end = clock.dataset.acked ? Number(clock.dataset.acked) : now;
      const waited = Math.max(0, (end - opened) / 1000);
      const level = waited >= LATE_S ? "late" : waited >= WARN_S ? "warn" : "ok";
      clock.dataset.level = level;
      // One text node per clock (icon, time, word: never colour alone), cheap to redraw
      // for hundreds of rows every second.
      const icon = level === "late" ? "✖" : level === "warn" ? "⚠" : "◷";
      const word = level === "late" ? T.over_180 : level === "warn" ? T.over_60 : "";
      clock.textContent = icon + " " + clockText(waited) + (word ? " " + word : "");
    }
    showMute();
  }

  /* ---- sound ------------------------------------------------------------------ */

  const sound = { plays: { critical: 0, warning: 0 }, state: "quiet" };
  window.cwSound = sound;
  let audio = null;
  const warned = new Set();

  function context() {
    if (!audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      audio = new Ctx();
    }
    if (audio.state === "suspended") audio.resume().catch(() => {});
    return audio;
  }
  ["click", "keydown"].forEach((name) => document.addEventListener(name, () => context(), { passive: true }));

  // Critical: a two-tone, square-wave call repeated every 2 s (hard to miss, unlike any
  // phone). Warning: one soft sine chime. Synthesised: no audio files to ship.
  function beep(kind) {
    const ctx = context();
    if (!ctx || ctx.state !== "running") return false;
    const notes = kind === "critical"
      ? [[880, 0, 0.18], [660, 0.22, 0.18], [880, 0.44, 0.18], [660, 0.66, 0.18]]
      : [[523, 0, 0.35]];
    for (const [freq, at, length] of notes) {
      const osc = ctx.createOscillator(), gain = ctx.createGain();
      osc.type = kind === "critical" ? "square" : "sine";
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, ctx.currentTime + at);
      gain.gain.exponentialRampToValueAtTime(kind === "critical" ? 0.25 : 0.15, ctx.currentTime + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + at + length);
      osc.connect(gain).connect(ctx.destination);
      osc.start(ctx.currentTime + at);
      osc.stop(ctx.currentTime + at + length + 0.05);
    }
    sound.plays[kind] += 1;
    return true;
  }

  function mutedUntil() { return Number(localStorage.getItem("cw-muted-until") || 0); }

  function waitingCritical() {
    return $$("#queue tr.row").filter((row) =>
      row.dataset.severity === "critical" && row.dataset.status === "open" &&
      !seen.has(Number(row.dataset.alertId)));
  }

  function soundTick() {
    const critical = waitingCritical();
    for (const row of $$("#queue tr.row[data-severity='warning'][data-status='open']")) {
      const id = Number(row.dataset.alertId);
      if (!warned.has(id)) { warned.add(id); if (mutedUntil() < Date.now()) beep("warning"); }
    }
    let state = "quiet";
    if (critical.length) {
      if (mutedUntil() > Date.now()) state = "muted";
      else state = beep("critical") ? "critical" : "blocked";
    }
    setSoundState(state);
  }

  function setSoundState(state) {
    sound.state = state;
    const box = $("#sound");
    if (!box) return;
    box.dataset.state = state;
    const text = state === "critical" ? T.sounding_critical
      : state === "blocked" ? T.sound_blocked
      : state === "muted" ? mutedText() : T.sound_ready;
    $(".sound-text", box).textContent = text;
  }

  function mutedText() {
    const left = Math.max(0, (mutedUntil() - Date.now()) / 1000);
    return (T.muted_until || "Muted, %(left)s left").replace("%(left)s", clockText(left));
  }

  function showMute() {
    const button = $("#mute");
    if (!button) return;
    const muted = mutedUntil() > Date.now();
    button.setAttribute("aria-pressed", String(muted));
    button.textContent = muted ? T.unmute + " (" + mutedText() + ")" : T.mute;
    if (sound.state === "muted" && !muted) setSoundState("quiet");
  }

  function toggleMute() {
    const muted = mutedUntil() > Date.now();
    localStorage.setItem("cw-muted-until", muted ? "0" : String(Date.now() + MUTE_MS));
    showMute();
    soundTick();
  }

  /* ---- keyboard --------------------------------------------------------------- */

  function rows() { return $$("#queue:not([hidden]) tr.row"); }
  function selected() { return $("#queue tr.row.selected"); }

  function select(row) {
    for (const r of rows()) { r.classList.remove("selected"); r.removeAttribute("aria-selected"); }
    if (!row) return;
    row.classList.add("selected");
    row.setAttribute("aria-selected", "true");
    const link = $("a.open-alarm", row);
    if (link) link.focus();
  }

  function move(step) {
    const all = rows();
    if (!all.length) return;
    const i = all.indexOf(selected());
    select(all[Math.min(all.length - 1, Math.max(0, i < 0 ? 0 : i + step))]);
  }

  async function acknowledge() {
    // The open alarm if it waits; else the selected row's.
    const view = $("#alarm .alarm-view");
    let id = view && view.dataset.status === "open" ? Number(view.dataset.alertId) : null;
    if (!id) {
      const row = selected();
      if (!row || row.dataset.status !== "open") return;
      id = Number(row.dataset.alertId);
    }
    markSeen(id);
    try {
      await api("POST", "/api/v1/alerts/" + id + "/ack");
      toast(T.done);
      ownRedraw = true;
      if (window.htmx) htmx.ajax("GET", "/ui/alerts/" + id, { target: "#alarm", swap: "innerHTML" });
      changed();
    } catch (exc) { toast(T.failed + ": " + exc.message, true); }
  }

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (["input", "textarea", "select"].includes(tag) || event.target.isContentEditable) return;
    const key = event.key.toLowerCase();
    if (key === "j" || key === "arrowdown") { move(1); event.preventDefault(); }
    else if (key === "k" || key === "arrowup") { move(-1); event.preventDefault(); }
    else if (key === "enter" && selected() && event.target.tagName !== "A") { $("a.open-alarm", selected()).click(); }
    else if (key === "a") { acknowledge(); event.preventDefault(); }
    else if (key === "m") { toggleMute(); }
  });

  /* ---- preferences ------------------------------------------------------------ */

  async function savePreference(change) {
    // The API takes all of a user's preferences at once: the stored ones, changed.
    const stored = JSON.parse(document.body.dataset.preferences || "{}");
    const wanted = Object.assign(stored, change);
    document.body.dataset.preferences = JSON.stringify(wanted);
    try { await api("PUT", "/api/v1/me/preferences", wanted); }
    catch (exc) { toast(T.failed + ": " + exc.message, true); }
  }

  function bindHeader() {
    const large = $("#large-text");
    if (large) large.addEventListener("click", async () => {
      const on = !document.documentElement.classList.contains("large-text");
      document.documentElement.classList.toggle("large-text", on);
      large.setAttribute("aria-pressed", String(on));
      await savePreference({ large_text: on });
    });
    const language = $("#language");
    if (language) language.addEventListener("click", async () => {
      const wanted = language.dataset.language;
      document.cookie = "carewatch_lang=" + wanted + "; path=/; max-age=31536000; samesite=strict";
      await savePreference({ language: wanted });
      window.location.reload();
    });
    const mute = $("#mute");
    if (mute) mute.addEventListener("click", toggleMute);
  }

  /* ---- maps ------------------------------------------------------------------- */

  // Leaflet and the drawing code load on the first map a page shows, not before: the
  // queue must be on screen first, and most of its redraws have no map.
  let mapCode = null;
  function loadMapCode() {
    if (window.L && window.cwDrawMap) return Promise.resolve();
    if (mapCode) return mapCode;
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/static/vendor/leaflet/leaflet.css";
    document.head.appendChild(css);
    const script = (src) => new Promise((done, fail) => {
      const tag = document.createElement("script");
      tag.src = src;
      tag.onload = done;
      tag.onerror = fail;
      document.head.appendChild(tag);
    });
    mapCode = script("/static/vendor/leaflet/leaflet.js").then(() => script("/static/map.js"));
    return mapCode;
  }

  function drawMaps(root) {
    const boxes = $$("[data-map]", root).filter((box) => !box.dataset.drawn);
    if (!boxes.length) return;
    loadMapCode().then(() => {
      for (const box of boxes) {
        if (box.dataset.drawn || !box.isConnected) continue;
        box.dataset.drawn = "1";
        window.cwDrawMap(box, JSON.parse(box.dataset.map));
      }
    });
  }

  /* ---- start ------------------------------------------------------------------ */

  document.addEventListener("DOMContentLoaded", () => {
    // The sign-in form tells the server the browser's time zone (kept for a user who
    // has chosen none).
    const zone = $("input[name=tz]");
    if (zone) zone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    if (!$("#strings")) return;  // signed out: nothing else to run
    bindHeader();
    listen();
    tick();
    soundTick();
    drawMaps(document);
    markSeen(openAlarmId());
    setInterval(tick, 1000);
    setInterval(soundTick, 2000);
    setInterval(redrawIfDue, 2000);
    document.body.addEventListener("htmx:afterSwap", (event) => {
      tick();
      drawMaps(event.target);
      if (event.target.id === "alarm") {
        markSeen(openAlarmId());
        const id = openAlarmId();
        const row = id && $("#row-" + id);
        if (row) select(row);
      }
      if (event.target.id === "queue") {
        const id = openAlarmId();
        if (id && $("#row-" + id)) $("#row-" + id).classList.add("selected");
        // The row that had the focus was replaced: give it to its successor.
        if (document.activeElement === document.body && selected()) $("a.open-alarm", selected()).focus();
        soundTick();
      }
    });
  });
})();
