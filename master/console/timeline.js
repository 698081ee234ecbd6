// An operation as a picture (SVG): its stages against time, one row per node (and one for
// the controller's own stages), each node's bar from its own start and duration (per_node);
// a failed stage is red, with its error as a tooltip (<title>) and a link to the failed
// node's agent log.

const NS = "http://www.w3.org/2000/svg";
const WIDTH = 1000;
const LABEL = 230;
const ROW = 24;
const TOP = 28;

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== null && v !== undefined) el.setAttribute(k, String(v));
  }
  children.flat().forEach((c) => {
    if (c === null || c === undefined) return;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  });
  return el;
}

const seconds = (iso) => (iso ? Date.parse(iso) / 1000 : null);

function tick(value) {
  if (value < 60) return `+${Math.round(value)}s`;
  if (value < 3600) return `+${Math.floor(value / 60)}m${Math.round(value % 60) ? `${Math.round(value % 60)}s` : ""}`;
  return `+${Math.floor(value / 3600)}h${Math.round((value % 3600) / 60)}m`;
}

function short(node) {
  return node.length > 30 ? `${node.slice(0, 29)}…` : node;
}

/** The picture of `op` (cluster.status's operation); nodeHref(node) links to a node's log. */
export function timeline(op, nodeHref) {
  const stages = (op.stages || []).filter((st) => st.started);
  const rows = [];
  for (const st of op.stages || []) {
    for (const node of st.nodes && st.nodes.length ? st.nodes : ["controller"]) {
      if (!rows.includes(node)) rows.push(node);
    }
  }
  const start = seconds(op.started) ?? Math.min(...stages.map((st) => seconds(st.started)));
  let end = seconds(op.finished) || 0;
  for (const st of stages) {
    for (const bar of bars(st)) end = Math.max(end, bar.t0 + bar.duration);
  }
  const span = Math.max(1, end - start);
  const plot = WIDTH - LABEL - 10;
  const x = (t) => LABEL + ((t - start) / span) * plot;
  const height = TOP + rows.length * ROW + 8;
  const svg = s("svg", {viewBox: `0 0 ${WIDTH} ${height}`, class: "timeline",
    "data-testid": "timeline", "aria-labelledby": "tl-title tl-desc"},
  s("title", {id: "tl-title"}, `Operation ${op.operation}: ${op.kind}, ${op.state}`),
  s("desc", {id: "tl-desc"}, `Stages against time, one row per node; ${stages.length} of ` +
    `${(op.stages || []).length} stages started.`));
  for (let i = 0; i <= 5; i += 1) {
    const t = start + (span * i) / 5;
    svg.append(s("line", {x1: x(t), x2: x(t), y1: TOP - 6, y2: height - 4, class: "tl-grid"}),
      s("text", {x: x(t), y: TOP - 10, class: "tl-tick", "text-anchor": i === 5 ? "end"
        : i === 0 ? "start" : "middle"}, tick(t - start)));
  }
  rows.forEach((node, r) => {
    svg.append(s("text", {x: 4, y: TOP + r * ROW + ROW / 2 + 4, class: "tl-label"},
      s("title", {}, node), short(node)));
  });
  for (const st of stages) {
    for (const {node, t0, duration, state, error} of bars(st)) {
      const x0 = x(t0);
      const w = Math.max(3, x(t0 + duration) - x0);
      const failed = state === "failed";
      const y = TOP + rows.indexOf(node) * ROW + 3;
      const tip = `${st.title || st.stage}: ${state}, ${duration} s` +
        `${failed && error ? ` — ${error}` : ""}`;
      const bar = s("g", {class: `tl-stage tl-${state}`, "data-stage": st.stage,
        "data-node": node},
      s("title", {}, tip),
      s("rect", {x: x0, y, width: w, height: ROW - 6, rx: 3}),
      w > 70 ? s("text", {x: x0 + 4, y: y + ROW / 2 + 1, class: "tl-bar-text"},
        st.stage.slice(0, Math.floor(w / 7))) : null);
      const linkNode = failed && node !== "controller" &&
        (!op.failed_node || op.failed_node === node);
      svg.append(linkNode ? s("a", {href: nodeHref(node), "data-testid": "timeline-failed-link",
        "aria-label": `${tip}; open ${node}'s agent log`}, bar) : bar);
    }
  }
  return svg;
}

/** A started stage's bars: each node's own when recorded (per_node), else the stage's. */
function bars(st) {
  const nodes = st.nodes && st.nodes.length ? st.nodes : ["controller"];
  const perNode = st.per_node || {};
  return nodes.map((node) => {
    const own = perNode[node];
    if (own && own.started) {
      return {node, t0: seconds(own.started), duration: Number(own.duration_s || 0),
        state: own.state, error: own.error || st.error};
    }
    if (own && own.state === "skipped") return null;
    return {node, t0: seconds(st.started), duration: Number(st.duration_s || 0),
      state: st.state, error: st.error};
  }).filter(Boolean);
}
