// vidcolor's page: photos (compare, re-render, hints, download), films (preview, keyframes, jobs), reports.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

function say(text, kind = "error") {
  const box = $("#message");
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = !text;
}

async function call(url, options = {}) {
  // fetch that turns a server's {"error": ...} into a thrown Error with its message
  const response = await fetch(url, options);
  const type = response.headers.get("Content-Type") || "";
  const body = type.includes("application/json") ? await response.json() : null;
  if (!response.ok) throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  return body;
}

function settings() {
  return {
    decode: $("#decode").value,
    temperature: $("#temperature").value,
    mrf_iters: $("#mrf-iters").value,
    mrf_sigma: $("#mrf-sigma").value,
    reference: $("#reference").value,
    temporal: $("#temporal").checked,
  };
}

// ---------- hints: strokes painted at the picture's own resolution ----------
class HintCanvas {
  constructor(canvas, width, height) {
    this.canvas = canvas;
    canvas.width = width;
    canvas.height = height;
    this.context = canvas.getContext("2d");
    this.strokes = [];
    this.base = null; // a loaded hints image
    this.colour = "#d03020";
    this.size = 8;
    this.erase = false;
    this.changed = () => {};
    canvas.addEventListener("pointerdown", (event) => this.start(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    window.addEventListener("pointerup", () => this.end());
  }
  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }
  scale() {
    return this.canvas.width / this.canvas.getBoundingClientRect().width;
  }
  start(event) {
    event.preventDefault();
    this.current = { colour: this.colour, size: this.size * this.scale(), erase: this.erase, points: [this.point(event)] };
    this.strokes.push(this.current);
    this.draw();
  }
  move(event) {
    if (!this.current) return;
    this.current.points.push(this.point(event));
    this.draw();
  }
  end() {
    if (!this.current) return;
    this.current = null;
    this.changed();
  }
  undo() {
    this.strokes.pop();
    this.draw();
    this.changed();
  }
  clear() {
    this.strokes = [];
    this.base = null;
    this.draw();
    this.changed();
  }
  empty() {
    return !this.base && this.strokes.length === 0;
  }
  draw() {
    const c = this.context;
    c.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (this.base) c.drawImage(this.base, 0, 0, this.canvas.width, this.canvas.height);
    for (const stroke of this.strokes) {
      c.globalCompositeOperation = stroke.erase ? "destination-out" : "source-over";
      c.strokeStyle = c.fillStyle = stroke.colour;
      c.lineWidth = stroke.size;
      c.lineCap = c.lineJoin = "round";
      c.beginPath();
      const [x0, y0] = stroke.points[0];
      c.moveTo(x0, y0);
      for (const [x, y] of stroke.points.slice(1)) c.lineTo(x, y);
      if (stroke.points.length === 1) {
        c.arc(x0, y0, stroke.size / 2, 0, 2 * Math.PI);
        c.fill();
      } else c.stroke();
    }
    c.globalCompositeOperation = "source-over";
  }
  blob() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }
  async load(file) {
    const image = new Image();
    image.src = URL.createObjectURL(file);
    await image.decode();
    if (image.naturalWidth !== this.canvas.width || image.naturalHeight !== this.canvas.height) {
      throw new Error(`${file.name}: hints are ${image.naturalWidth}x${image.naturalHeight}, the picture ${this.canvas.width}x${this.canvas.height}`);
    }
    this.base = image;
    this.strokes = [];
    this.draw();
    this.changed();
  }
}

function hintTools(container, hints, name) {
  container.replaceChildren($("#hint-tools").content.cloneNode(true));
  $(".colour-pick", container).addEventListener("input", (e) => (hints.colour = e.target.value));
  $(".brush", container).addEventListener("input", (e) => (hints.size = Number(e.target.value)));
  $(".eraser", container).addEventListener("change", (e) => (hints.erase = e.target.checked));
  $(".undo", container).addEventListener("click", () => hints.undo());
  $(".clear", container).addEventListener("click", () => hints.clear());
  $(".save-hints", container).addEventListener("click", async () => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await hints.blob());
    link.download = `${name}.hints.png`;
    link.click();
  });
  $(".load-hints", container).addEventListener("change", async (e) => {
    try {
      await hints.load(e.target.files[0]);
    } catch (error) {
      say(error.message);
    }
  });
}

function comparer(card) {
  const grey = $(".grey", card);
  $(".slider", card).addEventListener("input", (e) => {
    grey.style.clipPath = `inset(0 ${100 - e.target.value}% 0 0)`;
  });
}

// ---------- photos ----------
const photos = new Map(); // id -> {photo, card, hints}

function refreshReferences() {
  const select = $("#reference");
  const chosen = select.value;
  select.replaceChildren(new Option("none", ""));
  for (const { photo } of photos.values()) select.add(new Option(photo.name, photo.id));
  select.value = chosen;
}

