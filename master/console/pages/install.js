// The Install tab: issue (and rotate) installer credentials, download the three files, and
// the exact conjurer commands for Linux amd64 and arm64 nodes.

import * as api from "../api.js";
import {clear, formatTime, h} from "../dom.js";
import {confirmAction} from "../dialogs.js";
import {errorBox, notify, reportError} from "../notice.js";

function files(name) {
  return [`${name}.pem`, `${name}-passphrase.txt`, "conjurer"];
}

function commands(name) {
  const creds = `-edge-name=${name} -passphrase-file=${name}-passphrase.txt ` +
    `-creds-file=${name}.pem`;
  return [
    ["Make conjurer executable (downloads lose the mode)", "chmod +x conjurer"],
    ["Check the node first (soft checks, as a table)", `sudo ./conjurer -preflight ${creds}`],
    ["Install kubesalt's agent and enroll the node", `sudo ./conjurer ${creds}`],
    ["Install beside a customer's own salt-minion (it stays untouched)",
      `sudo ./conjurer -m ${creds}`],
    ["Remove kubesalt's agent where a customer minion is present", "sudo ./conjurer -m -d"],
    ["Remove kubesalt's agent", "sudo ./conjurer -d"],
  ];
}

function commandList(name, arch) {
  return h("ol", {class: "commands", "data-testid": `commands-${arch}`},
    commands(name).map(([what, command]) => h("li", {}, h("p", {}, what),
      h("pre", {class: "command"}, h("code", {}, command)))));
}

function archSection(name, arch, note) {
  return h("section", {class: "arch", "aria-labelledby": `arch-${arch}`},
    h("h3", {id: `arch-${arch}`}, `Linux ${arch}`), note ? h("p", {class: "hint"}, note) : null,
    commandList(name, arch));
}

export function mount(panel, ctx) {
  const name = ctx.name;
  const issued = h("div", {"aria-live": "polite", "data-testid": "installer-result"});
  const issue = (rotate) => async () => {
    try {
      const answer = await api.call("cluster.installer", rotate ? {name, rotate: true} : {name});
      clear(issued, h("dl", {class: "facts inline"},
        h("dt", {}, "Serial"), h("dd", {"data-testid": "installer-serial"}, String(answer.serial)),
        h("dt", {}, "Valid until"), h("dd", {}, formatTime(answer.expires)),
        answer.revoked && answer.revoked.length ? [h("dt", {}, "Revoked"),
          h("dd", {}, `${answer.revoked.length} earlier set(s)`)] : null),
      answer.warning ? h("p", {class: "form-error"}, answer.warning) : null);
      notify(rotate ? "New installer credentials issued; earlier ones are revoked."
        : "Installer credentials issued.");
      return answer;
    } catch (err) {
      clear(issued, errorBox(err, "installer-error") || "");
      throw err;
    }
  };
  const rotate = () => confirmAction({title: `Rotate ${name}'s installer credentials?`,
    testid: "rotate-dialog", confirmLabel: "Rotate", danger: true,
    text: "A new set is issued and every earlier set is revoked: conjurer refuses them from " +
      "now on. Nodes already enrolled are not affected.",
    onConfirm: issue(true)});
  const download = (file) => async () => {
    try {
      await api.download(name, file);
    } catch (err) {
      reportError(err instanceof api.ApiError && err.status === 404
        ? new Error(`${file}: ${err.message}`) : err);
    }
  };
  const operatorPart = ctx.operator ? [
    h("section", {"aria-labelledby": "creds-h"},
      h("h2", {id: "creds-h"}, "Installer credentials"),
      h("p", {}, "Issuing writes the three files on the controller; download them here and " +
        "copy them to each node. The passphrase is yours to keep: it is not shown again."),
      h("div", {class: "toolbar"},
        h("button", {type: "button", class: "primary", "data-testid": "installer-issue",
          onclick: () => issue(false)().catch(() => {})}, "Issue credentials"),
        h("button", {type: "button", class: "danger", "data-testid": "installer-rotate",
          onclick: rotate}, "Rotate credentials")),
      issued,
      h("ul", {class: "downloads"}, files(name).map((file) => h("li", {},
        h("button", {type: "button", class: "secondary", "data-testid": `download-${file ===
          "conjurer" ? "conjurer" : file.endsWith(".pem") ? "pem" : "passphrase"}`,
        onclick: download(file)}, `Download ${file}`))))),
  ] : [h("p", {class: "hint"}, "An operator issues the installer credentials and downloads " +
    `the three files (${files(name).join(", ")}).`)];
  panel.append(...operatorPart,
    h("section", {"aria-labelledby": "cmd-h"},
      h("h2", {id: "cmd-h"}, "On each node, as root"),
      h("p", {}, "conjurer needs Python 3.8 or newer. Nodes reach the controller outbound " +
        "only."),
      h("div", {class: "arch-grid"},
        archSection(name, "amd64"),
        archSection(name, "arm64", "arm64 nodes can only be workers, on Ubuntu. The controller " +
          "serves the agent for its own architecture; for arm64 run `kubesalt-controller " +
          "agent-bundle --arch aarch64` on the controller once."))));
  return null;
}
