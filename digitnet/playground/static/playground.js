/* digitnet Playground: draw a digit, see it prepared the way MNIST digits were, and watch a model read it.
 *
 * The preparation is digitnet/images.py's to_mnist, step for step (crop the ink, fit it into 20×20 with
 * PIL's Lanczos filter, centre it by mass in 28×28), so the page shows what `digitnet predict` would feed
 * the model; tests/test_playground.py compares the two on the same pixels. The models are ONNX files
 * written by `digitnet export` (normalisation included: they take pixels in 0..1) and run with
 * onnxruntime-web's single-threaded WebAssembly backend, which needs no cross-origin isolation headers.
 *
 * Markup: <div class="digitnet-playground" data-models='[{"label": "CNN", "url": "models/cnn.onnx"}]'
 *          data-ort="ort/"></div>, after <script src=".../ort.wasm.min.js"> and this file.
 */
(function () {
  "use strict";

  const MNIST_SIZE = 28;
  const BOX = 20; // MNIST fits the ink into 20×20, leaving a 4-pixel margin
  const INK_THRESHOLD = 0.25; // of the brightest ink value: what counts as part of the digit when cropping
  const FRAME_SPAN = 0.8; // a page frame's box covers at least this share of the height and width
  const FRAME_EDGE_SHARE = 0.9; // ... and at least this share of its ink lies along the box's edges
  const LANCZOS_SUPPORT = 3.0;
  const CANVAS_SIZE = 280;
  const STROKE_WIDTH = 22;
  const STEP_SIZE = 84; // CSS pixels: each preparation step is shown 3× its 28-pixel size // at 280 px a digit drawn to fill the pad ends up ~2 px wide, as MNIST strokes

  // ------------------------------------------------------------------------------------ preparation

  /** Python's round(): halves go to the even neighbour (so does numpy's .round()). */
  function roundHalfEven(x) {
    const floor = Math.floor(x);
    const rest = x - floor;
    if (rest < 0.5) return floor;
    if (rest > 0.5) return floor + 1;
    return floor % 2 === 0 ? floor : floor + 1;
  }

  function median(values) {
    const sorted = Float64Array.from(values).sort();
    const middle = sorted.length >> 1;
    return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
  }

  /** scipy.ndimage.label with its default structure (4-connected): component index per pixel, 0 = none. */
  function label4(mask, width, height) {
    const labels = new Int32Array(width * height);
    const stack = [];
    let count = 0;
    for (let start = 0; start < mask.length; start++) {
      if (!mask[start] || labels[start]) continue;
      count += 1;
      labels[start] = count;
      stack.push(start);
      while (stack.length) {
        const index = stack.pop();
        const x = index % width;
        const y = (index - x) / width;
        const neighbours = [
          x > 0 ? index - 1 : -1,
          x < width - 1 ? index + 1 : -1,
          y > 0 ? index - width : -1,
          y < height - 1 ? index + width : -1,
        ];
        for (const next of neighbours) {
          if (next >= 0 && mask[next] && !labels[next]) {
            labels[next] = count;
            stack.push(next);
          }
        }
      }
    }
    return { labels, count };
  }

  /** images.py's _drop_page_frame: remove a frame drawn around the page (a box, a scanner's edge). */
  function dropPageFrame(ink, width, height) {
    const mask = ink.map((v) => (v > INK_THRESHOLD * 255 ? 1 : 0));
    const { labels, count } = label4(mask, width, height);
    if (!count) return ink;
    const boxes = Array.from({ length: count + 1 }, () => ({ top: height, bottom: -1, left: width, right: -1 }));
    for (let index = 0; index < labels.length; index++) {
      const box = boxes[labels[index]];
      if (!labels[index]) continue;
      const x = index % width;
      const y = (index - x) / width;
      box.top = Math.min(box.top, y);
      box.bottom = Math.max(box.bottom, y);
      box.left = Math.min(box.left, x);
      box.right = Math.max(box.right, x);
    }
    const band = Math.max(2, roundHalfEven(0.03 * Math.min(height, width)));
    const frames = new Set();
    for (let component = 1; component <= count; component++) {
      const box = boxes[component];
      const boxHeight = box.bottom - box.top + 1;
      const boxWidth = box.right - box.left + 1;
      if (boxHeight < FRAME_SPAN * height || boxWidth < FRAME_SPAN * width) continue;
      let near = 0;
      let total = 0;
      for (let y = box.top; y <= box.bottom; y++) {
        for (let x = box.left; x <= box.right; x++) {
          if (labels[y * width + x] !== component) continue;
          const ys = y - box.top;
          const xs = x - box.left;
          total += 1;
          if (ys < band || ys >= boxHeight - band || xs < band || xs >= boxWidth - band) near += 1;
        }
      }
      if (near / total >= FRAME_EDGE_SHARE) frames.add(component);
    }
    if (!frames.size) return ink;
    return ink.map((v, index) => (frames.has(labels[index]) ? 0 : v));
  }

  function lanczos(x) {
    const sinc = (t) => (t === 0 ? 1 : Math.sin(Math.PI * t) / (Math.PI * t));
    return x >= -LANCZOS_SUPPORT && x < LANCZOS_SUPPORT ? sinc(x) * sinc(x / LANCZOS_SUPPORT) : 0;
  }

  /** PIL's precompute_coeffs (Resample.c): for each output pixel, its first input pixel and weights. */
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterScale = Math.max(scale, 1);
    const support = LANCZOS_SUPPORT * filterScale;
    const result = [];
    for (let out = 0; out < outSize; out++) {
      const centre = (out + 0.5) * scale;
      const first = Math.max(Math.trunc(centre - support + 0.5), 0);
      const last = Math.min(Math.trunc(centre + support + 0.5), inSize);
      const weights = [];
      let sum = 0;
      for (let x = first; x < last; x++) {
        const w = lanczos((x - centre + 0.5) / filterScale);
        weights.push(w);
        sum += w;
      }
      result.push({ first, weights: weights.map((w) => (sum !== 0 ? w / sum : w)) });
    }
    return result;
  }

  /** PIL's Image.resize(LANCZOS) of a mode "F" image: horizontal pass, then vertical, float32 between. */
  function resizeLanczos(pixels, width, height, newWidth, newHeight) {
    let data = Float32Array.from(pixels);
    let w = width;
    if (newWidth !== width) {
      const coeffs = coefficients(width, newWidth);
      const out = new Float32Array(newWidth * height);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < newWidth; x++) {
          const { first, weights } = coeffs[x];
          let sum = 0;
          for (let k = 0; k < weights.length; k++) sum += data[y * w + first + k] * weights[k];
          out[y * newWidth + x] = sum;
        }
      }
      data = out;
      w = newWidth;
    }
    if (newHeight !== height) {
      const coeffs = coefficients(height, newHeight);
      const out = new Float32Array(w * newHeight);
      for (let y = 0; y < newHeight; y++) {
        const { first, weights } = coeffs[y];
        for (let x = 0; x < w; x++) {
          let sum = 0;
          for (let k = 0; k < weights.length; k++) sum += data[(first + k) * w + x] * weights[k];
          out[y * w + x] = sum;
        }
      }
      data = out;
    }
    return data;
  }

  /** images.py's _centre_by_mass: shift by whole pixels, never cutting ink, so the mass sits centred. */
  function centreByMass(frame, size) {
    let total = 0;
    let sumY = 0;
    let sumX = 0;
    let top = size;
    let bottom = -1;
    let left = size;
    let right = -1;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const v = frame[y * size + x];
        total += v;
        sumY += y * v;
        sumX += x * v;
        if (v !== 0) {
          top = Math.min(top, y);
          bottom = Math.max(bottom, y);
          left = Math.min(left, x);
          right = Math.max(right, x);
        }
      }
    }
    const centre = (size - 1) / 2;
    const clip = (v, low, high) => Math.min(Math.max(v, low), high);
    const dy = clip(roundHalfEven(centre - sumY / total), -top, size - 1 - bottom);
    const dx = clip(roundHalfEven(centre - sumX / total), -left, size - 1 - right);
    const shifted = new Float64Array(size * size);
    for (let y = top; y <= bottom; y++) {
      for (let x = left; x <= right; x++) shifted[(y + dy) * size + x + dx] = frame[y * size + x];
    }
    return shifted;
  }

  /**
   * digitnet.images.to_mnist in JavaScript: (height × width) gray 0–255 → the steps and the 28×28 digit.
   * Returns null when no ink stands out from the background (as to_mnist raises).
   */
  function prepare(gray, width, height) {
    const pixels = Float64Array.from(gray);
    const border = [];
    for (let x = 0; x < width; x++) border.push(pixels[x]);
    for (let x = 0; x < width; x++) border.push(pixels[(height - 1) * width + x]);
    for (let y = 0; y < height; y++) border.push(pixels[y * width]);
    for (let y = 0; y < height; y++) border.push(pixels[y * width + width - 1]);
    const background = median(border);
    // The background is whatever the frame mostly is; ink is what differs from it, in either direction.
    let ink = pixels.map((v) => Math.max(background < 128 ? v - background : background - v, 0));
    let peak = ink.reduce((a, b) => Math.max(a, b), 0);
    if (peak > 0) {
      const first = 255 / peak;
      ink = dropPageFrame(
        ink.map((v) => v * first),
        width,
        height,
      );
    }
    peak = ink.reduce((a, b) => Math.max(a, b), 0);
    if (peak < 16) return null;
    const scaleInk = 255 / peak;
    ink = ink.map((v) => v * scaleInk);
    let top = height;
    let bottom = -1;
    let left = width;
    let right = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (ink[y * width + x] > INK_THRESHOLD * 255) {
          top = Math.min(top, y);
          bottom = Math.max(bottom, y);
          left = Math.min(left, x);
          right = Math.max(right, x);
        }
      }
    }
    const cropWidth = right - left + 1;
    const cropHeight = bottom - top + 1;
    const cropped = new Float64Array(cropWidth * cropHeight);
    for (let y = 0; y < cropHeight; y++) {
      for (let x = 0; x < cropWidth; x++) cropped[y * cropWidth + x] = ink[(y + top) * width + x + left];
    }
    const scale = BOX / Math.max(cropHeight, cropWidth);
    const fitWidth = Math.max(1, roundHalfEven(cropWidth * scale));
    const fitHeight = Math.max(1, roundHalfEven(cropHeight * scale));
    const fitted = resizeLanczos(cropped, cropWidth, cropHeight, fitWidth, fitHeight).map((v) =>
      Math.min(Math.max(v, 0), 255),
    );
    const frame = new Float64Array(MNIST_SIZE * MNIST_SIZE);
    const frameTop = (MNIST_SIZE - fitHeight) >> 1;
    const frameLeft = (MNIST_SIZE - fitWidth) >> 1;
    for (let y = 0; y < fitHeight; y++) {
      for (let x = 0; x < fitWidth; x++) {
        frame[(y + frameTop) * MNIST_SIZE + x + frameLeft] = fitted[y * fitWidth + x];
      }
    }
    const digit = Uint8Array.from(centreByMass(frame, MNIST_SIZE), (v) => roundHalfEven(v));
    return {
      cropped: { width: cropWidth, height: cropHeight, data: cropped },
      fitted: { width: fitWidth, height: fitHeight, data: fitted },
      digit,
    };
  }

  // -------------------------------------------------------------------------------------------- page

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    for (const child of children || []) node.append(child);
    return node;
  }

  /** Draw 0–255 intensities (white ink on black) into a small canvas, one canvas pixel per value. */
  function paint(canvas, image) {
    canvas.width = image.width;
    canvas.height = image.height;
    // Shown at STEP_SIZE on its longer side, its own shape kept (a canvas ignores object-fit).
    const zoom = STEP_SIZE / Math.max(image.width, image.height);
    canvas.style.width = Math.round(image.width * zoom) + "px";
    canvas.style.height = Math.round(image.height * zoom) + "px";
    const context = canvas.getContext("2d");
    const rgba = context.createImageData(image.width, image.height);
    for (let i = 0; i < image.data.length; i++) {
      const v = Math.round(image.data[i]);
      rgba.data.set([v, v, v, 255], i * 4);
    }
    context.putImageData(rgba, 0, 0);
  }

  function softmax(logits) {
    const top = Math.max(...logits);
    const exps = logits.map((v) => Math.exp(v - top));
    const sum = exps.reduce((a, b) => a + b, 0);
    return exps.map((v) => v / sum);
  }

  function build(root) {
    const models = JSON.parse(root.dataset.models || "[]");
    const ort = window.ort;
    ort.env.wasm.wasmPaths = new URL(root.dataset.ort || "ort/", document.baseURI).href;
    // One thread: static hosting sends no cross-origin isolation headers, and these models are tiny.
    ort.env.wasm.numThreads = 1;
    ort.env.logLevel = "error";

    const pad = element("canvas", { class: "dp-pad", width: CANVAS_SIZE, height: CANVAS_SIZE });
    pad.setAttribute("aria-label", "Draw a digit here");
    const clear = element("button", { type: "button", class: "md-button dp-clear" }, ["Clear"]);
    const select = element("select", { class: "dp-model", "aria-label": "Model" });
    models.forEach((model, index) => select.append(element("option", { value: String(index) }, [model.label])));
    const prediction = element("span", { id: "prediction", class: "dp-prediction" }, ["–"]);
    const status = element("span", { class: "dp-status" }, ["loading the model…"]);
    const stepNames = ["cropped ink", "fitted into 20×20", "centred by mass in 28×28: what the model sees"];
    const steps = stepNames.map(() =>
      element("div", { class: "dp-frame" }, [element("canvas", { class: "dp-step", width: 28, height: 28 })]),
    ).map((frame) => frame.firstChild);
    const bars = [];
    const barRows = [];
    for (let digit = 0; digit < 10; digit++) {
      const bar = element("span", { class: "dp-bar" });
      const value = element("span", { class: "dp-value" }, [""]);
      bars.push({ bar, value });
      barRows.push(
        element("div", { class: "dp-row", "data-digit": String(digit) }, [
          element("span", { class: "dp-digit" }, [String(digit)]),
          element("span", { class: "dp-track" }, [bar]),
          value,
        ]),
      );
    }
    root.replaceChildren(
      element("div", { class: "dp-draw" }, [
        pad,
        element("div", { class: "dp-controls" }, [clear, select]),
      ]),
      element("div", { class: "dp-steps" }, [
        ...steps.map((canvas, i) =>
          element("figure", {}, [canvas.parentNode, element("figcaption", {}, [stepNames[i]])]),
        ),
      ]),
      element("div", { class: "dp-result" }, [
        element("p", { class: "dp-top" }, ["prediction: ", prediction, " ", status]),
        ...barRows,
      ]),
    );

    const context = pad.getContext("2d", { willReadFrequently: true });
    function blank() {
      context.fillStyle = "#000";
      context.fillRect(0, 0, pad.width, pad.height);
    }
    blank();

    // Opened as a file (file://), the browser refuses to fetch the model and onnxruntime's WebAssembly:
    // the page says how to serve it instead of passing on the loader's own words, also after a stroke.
    const onDisk = () => window.location.protocol === "file:";
    const FROM_DISK =
      "error: browsers load the model only from a web server, not from a file opened on disk; " +
      "serve the site (mkdocs serve, or python -m http.server in the built site) and open it there";

    const sessions = new Map();
    function session() {
      const model = models[Number(select.value) || 0];
      if (!sessions.has(model.url)) sessions.set(model.url, ort.InferenceSession.create(model.url));
      return sessions.get(model.url);
    }

    /** The pad as gray values 0–255 (it is drawn in white on black, so red = green = blue). */
    function grayPixels() {
      const rgba = context.getImageData(0, 0, pad.width, pad.height).data;
      const gray = new Float64Array(pad.width * pad.height);
      for (let i = 0; i < gray.length; i++) gray[i] = rgba[i * 4];
      return gray;
    }

    // One prediction at a time; strokes that arrive meanwhile are read by one more pass when it ends.
    let running = false;
    let again = false;
    let current = Promise.resolve();
    function update() {
      if (running) {
        again = true;
        return current;
      }
      running = true;
      current = (async () => {
        try {
          do {
            again = false;
            await predictOnce();
          } while (again);
        } catch (error) {
          status.textContent = onDisk() ? FROM_DISK : "error: " + error.message;
          console.error(error);
        } finally {
          running = false;
        }
      })();
      return current;
    }

    async function predictOnce() {
      const prepared = prepare(grayPixels(), pad.width, pad.height);
      if (!prepared) {
        steps.forEach((canvas) => paint(canvas, { width: 28, height: 28, data: new Float64Array(784) }));
        bars.forEach(({ bar, value }) => {
          bar.style.width = "0";
          value.textContent = "";
        });
        prediction.textContent = "–";
        root.dataset.state = "empty";
        return;
      }
      paint(steps[0], prepared.cropped);
      paint(steps[1], prepared.fitted);
      paint(steps[2], { width: 28, height: 28, data: prepared.digit });
      const input = Float32Array.from(prepared.digit, (v) => v / 255);
      const loaded = await session();
      const outputs = await loaded.run({ pixels: new ort.Tensor("float32", input, [1, 1, 28, 28]) });
      const probabilities = softmax(Array.from(outputs.logits.data));
      const best = probabilities.indexOf(Math.max(...probabilities));
      probabilities.forEach((p, digit) => {
        bars[digit].bar.style.width = (100 * p).toFixed(1) + "%";
        bars[digit].value.textContent = (100 * p).toFixed(1) + "%";
        barRows[digit].classList.toggle("dp-best", digit === best);
      });
      prediction.textContent = String(best);
      root.dataset.state = "predicted";
    }

    let last = null;
    function point(event) {
      const box = pad.getBoundingClientRect();
      return [((event.clientX - box.left) * pad.width) / box.width, ((event.clientY - box.top) * pad.height) / box.height];
    }
    pad.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      pad.setPointerCapture(event.pointerId);
      last = point(event);
      context.fillStyle = "#fff";
      context.beginPath();
      context.arc(last[0], last[1], STROKE_WIDTH / 2, 0, 2 * Math.PI);
      context.fill();
    });
    pad.addEventListener("pointermove", (event) => {
      if (!last) return;
      const next = point(event);
      context.strokeStyle = "#fff";
      context.lineWidth = STROKE_WIDTH;
      context.lineCap = "round";
      context.lineJoin = "round";
      context.beginPath();
      context.moveTo(last[0], last[1]);
      context.lineTo(next[0], next[1]);
      context.stroke();
      last = next;
      update();
    });
    const end = () => {
      if (!last) return;
      last = null;
      update();
    };
    pad.addEventListener("pointerup", end);
    pad.addEventListener("pointercancel", end);
    clear.addEventListener("click", () => {
      blank();
      update();
    });
    select.addEventListener("change", () => {
      status.textContent = "loading the model…";
      session().then(() => (status.textContent = ""));
      update();
    });

    session().then(
      () => {
        status.textContent = "";
        root.dataset.readyMs = performance.now().toFixed(0); // since navigation: the page's load time
        root.dataset.ready = "true";
      },
      (error) => {
        status.textContent = onDisk() ? FROM_DISK : "error: the model did not load (" + error.message + ")";
        console.error(error);
      },
    );
    /** A promise that settles once the drawing as it is now has been read (for tests). */
    const idle = () => update();
    return { grayPixels, update, idle, pad, select };
  }

  const api = { prepare, roundHalfEven, pages: [] };
  window.digitnetPlayground = api;
  function start() {
    document.querySelectorAll(".digitnet-playground").forEach((root) => api.pages.push(build(root)));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
