// The imagegw playground: plain DOM code, no build step, no inline code (the page's CSP
// forbids it, and Trusted Types forbid HTML strings: everything is built with DOM calls).
// The API key lives in the `state` object below and nowhere else.
"use strict";

(() => {
  const API = new URL("v1/", window.location.href); // works under an API stage prefix too
  const state = { key: "", models: [], model: null, busy: false, objectUrls: [] };
  const $ = (id) => document.getElementById(id);

  const SELECT_PARAMETERS = [
    // [request field, capability list, label]
    ["quality", "qualities", "Quality"],
    ["style", "styles", "Style"],
    ["background", "backgrounds", "Background"],
    ["output_format", "output_formats", "Output format"],
  ];
  const RESOLVED_FIELDS = ["model", "size", "quality", "background", "output_format", "created"];
  const GATEWAY_HEADERS = [
    "x-imagegw-model",
    "x-imagegw-ignored-params",
    "x-imagegw-redirected-from",
    "x-imagegw-images-filtered",
    "x-imagegw-images-failed",
    "x-imagegw-cost-usd",
  ];

  function element(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else if (name === "className") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) node.append(child);
    return node;
  }

  function setStatus(id, text) {
    $(id).textContent = text;
  }

  async function api(method, path, body) {
    const headers = { Authorization: `Bearer ${state.key}`, Accept: "application/json" };
    const init = { method, headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(new URL(path, API), init);
  }

  async function errorOf(response) {
    let error = null;
    try {
      const parsed = await response.json();
      if (parsed && typeof parsed.error === "object") error = parsed.error;
    } catch (_) {
      error = null;
    }
    return {
      status: response.status,
      requestId: response.headers.get("x-request-id"),
      error: error || { message: `HTTP ${response.status} ${response.statusText}`, type: null, param: null, code: null },
    };
  }

  // ------------------------------------------------------------------------------ models

  async function loadModels() {
    state.key = $("api-key").value.trim();
    if (!state.key) {
      setStatus("setup-status", "Enter an API key first.");
      return;
    }
    setStatus("setup-status", "Loading models…");
    let response;
    try {
      response = await api("GET", "models");
    } catch (exc) {
      setStatus("setup-status", `The gateway could not be reached: ${exc.message}`);
      return;
    }
    if (!response.ok) {
      const { status, error } = await errorOf(response);
      setStatus("setup-status", `${status}: ${error.message}`);
      return;
    }
    const listed = await response.json();
    state.models = (listed.data || []).filter((model) => model && model.capabilities);
    const select = $("model");
    select.replaceChildren();
    // The playground generates: edit-only models (capabilities.generations false) are listed,
    // but cannot be chosen.
    const generates = (model) => model.status !== "retired" && model.capabilities.generations !== false;
    for (const model of state.models) {
      const usable = generates(model);
      const why = model.status === "retired" ? model.status : "edits only";
      const label = usable ? model.id : `${model.id} (${why})`;
      select.append(element("option", { value: model.id, text: label, disabled: !usable }));
    }
    const first = state.models.find(generates);
    if (first) select.value = first.id;
    setStatus("setup-status", `${state.models.length} models.`);
    $("request").hidden = false;
    $("code").hidden = false;
    chooseModel();
  }

  function capabilities() {
    return (state.model && state.model.capabilities) || {};
  }

  // This gateway streams every model (OpenAI's image_generation.* events; docs/streaming.md).
  // A model whose capabilities say otherwise gets no stream option.
  function streams(caps) {
    return caps.streaming !== false;
  }

  function chooseModel() {
    state.model = state.models.find((model) => model.id === $("model").value) || null;
    const caps = capabilities();
    $("model-description").textContent = caps.description || "";
    const fields = [];
    const sizes = caps.sizes || [];
    if (sizes.length || caps.free_size) {
      const size = selectField("size", "Size", sizes, "default");
      fields.push(size);
      if (caps.free_size) {
        const rule = caps.free_size;
        fields.push(
          field("custom_size", "Custom size (WxH)", element("input", {
            id: "param-custom_size",
            type: "text",
            placeholder: `e.g. 1280x720 (multiple of ${rule.multiple_of || 1})`,
            "data-param": "size",
          }), "size"),
        );
      }
    }
    const nMax = (caps.n && caps.n.max) || 1;
    fields.push(field("n", `Images (n, 1–${nMax})`, element("input", {
      id: "param-n", type: "number", min: 1, max: nMax, value: 1, step: 1,
    })));
    for (const [name, list, label] of SELECT_PARAMETERS) {
      if ((caps[list] || []).length) fields.push(selectField(name, label, caps[list], "default"));
    }
    fields.push(selectField("response_format", "Response format", caps.response_formats || ["b64_json", "url"], "b64_json (default)"));
    if (streams(caps)) {
      fields.push(field("stream", "Stream partial images", element("input", { id: "param-stream", type: "checkbox" }), "stream", true));
      fields.push(selectField("partial_images", "Partial images", ["0", "1", "2", "3"], "default"));
    }
    $("parameters").replaceChildren(...fields);
    for (const input of $("parameters").querySelectorAll("input, select")) {
      input.addEventListener("input", showRequest);
    }
    showRequest();
  }

  function field(name, label, control, param = name, checkbox = false) {
    const wrapper = element("div", { className: checkbox ? "field checkbox" : "field", "data-param": param });
    const caption = element("label", { for: control.id, text: label });
    if (checkbox) wrapper.append(control, caption);
    else wrapper.append(caption, control);
    return wrapper;
  }

  function selectField(name, label, values, defaultLabel) {
    const select = element("select", { id: `param-${name}` }, element("option", { value: "", text: defaultLabel }));
    for (const value of values) select.append(element("option", { value, text: value }));
    return field(name, label, select);
  }

  function value(name) {
    const control = $(`param-${name}`);
    return control ? control.value.trim() : "";
  }

  // ----------------------------------------------------------------------------- request

  function requestBody() {
    const body = { model: $("model").value, prompt: $("prompt").value };
    const size = value("custom_size") || value("size");
    if (size) body.size = size;
    const n = value("n");
    if (n && n !== "1") body.n = /^\d+$/.test(n) ? Number(n) : n;
    for (const [name] of SELECT_PARAMETERS) if (value(name)) body[name] = value(name);
    if (value("response_format")) body.response_format = value("response_format");
    const stream = $("param-stream");
    if (stream && stream.checked) {
      body.stream = true;
      if (value("partial_images")) body.partial_images = Number(value("partial_images"));
    }
    return body;
  }

  function shellQuote(text) {
    return `'${text.replace(/'/g, "'\\''")}'`;
  }

  function python(value) {
    if (value === null || value === undefined) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (Array.isArray(value)) return `[${value.map(python).join(", ")}]`;
    if (typeof value === "object") {
      return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${python(v)}`).join(", ")}}`;
    }
    return JSON.stringify(value); // JSON strings and numbers are Python literals
  }

  function curlCommand(body) {
    const url = new URL("images/generations", API).href;
    return [
      `curl -s${body.stream ? "N" : ""} ${shellQuote(url)} \\`,
      '  -H "Authorization: Bearer $IMAGEGW_API_KEY" \\',
      "  -H 'Content-Type: application/json' \\",
      `  -d ${shellQuote(JSON.stringify(body))}`,
    ].join("\n");
  }

  function pythonCode(body) {
    const args = Object.entries(body).map(([name, v]) => `    ${name}=${python(v)},`);
    const lines = [
      "import os",
      "",
      "from openai import OpenAI",
      "",
      `client = OpenAI(base_url=${JSON.stringify(API.href.replace(/\/$/, ""))}, api_key=os.environ["IMAGEGW_API_KEY"])`,
      `${body.stream ? "stream" : "result"} = client.images.generate(`,
      ...args,
      ")",
    ];
    if (body.stream) lines.push("for event in stream:", "    print(event.type)");
    return lines.join("\n");
  }

  function showRequest() {
    if (!state.model) return;
    const body = requestBody();
    $("curl").textContent = curlCommand(body);
    $("python").textContent = pythonCode(body);
  }

  async function copy(id) {
    const text = $(id).textContent;
    try {
      await navigator.clipboard.writeText(text);
      setStatus("copy-status", "Copied.");
    } catch (_) {
      setStatus("copy-status", "The browser refused the clipboard: select the text below.");
    }
  }

  // ------------------------------------------------------------------------------ result

  function clearResult() {
    for (const url of state.objectUrls) URL.revokeObjectURL(url);
    state.objectUrls = [];
    $("images").replaceChildren();
    $("resolved").replaceChildren();
    $("error").replaceChildren();
    $("error").hidden = true;
    for (const invalid of document.querySelectorAll(".invalid")) {
      invalid.classList.remove("invalid");
      for (const control of invalid.querySelectorAll("input, select, textarea")) control.removeAttribute("aria-invalid");
    }
  }

  const MEDIA_TYPES = { png: "image/png", jpeg: "image/jpeg", webp: "image/webp", gif: "image/gif" };

  function imageUrl(item, outputFormat) {
    if (typeof item.b64_json === "string") {
      const bytes = Uint8Array.from(atob(item.b64_json), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes], { type: MEDIA_TYPES[outputFormat] || "image/png" }));
      state.objectUrls.push(url);
      return url;
    }
    return typeof item.url === "string" ? item.url : null;
  }

  function showImage(slot, item, outputFormat, caption, partial = false) {
    const url = imageUrl(item, outputFormat);
    if (!url) return;
    const extension = outputFormat === "jpeg" ? "jpg" : outputFormat || "png";
    const image = element("img", { src: url, alt: caption, className: partial ? "partial" : null });
    const link = element("a", { href: url, download: `imagegw-${slot + 1}.${extension}`, text: "download" });
    const figure = element("figure", { "data-slot": slot, "data-final": !partial }, image, element("figcaption", {}, `${caption} · `, link));
    if (item.revised_prompt) figure.append(element("figcaption", { text: `revised prompt: ${item.revised_prompt}` }));
    const existing = $("images").querySelector(`figure[data-slot="${slot}"]`);
    if (existing) existing.replaceWith(figure);
    else $("images").append(figure);
  }

  function describe(key, text) {
    $("resolved").append(element("dt", { text: key }), element("dd", { text }));
  }

  // The gateway says what an answer cost: {amount, currency, estimated}, or null (and the
  // header "unknown") when the model has no known price.
  function costText(cost, header) {
    if (cost && typeof cost.amount === "number") {
      return `${cost.currency || "USD"} ${cost.amount.toFixed(4)}${cost.estimated ? " (estimated)" : ""}`;
    }
    if (cost === null || header === "unknown") return "unknown (no known price for this model)";
    return header ? `USD ${header}` : null;
  }

  function showResolved(answer, response) {
    describe("request id", response.headers.get("x-request-id") || "-");
    for (const name of RESOLVED_FIELDS) {
      if (answer[name] !== undefined && answer[name] !== null) describe(name, String(answer[name]));
    }
    if (answer.usage) describe("usage", JSON.stringify(answer.usage));
    const cost = costText(answer.cost, response.headers.get("x-imagegw-cost-usd"));
    if (cost) describe("cost", cost);
    for (const header of GATEWAY_HEADERS) {
      const found = response.headers.get(header);
      if (found && header !== "x-imagegw-cost-usd") describe(header, found);
    }
  }

  function showError(status, error, requestId) {
    const details = element("dl");
    const rows = [["status", String(status)], ["type", error.type], ["param", error.param], ["code", error.code], ["request id", requestId]];
    for (const [key, text] of rows) {
      if (text) details.append(element("dt", { text: key }), element("dd", { text }));
    }
    $("error").replaceChildren(element("div", { className: "headline", text: `${status} · ${error.message}` }), details);
    $("error").hidden = false;
    if (error.param) {
      for (const wrapper of document.querySelectorAll(`[data-param="${CSS.escape(error.param)}"]`)) {
        wrapper.classList.add("invalid");
        for (const control of wrapper.querySelectorAll("input, select, textarea")) control.setAttribute("aria-invalid", "true");
      }
    }
  }

  // -------------------------------------------------------------------------- streaming

  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (block) => {
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const key = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (key === "event") name = text;
        else if (key === "data") data.push(text);
      }
      if (data.length && data.join("\n") !== "[DONE]") onEvent(name, JSON.parse(data.join("\n")));
    };
    for (;;) {
      const { value: chunk, done } = await reader.read();
      if (done) break;
      buffer = (buffer + decoder.decode(chunk, { stream: true })).replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) !== -1) {
        dispatch(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
      }
    }
    if (buffer.trim()) dispatch(buffer);
  }

  async function showStream(response, body) {
    let completed = null;
    let failed = false;
    let partials = 0;
    await readEvents(response, (name, event) => {
      const type = event.type || name;
      if (event.error) {
        failed = true;
        showError(response.status, event.error, response.headers.get("x-request-id"));
      } else if (type.endsWith(".partial_image")) {
        const index = event.partial_image_index ?? 0;
        partials += 1;
        setStatus("progress", `Partial image ${index + 1} received…`);
        showImage(0, event, event.output_format || body.output_format, `partial ${index + 1}`, true);
      } else if (type.endsWith(".completed")) {
        completed = event;
        const after = partials ? ` (after ${partials} partial image${partials === 1 ? "" : "s"})` : "";
        showImage(0, event, event.output_format || body.output_format, `image 1${after}`);
      }
    });
    if (completed) {
      setStatus("progress", "Done.");
      const { b64_json: _image, type: _type, ...resolved } = completed;
      showResolved(resolved, response);
    } else if (!failed) {
      setStatus("progress", "The stream ended without a completed image.");
    }
  }

  // --------------------------------------------------------------------------- generate

  async function generate() {
    if (state.busy || !state.model) return;
    const body = requestBody();
    showRequest();
    clearResult();
    $("outcome").hidden = false;
    state.busy = true;
    $("generate").disabled = true;
    setStatus("progress", body.stream ? "Waiting for the first image…" : "Generating…");
    const started = performance.now();
    try {
      const response = await api("POST", "images/generations", body);
      if (!response.ok) {
        const { status, error, requestId } = await errorOf(response);
        setStatus("progress", "");
        showError(status, error, requestId);
        return;
      }
      if ((response.headers.get("content-type") || "").startsWith("text/event-stream")) {
        await showStream(response, body);
        return;
      }
      const answer = await response.json();
      const data = answer.data || [];
      data.forEach((item, index) => showImage(index, item, answer.output_format, `image ${index + 1}`));
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      setStatus("progress", `${data.length} image${data.length === 1 ? "" : "s"} in ${seconds} s.`);
      const { data: _data, ...resolved } = answer;
      showResolved(resolved, response);
    } catch (exc) {
      setStatus("progress", "");
      showError("network", { message: `The request failed: ${exc.message}` }, null);
    } finally {
      state.busy = false;
      $("generate").disabled = false;
    }
  }

  // ------------------------------------------------------------------------------ wiring

  document.addEventListener("DOMContentLoaded", () => {
    $("connect").addEventListener("click", loadModels);
    $("api-key").addEventListener("keydown", (event) => {
      if (event.key === "Enter") loadModels();
    });
    $("model").addEventListener("change", chooseModel);
    $("prompt").addEventListener("input", showRequest);
    $("prompt").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) generate();
    });
    $("generate").addEventListener("click", generate);
    $("copy-curl").addEventListener("click", () => copy("curl"));
    $("copy-python").addEventListener("click", () => copy("python"));
  });
})();
