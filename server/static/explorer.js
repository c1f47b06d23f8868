// The latent explorer: sliders along the principal components of the
// latent space, a pad to draw a digit and see its code and reconstruction,
// and a walk between the codes of two test digits. It only talks to the
// JSON API of the server that serves it (see /openapi.json).
//
// Every canvas that shows a decoded image counts its renders in
// data-renders, which the browser tests watch.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  let C = 1, W = 28, H = 28; // image shape, from /v1/model
  let stats = null;   // the latent statistics, or axes when there are none
  const K = 10;       // sliders

  // api calls the JSON API: a GET without body, a POST with one. It
  // returns the parsed answer or throws an Error with the server's message.
  async function api(path, body) {
    const opts = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const res = await fetch(path, opts);
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      const msg = (data && data.error) || `${res.status} ${res.statusText}`;
      throw new Error(`${path}: ${msg}`);
    }
    return data;
  }

  function status(msg, isError) {
    const el = $("status");
    el.textContent = msg;
    el.className = isError ? "error" : "";
  }

  // latest wraps an async function so that one call runs at a time: calls
  // made while one runs collapse into one more run, with the latest
  // arguments, when it ends. Requests thus follow the server's pace instead
  // of piling up while a slider moves.
  function latest(fn) {
    let running = false;
    let pending = null;
    return (...args) => {
      pending = args;
      if (running) return;
      running = true;
      (async () => {
        while (pending) {
          const a = pending;
          pending = null;
          try {
            await fn(...a);
          } catch (e) {
            status(e.message, true);
          }
        }
        running = false;
      })();
    };
  }

  const clamp01 = (v) => Math.min(1, Math.max(0, v));

  // drawImage paints an image of the model's shape (C×H×W values in [0,1]:
  // one plane of gray, white ink on black, or red, green and blue planes)
  // onto canvas, upscaled without smoothing.
  function drawImage(canvas, pix, w, h) {
    const off = document.createElement("canvas");
    off.width = w;
    off.height = h;
    const octx = off.getContext("2d");
    const img = octx.createImageData(w, h);
    const colour = pix.length >= 3 * w * h;
    for (let i = 0; i < w * h; i++) {
      for (let c = 0; c < 3; c++) {
        img.data[4 * i + c] = Math.round(clamp01(pix[colour ? c * w * h + i : i]) * 255);
      }
      img.data[4 * i + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, canvas.width, canvas.height);
    canvas.dataset.renders = String(Number(canvas.dataset.renders || 0) + 1);
  }

  async function decodeTo(canvas, code) {
    const r = await api("/v1/decode", { codes: [code] });
    drawImage(canvas, r.images[0], W, H);
    status("");
  }

  // ---- Principal components ----

  const sliders = [];

  function pcCode() {
    const c = stats.mean.slice();
    sliders.forEach((s, k) => {
      const step = Number(s.value) * Math.sqrt(Math.max(stats.eigenvalues[k], 0));
      const q = stats.eigenvectors[k];
      for (let j = 0; j < c.length; j++) c[j] += step * q[j];
    });
    return c;
  }

  const updatePC = latest(() => decodeTo($("pc-out"), pcCode()));

  function setupSliders(b) {
    const total = stats.eigenvalues.reduce((a, l) => a + Math.max(l, 0), 0) || 1;
    const box = $("sliders");
    for (let k = 0; k < Math.min(K, b); k++) {
      const label = document.createElement("label");
      const share = (100 * Math.max(stats.eigenvalues[k], 0) / total).toFixed(1);
      label.textContent = stats.fitted ? `PC ${k + 1} (${share}%)` : `axis ${k + 1}`;
      label.htmlFor = `pc-${k}`;
      const input = document.createElement("input");
      Object.assign(input, { type: "range", id: `pc-${k}`, min: "-3", max: "3", step: "0.05", value: "0" });
      const out = document.createElement("output");
      out.textContent = "0.00";
      input.addEventListener("input", () => {
        out.textContent = Number(input.value).toFixed(2);
        updatePC();
      });
      box.append(label, input, out);
      sliders.push(input);
    }
    const set = (values) => {
      sliders.forEach((s, k) => {
        s.value = String(values[k]);
        s.nextElementSibling.textContent = Number(s.value).toFixed(2);
      });
      updatePC();
    };
    $("pc-reset").addEventListener("click", () => set(sliders.map(() => 0)));
    $("pc-random").addEventListener("click", () => set(sliders.map(() => {
      // A standard normal draw (Box-Muller), kept within the sliders.
      const z = Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
      return Math.max(-3, Math.min(3, z)).toFixed(2);
    })));
    updatePC();
  }

  // ---- Drawing pad ----

  const pad = $("pad");
  // The pad is read back at every stroke (padPixels).
  const pctx = pad.getContext("2d", { willReadFrequently: true });

  function clearPad() {
    pctx.fillStyle = "#000";
    pctx.fillRect(0, 0, pad.width, pad.height);
    $("code-numbers").textContent = "";
    $("code-strip").getContext("2d").clearRect(0, 0, $("code-strip").width, $("code-strip").height);
  }

  function padPoint(e) {
    const r = pad.getBoundingClientRect();
    return { x: (e.clientX - r.left) * pad.width / r.width, y: (e.clientY - r.top) * pad.height / r.height };
  }

  // padPixels returns the drawing as W×H values in [0,1], prepared as MNIST
  // prepared its digits: the ink's bounding box scaled so that its longer
  // side is 20/28 of the image, then shifted so that the centre of mass is
  // in the middle. It returns null for an empty pad.
  function padPixels() {
    const src = pctx.getImageData(0, 0, pad.width, pad.height).data;
    let x0 = pad.width, y0 = pad.height, x1 = -1, y1 = -1;
    for (let y = 0; y < pad.height; y++) {
      for (let x = 0; x < pad.width; x++) {
        if (src[4 * (y * pad.width + x)] > 24) {
          x0 = Math.min(x0, x); x1 = Math.max(x1, x);
          y0 = Math.min(y0, y); y1 = Math.max(y1, y);
        }
      }
    }
    if (x1 < 0) return null;
    const bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    const k = (20 / 28) * Math.min(W, H) / Math.max(bw, bh);
    const dw = bw * k, dh = bh * k;
    const off = document.createElement("canvas");
    off.width = W;
    off.height = H;
    const octx = off.getContext("2d", { willReadFrequently: true });
    octx.fillStyle = "#000";
    octx.fillRect(0, 0, W, H);
    octx.imageSmoothingEnabled = true;
    octx.imageSmoothingQuality = "high";
    octx.drawImage(pad, x0, y0, bw, bh, (W - dw) / 2, (H - dh) / 2, dw, dh);
    const d = octx.getImageData(0, 0, W, H).data;
    let mass = 0, mx = 0, my = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const v = d[4 * (y * W + x)];
        mass += v; mx += v * x; my += v * y;
      }
    }
    const dx = Math.round((W - 1) / 2 - mx / mass), dy = Math.round((H - 1) / 2 - my / mass);
    const out = new Array(W * H).fill(0);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const sx = x - dx, sy = y - dy;
        if (sx >= 0 && sx < W && sy >= 0 && sy < H) out[y * W + x] = d[4 * (sy * W + sx)] / 255;
      }
    }
    // A colour model takes the gray drawing in each of its planes.
    return C === 1 ? out : [].concat(...Array.from({ length: C }, () => out));
  }

  // showCode writes the code's values and paints them as a strip: red above
  // the mean code, blue below, by how many standard deviations.
  function showCode(code) {
    $("code-numbers").textContent = code.map((v) => v.toFixed(2)).join("  ");
    const strip = $("code-strip");
    const ctx = strip.getContext("2d");
    const cw = strip.width / code.length;
    code.forEach((v, j) => {
      const sd = Math.sqrt(Math.max(stats.cov ? stats.cov[j][j] : 1, 1e-12));
      const t = Math.max(-1, Math.min(1, (v - stats.mean[j]) / (3 * sd)));
      const u = Math.round(255 * (1 - Math.abs(t)));
      ctx.fillStyle = t >= 0 ? `rgb(255,${u},${u})` : `rgb(${u},${u},255)`;
      ctx.fillRect(j * cw, 0, Math.ceil(cw), strip.height);
    });
    strip.dataset.renders = String(Number(strip.dataset.renders || 0) + 1);
  }

  const updateDraw = latest(async () => {
    const px = padPixels();
    if (!px) return;
    drawImage($("pad-input"), px, W, H);
    const r = await api("/v1/encode", { images: [px] });
    showCode(r.codes[0]);
    await decodeTo($("pad-out"), r.codes[0]);
  });

  function setupPad() {
    clearPad();
    pctx.strokeStyle = "#fff";
    pctx.fillStyle = "#fff";
    pctx.lineWidth = 22;
    pctx.lineCap = "round";
    pctx.lineJoin = "round";
    let last = null;
    pad.addEventListener("pointerdown", (e) => {
      e.preventDefault();
      pad.setPointerCapture(e.pointerId);
      last = padPoint(e);
      pctx.beginPath();
      pctx.arc(last.x, last.y, pctx.lineWidth / 2, 0, 2 * Math.PI);
      pctx.fill();
      updateDraw();
    });
    pad.addEventListener("pointermove", (e) => {
      if (!last) return;
      const p = padPoint(e);
      pctx.beginPath();
      pctx.moveTo(last.x, last.y);
      pctx.lineTo(p.x, p.y);
      pctx.stroke();
      last = p;
      updateDraw();
    });
    const end = () => {
      if (last) updateDraw();
      last = null;
    };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    $("pad-clear").addEventListener("click", () => {
      clearPad();
      pctx.fillStyle = "#fff";
    });
  }

  // ---- Interpolation ----

  let A = null, B = null, codeA = null, codeB = null, nextIsA = true;
  const thumbs = new Map();

  const updateInterp = latest(async () => {
    if (!codeA || !codeB) return;
    const t = Number($("interp-t").value);
    $("interp-t-value").textContent = t.toFixed(2);
    await decodeTo($("interp-out"), codeA.map((a, j) => (1 - t) * a + t * codeB[j]));
  });

  async function encodePair() {
    for (const [ex, cls] of [[A, "a"], [B, "b"]]) {
      thumbs.forEach((c) => { if (c.classList.contains(cls)) c.classList.remove(cls); });
      if (ex) thumbs.get(ex.index).classList.add(cls);
    }
    if (A) {
      drawImage($("interp-a"), A.image, W, H);
      $("interp-a-label").textContent = `A: #${A.index}, a ${A.label}`;
    }
    if (B) {
      drawImage($("interp-b"), B.image, W, H);
      $("interp-b-label").textContent = `B: #${B.index}, a ${B.label}`;
    }
    if (!A || !B) return;
    const r = await api("/v1/encode", { images: [A.image, B.image] });
    codeA = r.codes[0];
    codeB = r.codes[1];
    updateInterp();
  }

  async function setupExamples() {
    $("interp-t").addEventListener("input", () => updateInterp());
    let r;
    try {
      r = await api("/v1/examples?n=24");
    } catch (e) {
      $("examples").textContent = "No test digits to pick from: " + e.message;
      return;
    }
    for (const ex of r.examples) {
      const c = document.createElement("canvas");
      c.width = W;
      c.height = H;
      c.title = `#${ex.index}: a ${ex.label}`;
      c.dataset.index = String(ex.index);
      // A button for the keyboard too: Tab to it, Enter or Space to pick.
      c.tabIndex = 0;
      c.setAttribute("role", "button");
      c.setAttribute("aria-label", `test image ${ex.index}, a ${ex.label}: pick it`);
      drawImage(c, ex.image, W, H);
      const pick = () => {
        if (nextIsA) A = ex; else B = ex;
        nextIsA = !nextIsA;
        encodePair().catch((e) => status(e.message, true));
      };
      c.addEventListener("click", pick);
      c.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") {
          e.preventDefault();
          pick();
        }
      });
      thumbs.set(ex.index, c);
      $("examples").append(c);
    }
    // Start with two different digits.
    A = r.examples[0];
    B = r.examples.find((ex) => ex.label !== A.label) || r.examples[r.examples.length - 1];
    await encodePair();
  }

  // ---- Start ----

  async function start() {
    const m = await api("/v1/model");
    [C, H, W] = m.image_shape;
    const b = m.bottleneck;
    let info = `${m.kind || "unknown"} autoencoder, code of ${b} ${b === 1 ? "value" : "values"}`;
    const t = m.training;
    if (m.dataset) info += `, trained on ${m.dataset}`;
    if (t && t.imported) info += `, imported from ${t.imported}`;
    if (t && t.test_loss && t.test_loss.length) {
      const n = t.test_loss.length;
      info += ` for ${n} ${n === 1 ? "epoch" : "epochs"} (test MSE ${t.test_loss[n - 1].toFixed(4)})`;
    }
    $("model-info").textContent = info + `; running on ${m.device}.`;
    if (m.stats) {
      stats = Object.assign({ fitted: true }, m.stats);
    } else {
      // No latent statistics: the sliders move along the code's axes.
      const eye = Array.from({ length: b }, (_, i) => Array.from({ length: b }, (_, j) => (i === j ? 1 : 0)));
      stats = { fitted: false, mean: new Array(b).fill(0), eigenvalues: new Array(b).fill(1), eigenvectors: eye, cov: null };
      $("pcs-help").textContent = "The model was exported without latent statistics, so the sliders move " +
        "the first code values from 0 instead of along principal components.";
    }
    setupSliders(b);
    setupPad();
    await setupExamples();
    // Tell a screenshot (and the tests) when the first pictures are drawn:
    // the principal components' decoding and, with test digits to mix, the
    // mix (decoded after the pair's codes come back, without being
    // awaited). Give up after 30 s.
    const drawn = () => $("pc-out").dataset.renders && (!codeA || !codeB || $("interp-out").dataset.renders);
    for (let i = 0; i < 1500 && !drawn(); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    document.body.dataset.ready = "true";
  }

  start().catch((e) => status(e.message, true));
})();
