// Login: user name, password and the eauth backend (Salt's file store or PAM).

import * as api from "../api.js";
import * as session from "../session.js";
import {h} from "../dom.js";
import {field, formError, select} from "../forms.js";

export function mount(main) {
  const flash = session.takeFlash();
  const user = h("input", {type: "text", id: "login-user", autocomplete: "username",
    required: true, "data-testid": "login-user"});
  const password = h("input", {type: "password", id: "login-password",
    autocomplete: "current-password", required: true, "data-testid": "login-password"});
  const eauth = select([["file", "kubesalt users (file)"], ["pam", "system users (PAM)"]],
    "file", {id: "login-eauth", "data-testid": "login-eauth"});
  const submit = h("button", {type: "submit", class: "primary", "data-testid": "login-submit"},
    "Log in");
  const box = formError("login-error");
  const form = h("form", {class: "login-form", novalidate: true, "aria-labelledby": "login-h"},
    field({name: "username", label: "User name", control: user}),
    field({name: "password", label: "Password", control: password}),
    field({name: "eauth", label: "Log in with", control: eauth}),
    box, submit);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    box.hidden = true;
    if (!user.value || !password.value) {
      box.hidden = false;
      box.textContent = "Give your user name and password.";
      return;
    }
    submit.disabled = true;
    try {
      await api.login(user.value.trim(), password.value, eauth.value);
      location.hash = "#/clusters";
    } catch (err) {
      box.hidden = false;
      box.textContent = err.message;
      password.select();
    } finally {
      submit.disabled = false;
    }
  });
  main.append(h("section", {class: "login"},
    h("h1", {id: "login-h", tabindex: "-1"}, "kubesalt console"),
    flash ? h("p", {class: "flash", role: "alert", "data-testid": "login-message"}, flash) : null,
    form));
  user.focus();
  return null;
}