function addPhotoCard(photo) {
  const card = $("#photo-card").content.firstElementChild.cloneNode(true);
  card.dataset.id = photo.id;
  $(".name", card).textContent = photo.name;
  $(".grey", card).src = `/api/photos/${photo.id}/grey.png`;
  $(".colour", card).src = `/api/photos/${photo.id}/grey.png`;
  const hints = new HintCanvas($(".hints", card), photo.width, photo.height);
  hints.changed = () => $("#live").checked && renderPhoto(photo.id);
  $(".render", card).addEventListener("click", () => renderPhoto(photo.id));
  $(".hint-toggle", card).addEventListener("click", () => {
    const canvas = $(".hints", card);
    canvas.hidden = !canvas.hidden;
    $(".hint-tools", card).hidden = canvas.hidden;
    if (!canvas.hidden) $(".slider", card).value = 0, $(".grey", card).style.clipPath = "inset(0 100% 0 0)";
  });
  hintTools($(".hint-tools", card), hints, photo.name.replace(/\.[^.]+$/, ""));
  comparer(card);
  $("#gallery").append(card);
  photos.set(photo.id, { photo, card, hints });
  refreshReferences();
}

async function renderPhoto(id) {
  const entry = photos.get(id);
  const status = $(".status", entry.card);
  status.textContent = "rendering...";
  entry.card.dataset.state = "rendering";
  const form = new FormData();
  form.append("settings", JSON.stringify(settings()));
  if (!entry.hints.empty()) form.append("hints", await entry.hints.blob(), "hints.png");
  try {
    const { photo } = await call(`/api/photos/${id}/render`, { method: "POST", body: form });
    const colour = $(".colour", entry.card);
    colour.src = `/api/photos/${id}/colour.png?${Date.now()}`;
    await colour.decode().catch(() => {});
    status.textContent = `${photo.width}x${photo.height}, ${photo.seconds.toFixed(2)} s` + (photo.notices.length ? ` (${photo.notices.join("; ")})` : "");
    const download = $(".download", entry.card);
    download.href = `/api/photos/${id}/download`;
    download.hidden = false;
    entry.card.dataset.state = "rendered";
  } catch (error) {
    status.textContent = "failed";
    entry.card.dataset.state = "failed";
    say(error.message);
  }
}

async function uploadPhotos(files) {
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  say("");
  let body;
  try {
    body = await call("/api/photos", { method: "POST", body: form });
  } catch (error) {
    say(error.message);
    return;
  }
  if (body.errors.length) say(body.errors.join("; "));
  for (const photo of body.photos) {
    addPhotoCard(photo);
    renderPhoto(photo.id);
  }
}

function setUpPhotos() {
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => (e.preventDefault(), drop.classList.add("over")));
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    uploadPhotos([...e.dataTransfer.files]);
  });
  $("#pick").addEventListener("change", (e) => uploadPhotos([...e.target.files]));
  $("#folder-photos").addEventListener("change", async (e) => {
    if (!e.target.value) return;
    try {
      const body = await call("/api/photos/from-folder", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ path: e.target.value }),
      });
      for (const photo of body.photos) addPhotoCard(photo), renderPhoto(photo.id);
    } catch (error) {
      say(error.message);
    }
    e.target.value = "";
  });
  $("#render-all").addEventListener("click", () => photos.forEach((_, id) => renderPhoto(id)));
  for (const id of ["#decode", "#temperature", "#mrf-iters", "#mrf-sigma", "#reference"]) {
    $(id).addEventListener("change", () => $("#live").checked && photos.forEach((_, photoId) => renderPhoto(photoId)));
  }
}

// ---------- films ----------
let keyframeHints = null;

function filmPath() {
  return $("#film").value;
}

async function showFilm() {
  const path = filmPath();
  $("#film-facts").textContent = "";
  if (!path) return;
  try {
    const facts = await call(`/api/films/facts?path=${encodeURIComponent(path)}`);
    const duration = facts.duration ? `${facts.duration.toFixed(2)} s` : "length unknown";
    $("#film-facts").textContent = `${facts.width}x${facts.height}, ${duration}, ${facts.fps ? facts.fps.toFixed(2) : "?"} fps`;
    $("#frame-time").max = facts.duration || "";
  } catch (error) {
    say(error.message);
  }
  showKeyframes();
}

async function showKeyframes() {
  const strip = $("#keyframes");
  strip.replaceChildren();
  const { keyframes } = await call(`/api/films/keyframes?path=${encodeURIComponent(filmPath())}`);
  for (const name of keyframes) {
    const figure = document.createElement("figure");
    const image = new Image();
    image.src = `/api/folder-file?path=${encodeURIComponent(name)}&${Date.now()}`;
    figure.append(image, name.split("/").pop());
    strip.append(figure);
  }
}

async function takeFrame() {
  const path = filmPath();
  const seconds = Number($("#frame-time").value || 0);
  const editor = $("#keyframe-editor");
  const image = new Image();
  image.className = "colour";
  image.src = `/api/films/frame.png?path=${encodeURIComponent(path)}&t=${seconds}`;
  try {
    await image.decode();
  } catch {
    try {
      await call(image.src);
    } catch (error) {
      say(error.message);
    }
    return;
  }
  const compare = document.createElement("div");
  compare.className = "compare";
  const canvas = document.createElement("canvas");
  compare.append(image, canvas);
  const tools = document.createElement("div");
  editor.replaceChildren(compare, tools);
  keyframeHints = new HintCanvas(canvas, image.naturalWidth, image.naturalHeight);
  keyframeHints.seconds = seconds;
  hintTools(tools, keyframeHints, `t${seconds}`);
  $("#save-keyframe").disabled = false;
}

