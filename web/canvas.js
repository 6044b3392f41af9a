// hwr drawing board: records every stroke as the pointer really moved (coalesced events where
// the browser offers them) and sends all strokes to Python when the pen lifts.
// Points are [x, y, t, pressure]: CSS pixels from the canvas' top-left, t in ms since the epoch
// (performance.timeOrigin + event.timeStamp), pressure as the browser reports it (mouse: 0.5).
//
// Under the canvas, .hwr-panel shows the result: data.view, HTML the app builds (hwr.svg). Showing
// it here, not in Streamlit widgets, makes a stroke change this one element. A click on an element
// with data-value (JSON) inside one with data-pick sends the trigger "choose" = {key, value}
// (an alternative, a word's reading, a character to highlight; data-toggle: a second click unsets).
// The upload panel uses the same code with no board. This function runs again whenever data
// changes (every stroke, every pick) and the old cleanup is not run: listeners are bound once per
// element (dataset.bound); a later call only swaps the panel's HTML when it changed, and keeps the
// strokes drawn meanwhile (data.strokes is read once, when the board is mounted).
function onChoose(ev) {
  const panel = ev.currentTarget;
  const option = ev.target.closest("[data-value]");
  const group = option && option.closest("[data-pick]");
  if (!group || !panel.contains(group)) return;
  const on = option.getAttribute("aria-checked") === "true";
  if (on && group.dataset.toggle !== "1") return; // chosen already
  group.querySelectorAll('[aria-checked="true"]').forEach((e) => e.setAttribute("aria-checked", "false"));
  if (!on) option.setAttribute("aria-checked", "true"); // at once, before the app answers
  panel.hwrSend("choose", { key: group.dataset.pick, value: on ? null : JSON.parse(option.dataset.value) });
}

export default function ({ parentElement, data, setStateValue, setTriggerValue }) {
  const panel = parentElement.querySelector(".hwr-panel");
  if (panel) {
    panel.hwrSend = setTriggerValue;
    const view = (data && data.view) || "";
    if (panel.hwrView !== view) {
      // the option that had the keyboard focus gets it back in the new HTML (same group, same value)
      const focused = document.activeElement;
      const was = focused && panel.contains(focused) && focused.closest("[data-pick]") && focused.dataset.value
        ? [focused.closest("[data-pick]").dataset.pick, focused.dataset.value] : null;
      panel.hwrView = view;
      panel.innerHTML = view;
      if (was) {
        const again = [...panel.querySelectorAll("[data-pick]")].find((g) => g.dataset.pick === was[0]);
        const option = again && [...again.querySelectorAll("[data-value]")].find((o) => o.dataset.value === was[1]);
        if (option) option.focus();
      }
    }
    if (panel.dataset.bound !== "1") {
      panel.dataset.bound = "1";
      panel.addEventListener("click", onChoose);
      panel.addEventListener("keydown", (ev) => { // a focused option: Enter or Space picks it
        const option = ev.target.closest && ev.target.closest("[data-value]");
        if (!option || !option.closest("[data-pick]")) return; // e.g. a word's <summary>: the browser opens it
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onChoose(ev); }
      });
    }
  }
  const root = parentElement.querySelector(".hwr-board");
  if (!root) return;
  root.hwrSetState = setStateValue; // the newest call's
  if (root.dataset.bound === "1") return; // invoked again on reruns: bind once
  root.dataset.bound = "1";
  const canvas = root.querySelector("canvas");
  const ctx = canvas.getContext("2d");
  const height = (data && data.height) || 220;
  const strokes = ((data && data.strokes) || []).map((s) => ({
    points: s.points.map((p) => p.slice()), pointer_type: s.pointer_type || "mouse" }));
  let current = null;
  const dpr = window.devicePixelRatio || 1;

  // data.rows ruled rows of equal pitch (a page), each with a baseline and an x-height guide;
  // one row (a line) spans the whole board.
  const rows = Math.max(1, (data && data.rows) || 1);
  function guides(w) {
    const pitch = height / rows;
    ctx.save();
    ctx.setLineDash([6, 6]);
    ctx.lineWidth = 1;
    for (let i = 0; i < rows; i++) {
      ctx.strokeStyle = "#9db4d0";
      ctx.beginPath();
      ctx.moveTo(12, (i + 0.68) * pitch); ctx.lineTo(w - 12, (i + 0.68) * pitch); // baseline
      ctx.stroke();
      ctx.strokeStyle = "#e3ebf5";
      ctx.beginPath();
      ctx.moveTo(12, (i + 0.42) * pitch); ctx.lineTo(w - 12, (i + 0.42) * pitch); // x-height guide
      ctx.stroke();
    }
    ctx.restore();
  }
  function drawStroke(s) {
    const p = s.points;
    if (!p.length) return;
    ctx.beginPath();
    ctx.moveTo(p[0][0], p[0][1]);
    if (p.length === 1) ctx.lineTo(p[0][0] + 0.1, p[0][1] + 0.1);
    for (let i = 1; i < p.length; i++) ctx.lineTo(p[i][0], p[i][1]);
    ctx.stroke();
  }
  function redraw() {
    const w = canvas.width / dpr;
    ctx.clearRect(0, 0, w, height);
    guides(w);
    ctx.strokeStyle = "#111";
    ctx.lineWidth = 2.5;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    strokes.forEach(drawStroke);
    if (current) drawStroke(current);
  }
  function resize() {
    const w = Math.max(root.clientWidth, 200);
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(height * dpr);
    canvas.style.width = w + "px";
    canvas.style.height = height + "px";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    redraw();
  }
  function point(ev) {
    const r = canvas.getBoundingClientRect();
    const x = ev.clientX - r.left - canvas.clientLeft; // a CSS border would shift coordinates
    const y = ev.clientY - r.top - canvas.clientTop;
    const t = performance.timeOrigin + ev.timeStamp;
    return [Math.round(x * 100) / 100, Math.round(y * 100) / 100, Math.round(t * 1000) / 1000,
            ev.pressure === undefined ? null : ev.pressure];
  }
  canvas.addEventListener("pointerdown", (ev) => {
    if (ev.pointerType === "mouse" && ev.button !== 0) return;
    ev.preventDefault();
    canvas.setPointerCapture(ev.pointerId);
    current = { points: [point(ev)], pointer_type: ev.pointerType || "mouse" };
    redraw();
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!current) return;
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
    for (const e of events.length ? events : [ev]) current.points.push(point(e));
    const p = current.points;
    const n = p.length;
    ctx.beginPath(); // draw only the new segment: smooth even on long strokes
    ctx.moveTo(p[Math.max(0, n - 1 - Math.max(events.length, 1))][0], p[Math.max(0, n - 1 - Math.max(events.length, 1))][1]);
    for (let i = Math.max(0, n - Math.max(events.length, 1)); i < n; i++) ctx.lineTo(p[i][0], p[i][1]);
    ctx.stroke();
  });
  function finish(ev) {
    if (!current) return;
    if (ev.type === "pointerup") current.points.push(point(ev));
    strokes.push(current);
    current = null;
    canvas.dataset.strokes = String(strokes.length);
    root.hwrSetState("strokes", strokes);
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  new ResizeObserver(resize).observe(root);
  resize();
  canvas.dataset.strokes = String(strokes.length);
  canvas.dataset.rows = String(rows);
}
