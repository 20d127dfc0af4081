// The prompt template editor: messages and variables as rows over the form's JSON fields, and a live
// preview rendered by the server (POST to data-preview-url) with sample values for every slot.
"use strict";
(() => {
  const ROLES = ["system", "developer", "user", "assistant"];

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === "text") node.textContent = value;
      else if (value !== false && value !== undefined) node.setAttribute(name, value === true ? "" : value);
    }
    node.append(...children);
    return node;
  }

  function parsed(textarea, fallback) {
    const text = textarea.value.trim();
    if (!text) return fallback;
    try { return JSON.parse(text); } catch { return undefined; }
  }

  // Rows only for what they can show whole: a message with a role and string content (no parts,
  // tool calls or names). Anything else keeps the JSON box, so nothing is lost by editing.
  const simpleMessage = (m) => m && typeof m === "object" && Object.keys(m).every((k) => k === "role" || k === "content")
    && typeof (m.content ?? "") === "string" && ROLES.includes(m.role);

  function rowButtons(list, index, redraw) {
    const move = (delta) => () => {
      const [item] = list.splice(index, 1);
      list.splice(index + delta, 0, item);
      redraw();
    };
    const up = el("button", { type: "button", class: "mesh-icon mesh-up", title: "Move up", "aria-label": "Move up", disabled: index === 0, text: "↑" });
    const down = el("button", { type: "button", class: "mesh-icon mesh-down", title: "Move down", "aria-label": "Move down", disabled: index === list.length - 1, text: "↓" });
    const remove = el("button", { type: "button", class: "mesh-icon mesh-remove", title: "Remove", "aria-label": "Remove", text: "✕" });
    up.addEventListener("click", move(-1));
    down.addEventListener("click", move(1));
    remove.addEventListener("click", () => { list.splice(index, 1); redraw(); });
    return el("div", { class: "mesh-row-buttons" }, up, down, remove);
  }

  function messagesEditor(source) {
    const messages = parsed(source, []);
    if (!Array.isArray(messages) || !messages.every(simpleMessage)) return;
    const rows = el("div", { class: "mesh-rows", id: "message-rows" });
    const add = el("button", { type: "button", class: "button mesh-add", id: "add-message", text: "+ Add message" });
    const sync = () => { source.value = JSON.stringify(messages, null, 2); source.dispatchEvent(new Event("input", { bubbles: true })); };
    const redraw = () => {
      rows.replaceChildren(...messages.map((message, index) => {
        const role = el("select", { class: "mesh-role", "aria-label": `Message ${index + 1} role` },
          ...ROLES.map((r) => el("option", { value: r, selected: r === message.role, text: r })));
        const content = el("textarea", { class: "mesh-content", rows: 3, "aria-label": `Message ${index + 1} content`, placeholder: "Content; {{variable}} marks a slot" });
        content.value = message.content ?? "";
        role.addEventListener("change", () => { message.role = role.value; sync(); });
        content.addEventListener("input", () => { message.content = content.value; sync(); });
        return el("div", { class: "mesh-row mesh-message-row" }, el("span", { class: "mesh-row-number", text: String(index + 1) }), role, content, rowButtons(messages, index, redraw));
      }));
      if (!messages.length) rows.append(el("p", { class: "help mesh-empty", text: "No messages yet: add the first one." }));
      sync();
    };
    add.addEventListener("click", () => { messages.push({ role: messages.length ? "user" : "system", content: "" }); redraw(); rows.querySelector(".mesh-message-row:last-child .mesh-content")?.focus(); });
    source.hidden = true;
    source.after(el("div", { class: "mesh-editor" }, rows, add));
    redraw();
  }

  function variablesEditor(source) {
    const variables = parsed(source, []);
    if (!Array.isArray(variables)) return;
    const rows = el("div", { class: "mesh-rows", id: "variable-rows" });
    const add = el("button", { type: "button", class: "button mesh-add", id: "add-variable", text: "+ Add variable" });
    const sync = () => {
      const clean = variables.map((v) => ({ name: v.name, default: v.default ?? null, description: v.description || "" }));
      source.value = clean.length ? JSON.stringify(clean, null, 2) : "";
      source.dispatchEvent(new Event("input", { bubbles: true }));
    };
    const redraw = () => {
      rows.replaceChildren(...variables.map((variable, index) => {
        const name = el("input", { type: "text", class: "mesh-var-name", placeholder: "name", "aria-label": `Variable ${index + 1} name` });
        const required = el("input", { type: "checkbox", class: "mesh-var-required", checked: variable.default === null || variable.default === undefined });
        const fallback = el("input", { type: "text", class: "mesh-var-default", placeholder: "default value", "aria-label": `Variable ${index + 1} default` });
        const description = el("input", { type: "text", class: "mesh-var-description", placeholder: "what it is (optional)" });
        name.value = variable.name || "";
        fallback.value = variable.default ?? "";
        fallback.disabled = required.checked;
        description.value = variable.description || "";
        name.addEventListener("input", () => { variable.name = name.value.trim(); sync(); });
        fallback.addEventListener("input", () => { variable.default = fallback.value; sync(); });
        description.addEventListener("input", () => { variable.description = description.value; sync(); });
        required.addEventListener("change", () => {
          fallback.disabled = required.checked;
          variable.default = required.checked ? null : fallback.value;
          sync();
        });
        return el("div", { class: "mesh-row mesh-variable-row" }, name,
          el("label", { class: "mesh-required" }, required, " required"), fallback, description, rowButtons(variables, index, redraw));
      }));
      if (!variables.length) rows.append(el("p", { class: "help mesh-empty", text: "No declared variables: every slot then needs a value in each request." }));
      sync();
    };
    add.addEventListener("click", () => { variables.push({ name: "", default: null, description: "" }); redraw(); rows.querySelector(".mesh-variable-row:last-child .mesh-var-name")?.focus(); });
    source.hidden = true;
    source.after(el("div", { class: "mesh-editor" }, rows, add));
    redraw();
  }

  function preview(panel) {
    const form = panel.closest("form") || document.querySelector("#prompttemplate_form");
    const messages = form.querySelector('[data-editor="messages"]');
    const variables = form.querySelector('[data-editor="variables"]');
    const token = form.querySelector("[name=csrfmiddlewaretoken]").value;
    const samples = panel.querySelector("#preview-samples");
    const missing = panel.querySelector("#preview-missing");
    const output = panel.querySelector("#preview-rendered");
    const values = {};
    let timer, sequence = 0;
    const show = (data) => {
      const slots = data.slots || [];
      samples.replaceChildren(...slots.map((slot) => {
        const input = el("input", { type: "text", class: "mesh-sample", "data-slot": slot.name, placeholder: slot.default === null ? "required" : `default: ${slot.default}` });
        input.value = values[slot.name] || "";
        input.addEventListener("input", () => { values[slot.name] = input.value; schedule(); });
        return el("label", { class: "mesh-sample-row" }, el("code", { text: `{{${slot.name}}}` }), input);
      }));
      if (!slots.length) samples.append(el("p", { class: "help", text: "No {{slots}} in these messages." }));
      const absent = data.missing || [];
      missing.textContent = absent.length ? `Missing: ${absent.join(", ")}` : data.error || "Every slot has a value.";
      missing.className = data.error || (data.missing || []).length ? "errornote" : "help mesh-ok";
      output.replaceChildren(...(data.rendered || []).map((m) => el("div", { class: `mesh-rendered mesh-rendered-${m.role}` },
        el("span", { class: "mesh-rendered-role", text: m.role }), el("div", { class: "mesh-rendered-content", text: typeof m.content === "string" ? m.content : JSON.stringify(m.content) }))));
    };
    const refresh = async () => {
      const mine = ++sequence;
      let body;
      try {
        body = JSON.stringify({ messages: JSON.parse(messages.value || "[]"), variables: JSON.parse(variables.value || "[]"), values });
      } catch { show({ error: "The JSON above is not valid yet." }); return; }
      const response = await fetch(panel.dataset.previewUrl, { method: "POST", body, headers: { "Content-Type": "application/json", "X-CSRFToken": token }, credentials: "same-origin" });
      const data = await response.json().catch(() => ({ error: `Preview failed (${response.status}).` }));
      if (mine === sequence) show(data);
    };
    const schedule = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };
    form.addEventListener("input", (event) => { if (event.target === messages || event.target === variables) schedule(); });
    refresh();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll('[data-editor="messages"]').forEach(messagesEditor);
    document.querySelectorAll('[data-editor="variables"]').forEach(variablesEditor);
    document.querySelectorAll("#template-live-preview").forEach(preview);
  });
})();
