// The Operation tab: the running or last operation stage by stage (state, start, duration,
// nodes, error), refreshed every 2 s while it runs; its timeline; earlier operations below.

import * as api from "../api.js";
import {badge, clear, formatDuration, formatTime, h} from "../dom.js";
import {confirmAction} from "../dialogs.js";
import {errorBox, notify} from "../notice.js";
import {timeline} from "../timeline.js";

const POLL_MS = 2000;
const LIVE = ["queued", "running"];

function stageTable(op, testid) {
  return h("table", {class: "stages", "data-testid": testid},
    h("caption", {}, `Stages of operation ${op.operation} (${op.kind})`),
    h("thead", {}, h("tr", {}, ["Stage", "State", "Started", "Duration", "Nodes", "Error"]
      .map((t) => h("th", {scope: "col"}, t)))),
    h("tbody", {}, (op.stages || []).map((st) => h("tr", {"data-stage": st.stage,
      class: st.state === "skipped" ? "skipped" : null},
    h("th", {scope: "row"}, st.title || st.stage),
    h("td", {}, badge(st.state, "stage-state")),
    h("td", {}, formatTime(st.started)),
    h("td", {}, formatDuration(st.duration_s)),
    h("td", {}, (st.nodes || []).length ? (st.nodes || []).join(", ") : "controller"),
    h("td", {class: "error-cell"}, st.error || "")))));
}

function summary(op, testid = "operation-state") {
  return h("dl", {class: "facts inline"},
    h("dt", {}, "State"), h("dd", {}, badge(op.state, testid)),
    h("dt", {}, "Started"), h("dd", {}, formatTime(op.started) || "—"),
    h("dt", {}, "Finished"), h("dd", {}, formatTime(op.finished) || "—"),
    op.params && op.params.to ? [h("dt", {}, "Target"), h("dd", {}, op.params.to)] : null);
}

export function mount(panel, ctx) {
  let timer = null;
  let alive = true;
  let wasLive = false;
  const current = h("section", {"aria-labelledby": "op-h", "data-testid": "operation"});
  const history = h("section", {"aria-labelledby": "hist-h"});
  panel.append(current, history);
  const logHref = (node) => `${ctx.base}/nodes?node=${encodeURIComponent(node)}&log=1`;

  function renderCurrent(op) {
    if (!op) {
      clear(current, h("h2", {id: "op-h"}, "Operation"),
        h("p", {"data-testid": "no-operation"}, "No operation has run on this cluster yet."));
      return;
    }
    const live = LIVE.includes(op.state);
    clear(current, 
      h("h2", {id: "op-h"}, `Operation ${op.operation}: ${op.kind}`,
        live ? h("span", {class: "live"}, " (updating every 2 s)") : null),
      summary(op),
      live && ctx.operator ? h("p", {}, h("button", {type: "button", class: "danger",
        "data-testid": "action-cancel", onclick: () => cancel(op)}, "Cancel operation")) : null,
      op.error ? h("p", {class: "form-error", "data-testid": "operation-error"},
        op.failed_stage ? `${op.failed_stage}${op.failed_node ? ` on ${op.failed_node}` : ""}: `
          : "", op.error, op.failed_node && ctx.operator ? [" ",
          h("a", {href: logHref(op.failed_node)}, "agent log")] : null) : null,
      stageTable(op, "stage-table"),
      h("h3", {}, "Timeline"),
      h("figure", {class: "timeline-figure"}, timeline(op, logHref),
        h("figcaption", {class: "hint"}, "Stages against time, one row per node; a failed " +
          "stage is red: point at it for its error, follow it to the node's agent log.")));
  }

  function cancel(op) {
    confirmAction({
      title: `Cancel ${op.operation}?`, testid: "cancel-dialog", confirmLabel: "Cancel operation",
      danger: true,
      text: ["Nothing more is started, the jobs running on the nodes are stopped, and the " +
        "operation is recorded cancelled at its stage.", "Run the same action again to " +
        "resume it where it stopped."],
      onConfirm: () => api.call("cluster.cancel", {name: ctx.name}),
    }).then((done) => {
      if (!done) return;
      notify(`Cancelling ${op.operation}.`);
      clearTimeout(timer);
      load();
    });
  }

  function renderHistory(ops) {
    const earlier = ops.slice(0, -1).reverse();
    clear(history, h("h2", {id: "hist-h"}, "Earlier operations"),
      earlier.length ? earlier.map((op) => h("details", {class: "history",
        "data-testid": "history-op", "data-op": op.operation},
      h("summary", {}, `${op.operation}: ${op.kind}, ${op.state}, started ` +
        `${formatTime(op.started)}`), summary(op, "history-state"),
      op.error ? h("p", {class: "form-error"}, op.error) : null,
      stageTable(op, "history-stage-table")))
        : h("p", {class: "hint"}, "None."));
  }

  async function load() {
    try {
      const status = await api.call("cluster.status", {name: ctx.name, history: true});
      if (!alive) return;
      const ops = status.operations || (status.operation ? [status.operation] : []);
      const op = ops[ops.length - 1] || null;
      renderCurrent(op);
      const open = [...history.querySelectorAll("details[open]")].map((d) => d.dataset.op);
      renderHistory(ops);
      history.querySelectorAll("details").forEach((d) => {
        if (open.includes(d.dataset.op)) d.open = true;
      });
      const live = Boolean(op && LIVE.includes(op.state));
      if (wasLive && !live) ctx.reload().catch(() => {});
      wasLive = live;
      if (live && alive) timer = setTimeout(load, POLL_MS);
    } catch (err) {
      if (err instanceof api.SessionExpired) return;
      clear(current, errorBox(err) || "");
      if (alive && wasLive) timer = setTimeout(load, POLL_MS);
    }
  }
  load();
  return {
    destroy: () => {
      alive = false;
      clearTimeout(timer);
    },
  };
}