async function saveKeyframe() {
  if (!keyframeHints || keyframeHints.empty()) return say("paint some colours on the frame first");
  const form = new FormData();
  form.append("path", filmPath());
  form.append("t", keyframeHints.seconds);
  form.append("settings", JSON.stringify(settings()));
  form.append("hints", await keyframeHints.blob(), "hints.png");
  try {
    const { keyframe } = await call("/api/films/keyframe", { method: "POST", body: form });
    say(`keyframe saved: ${keyframe}`, "info");
    $("#keyframe-editor img").src = `/api/folder-file?path=${encodeURIComponent(keyframe)}&${Date.now()}`;
    showKeyframes();
  } catch (error) {
    say(error.message);
  }
}

async function preview() {
  const video = $("#preview-video");
  $("#preview").disabled = true;
  try {
    const body = await call("/api/films/preview", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: filmPath(), seconds: Number($("#preview-seconds").value), settings: settings() }),
    });
    video.src = body.preview;
    video.hidden = false;
  } catch (error) {
    say(error.message);
  } finally {
    $("#preview").disabled = false;
  }
}

async function startJob() {
  try {
    await call("/api/jobs", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: filmPath(), settings: settings(), overwrite: $("#overwrite").checked }),
    });
    say("");
  } catch (error) {
    say(error.message);
  }
}

function showJobs(jobs) {
  const body = $("#jobs tbody");
  body.replaceChildren();
  for (const job of jobs) {
    const row = body.insertRow();
    row.dataset.id = job.id;
    row.dataset.state = job.state;
    const bar = document.createElement("progress");
    bar.max = job.total || 1;
    bar.value = job.state === "done" ? bar.max : job.frames;
    const cells = [job.film, job.state, null, job.fps || "", job.eta != null ? `${job.eta} s` : "", null];
    cells.forEach((text, i) => {
      const cell = row.insertCell();
      if (text !== null) cell.textContent = text;
      if (i === 1 && job.message) cell.title = job.message;
      if (i === 2) cell.append(bar, ` ${job.frames}${job.total ? " / " + job.total : ""}`);
    });
    const actions = row.cells[5];
    if (job.state === "running" || job.state === "queued") {
      const cancel = document.createElement("button");
      cancel.textContent = "Cancel";
      cancel.className = "cancel";
      cancel.addEventListener("click", () => call(`/api/jobs/${job.id}/cancel`, { method: "POST" }).catch((e) => say(e.message)));
      actions.append(cancel);
    } else if (job.state === "done") {
      const link = document.createElement("a");
      link.className = "button download";
      link.href = `/api/jobs/${job.id}/download`;
      link.textContent = `Download ${job.output}`;
      actions.append(link);
    } else if (job.message) {
      actions.textContent = job.message;
    }
  }
}

function setUpFilms() {
  $("#film").addEventListener("change", showFilm);
  $("#film-upload").addEventListener("change", async (e) => {
    const file = e.target.files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    say(`uploading ${file.name}...`, "info");
    try {
      const { path } = await call("/api/films", { method: "POST", body: form });
      await loadFiles(path);
      say(`uploaded ${file.name}`, "info");
    } catch (error) {
      say(error.message);
    }
    e.target.value = "";
  });
  $("#preview").addEventListener("click", preview);
  $("#take-frame").addEventListener("click", takeFrame);
  $("#save-keyframe").addEventListener("click", saveKeyframe);
  $("#start-job").addEventListener("click", startJob);
  const events = new EventSource("/api/jobs/events");
  events.onmessage = (event) => showJobs(JSON.parse(event.data));
}

// ---------- the folder's files and reports ----------
async function loadFiles(chooseFilm) {
  const { files, reports, folder } = await call("/api/files");
  $("#folder").textContent = `serving ${folder}/`;
  const films = $("#film");
  const chosen = chooseFilm || films.value;
  films.replaceChildren();
  const folderPhotos = $("#folder-photos");
  folderPhotos.replaceChildren(new Option("...", ""));
  for (const file of files) {
    if (file.kind === "video") films.add(new Option(file.path, file.path));
    else folderPhotos.add(new Option(file.path, file.path));
  }
  if (chosen) films.value = chosen;
  const list = $("#report-list");
  list.replaceChildren();
  for (const report of reports) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = `/reports/${report}/index.html`;
    link.textContent = report;
    item.append(link);
    list.append(item);
  }
  if (!reports.length) list.textContent = "none yet";
  showFilm();
}

function setUpTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const other of document.querySelectorAll(".tab")) other.classList.toggle("active", other === tab);
      for (const panel of document.querySelectorAll(".panel")) panel.hidden = panel.id !== tab.dataset.tab;
    });
  }
}

setUpTabs();
setUpPhotos();
setUpFilms();
loadFiles().catch((error) => say(error.message));
