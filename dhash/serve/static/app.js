// dhash serve page: search by an uploaded image or a random database item, show the top k as a grid.
"use strict";
const $ = (id) => document.getElementById(id);
let classes = [];
let canEncode = false;

function labelNames(labels) {
  if (!labels || labels.length === 0) return "";
  return labels.map((c) => classes[c] ?? String(c)).join(", ");
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function itemImage(id) {
  return `/items/${encodeURIComponent(id)}/image`;
}

function showQuery(src, caption) {
  $("query-image").src = src;
  $("query-caption").textContent = caption;
  $("query").hidden = false;
}

function queryLabels() {
  const value = $("label").value;
  return value === "" ? null : [Number(value)];
}

function showResults(response) {
  const hits = response.results[0];
  const wanted = queryLabels();
  const grid = $("grid");
  grid.replaceChildren();
  hits.indices.forEach((index, rank) => {
    const id = hits.ids ? hits.ids[rank] : null;
    const labels = hits.labels ? hits.labels[rank] : null;
    const tile = document.createElement("figure");
    tile.className = "tile result";
    if (wanted && labels) tile.classList.add(labels.some((c) => wanted.includes(c)) ? "relevant" : "irrelevant");
    if (id !== null) {
      const img = document.createElement("img");
      img.src = itemImage(id);
      img.alt = id;
      tile.append(img);
    }
    const caption = document.createElement("figcaption");
    caption.textContent = `#${rank + 1} · d=${hits.distances[rank]} · ${labelNames(labels) || "no label"}` +
      `\n${id ?? "index " + index}`;
    tile.append(caption);
    grid.append(tile);
  });
  $("results-title").textContent = `${hits.indices.length} nearest of the index (${response.took_ms} ms)`;
  $("results").hidden = false;
}

function k() {
  return Math.max(1, Number($("k").value) || 10);
}

async function searchFile(file) {
  showError("");
  if (!canEncode) return showError("this server has no model (start it with --model) to encode images");
  showQuery(URL.createObjectURL(file), file.name);
  const form = new FormData();
  form.append("image", file);
  try {
    showResults(await call(`/search/image?k=${k()}`, { method: "POST", body: form }));
  } catch (err) {
    showError(err.message);
  }
}

async function searchRandom() {
  showError("");
  try {
    const item = await call("/items/random");
    if (item.labels && item.labels.length) $("label").value = String(item.labels[0]);
    showQuery(item.id !== null ? itemImage(item.id) : "", `${item.id ?? "index " + item.index} · ${labelNames(item.labels)}`);
    const body = JSON.stringify({ codes: [item.code], k: k() });
    showResults(await call("/search", { method: "POST", headers: { "Content-Type": "application/json" }, body }));
  } catch (err) {
    showError(err.message);
  }
}

async function start() {
  try {
    const stats = await call("/stats");
    classes = stats.classes || [];
    canEncode = stats.model !== null;
    $("stats").textContent = `${stats.codes.toLocaleString()} codes of ${stats.bits} bits · ${stats.kind} index · ` +
      (stats.kernel ? `${stats.kernel} kernel · ` : "") + `${stats.dataset ?? "no image data set"} · ` +
      (canEncode ? `model ${stats.model.method}` : "no model: search by random item only");
    classes.forEach((name, c) => $("label").append(new Option(name, String(c))));
  } catch (err) {
    showError(err.message);
  }
}

const drop = $("drop");
["dragenter", "dragover"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((e) => drop.addEventListener(e, (ev) => { ev.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (ev) => { if (ev.dataTransfer.files.length) searchFile(ev.dataTransfer.files[0]); });
$("file").addEventListener("change", (ev) => { if (ev.target.files.length) searchFile(ev.target.files[0]); });
$("random").addEventListener("click", searchRandom);
start();
