// Record TF.js reference outputs for the TF.js -> ONNX converter tests.
//
// Usage (TensorFlow.js pure-JS CPU backend; tfjs-node is not needed):
//   mkdir -p /tmp/tfjsref && cd /tmp/tfjsref && npm init -y && npm install @tensorflow/tfjs@4.22.0 jpeg-js@0.4.4
//   NODE_PATH=/tmp/tfjsref/node_modules node tools/record_tfjs_reference.mjs \
//       var/cache/extracted ../shared/data/faces/lfw/Aaron_Eckhart/Aaron_Eckhart_0001.jpg \
//       tests/fixtures/tfjs_reference [model ...]
//
// For each model it writes tests/fixtures/tfjs_reference/<model>.json.gz (gzipped JSON) holding, per case
// ("random": mulberry32-seeded uint8 noise; "image": a centre crop of the LFW photo, nearest-resized),
// stored at 1/repeat of the model resolution to keep the fixtures small (< 1.5 MB in all):
//   input:   {u8 (base64 uint8, NHWC), shape, repeat, scale, offset}; the float32 model input is
//            nearest-upsample(u8, repeat) * scale + offset, computed in float32 (the test redoes it);
//   outputs: {name: {shape, dtype: "float32", data (base64 little-endian), view}} where view says
//            which part of the TF.js output was kept ("full", or "grid<k>": [:, ::k, ::k, :] for big maps);
//   topk:    for centernet's heatmap, the 100 largest values and their flat indices.
// Models load through a custom IO handler (model.json + shards read from disk), not the network.
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.env.NODE_PATH || process.cwd(), 'x.js'));
const tf = require('@tensorflow/tfjs');
const jpeg = require('jpeg-js');

/** name -> [package path, input scale, input offset, repeat, outputs to record, grid stride for big maps] */
const MODELS = {
  blazeface: ['human/models/blazeface', 1 / 127.5, -1, 4, null, 1],
  faceres: ['human/models/faceres', 1 / 255, 0, 4, null, 1],
  emotion: ['human/models/emotion', 2 / 255, -1, 1, null, 1],
  centernet: ['human/models/centernet', 1, 0, 8, ['tower_0/keypoints', 'tower_0/wh'], 8],
  antispoof: ['human/models/antispoof', 1 / 255, 0, 2, null, 1],
  liveness: ['human-models/models/liveness', 1 / 255, 0, 1, null, 1],
  'faceres-deep': ['human-models/models/faceres-deep', 1 / 255, 0, 4, null, 1],
  mobilefacenet: ['human-models/models/mobilefacenet', 1 / 255, 0, 2, null, 1],
  mobileface: ['human-models/models/mobileface', 1 / 255, 0, 2, null, 1],
  // NanoDet-g: NCHW input (from ONNX via onnx-tf), BGR mean/std scaling done by the caller.
  nanodet: ['human-models/models/nanodet', 1 / 58, -2, 4, null, 1, { nchw: true, rows: 8 }],
  // MoveNet MultiPose: int32 0..255 input of any size (256x256 here); the cut heads keeneye converts and
  // the graph's own decoded output (Identity:0: 6 people x [17 x (y, x, score), ymin, xmin, ymax, xmax,
  // score]) to check keeneye's numpy box decode against.
  'movenet-multipose': ['human-models/models/movenet-multipose', 1, 0, 4,
    ['StatefulPartitionedCall/Sigmoid', 'StatefulPartitionedCall/box_scale_0/conv2d_5/BiasAdd',
      'StatefulPartitionedCall/box_offset_0/conv2d_6/BiasAdd', 'Identity:0'], 1, { int32: true, size: [256, 256] }],
};

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ioHandler(jsonPath) {
  return {
    load: async () => {
      const model = JSON.parse(fs.readFileSync(jsonPath, 'utf8'));
      const specs = [];
      const buffers = [];
      for (const group of model.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(fs.readFileSync(path.join(path.dirname(jsonPath), p)));
      }
      const all = Buffer.concat(buffers);
      return {
        modelTopology: model.modelTopology,
        format: model.format,
        generatedBy: model.generatedBy,
        convertedBy: model.convertedBy,
        signature: model.signature,
        userDefinedMetadata: model.userDefinedMetadata,
        weightSpecs: specs,
        weightData: all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength),
      };
    },
  };
}

/** Nearest-neighbour resize of an RGBA jpeg-js image region to h x w x channels uint8. */
function cropResize(img, h, w, channels) {
  const side = Math.round(Math.min(img.width, img.height) * 0.56);
  const x0 = Math.round((img.width - side) / 2);
  const y0 = Math.round((img.height - side) / 2);
  const out = new Uint8Array(h * w * channels);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sy = y0 + Math.floor(((y + 0.5) * side) / h);
      const sx = x0 + Math.floor(((x + 0.5) * side) / w);
      const i = (sy * img.width + sx) * 4;
      const o = (y * w + x) * channels;
      if (channels === 1) {
        out[o] = Math.round(0.2989 * img.data[i] + 0.587 * img.data[i + 1] + 0.114 * img.data[i + 2]);
      } else {
        for (let c = 0; c < 3; c++) out[o + c] = img.data[i + c];
      }
    }
  }
  return out;
}

/** float32 input tensor from uint8 HWC data: nearest upsample by `repeat`, then * scale + offset. */
function toInput(u8, h, w, ch, repeat, scale, offset, opts = {}) {
  const H = h * repeat;
  const W = w * repeat;
  if (opts.int32) {
    const q = new Int32Array(H * W * ch);
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        for (let c = 0; c < ch; c++) q[(y * W + x) * ch + c] = u8[(Math.floor(y / repeat) * w + Math.floor(x / repeat)) * ch + c];
      }
    }
    return tf.tensor4d(q, [1, H, W, ch], 'int32');
  }
  const f = new Float32Array(H * W * ch);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      for (let c = 0; c < ch; c++) {
        const v = u8[(Math.floor(y / repeat) * w + Math.floor(x / repeat)) * ch + c];
        f[(y * W + x) * ch + c] = Math.fround(Math.fround(v * scale) + offset);
      }
    }
  }
  const t = tf.tensor4d(f, [1, H, W, ch]);
  if (!opts.nchw) return t;
  const nchw = tf.transpose(t, [0, 3, 1, 2]);
  t.dispose();
  return nchw;
}

const b64 = (typed) => Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('base64');

function recordOutput(t, stride, rows = 1) {
  if (t.rank === 3 && rows > 1) { // big (1, cells, k) maps: every rows-th cell
    const kept = tf.stridedSlice(t, [0, 0, 0], t.shape, [1, rows, 1]);
    const entry = { shape: kept.shape, dtype: 'float32', data: b64(kept.dataSync()), view: `rows${rows}` };
    kept.dispose();
    return entry;
  }
  const big = t.rank === 4 && stride > 1;
  const kept = big ? tf.stridedSlice(t, [0, 0, 0, 0], t.shape, [1, stride, stride, 1]) : t;
  const entry = { shape: kept.shape, dtype: 'float32', data: b64(kept.dataSync()), view: big ? `grid${stride}` : 'full' };
  if (big) kept.dispose();
  return entry;
}

function topk(t, k) {
  const flat = t.reshape([-1]);
  const { values, indices } = tf.topk(flat, k, true);
  const res = { k, values: b64(values.dataSync()), indices: b64(indices.dataSync()) };
  tf.dispose([flat, values, indices]);
  return res;
}

async function recordModel(name, srcDir, img, outDir) {
  const [rel, scale0, offset0, repeat, outputs, stride, opts = {}] = MODELS[name];
  const scale = Math.fround(scale0);
  const offset = Math.fround(offset0);
  const model = await tf.loadGraphModel(ioHandler(path.join(srcDir, `${rel}.json`)));
  const shape = model.inputs[0].shape.map((d) => (d < 0 ? 1 : d));
  if (opts.nchw) shape.push(...shape.splice(1, 1)); // [1, C, H, W] -> [1, H, W, C]: the data is made NHWC
  if (opts.size) [shape[1], shape[2]] = opts.size;
  const [, H, W, ch] = shape;
  const h = H / repeat;
  const w = W / repeat;
  const outNames = outputs || model.outputs.map((o) => o.name);
  const rng = mulberry32(20240601);
  const cases = {
    random: Uint8Array.from({ length: h * w * ch }, () => Math.floor(rng() * 256)),
    image: cropResize(img, h, w, ch),
  };
  const result = { model: name, source: rel, tfjs: tf.version.tfjs, backend: tf.getBackend(), cases: {} };
  for (const [label, u8] of Object.entries(cases)) {
    const x = toInput(u8, h, w, ch, repeat, scale, offset, opts);
    const ys = opts.int32 ? await model.executeAsync(x, outNames) : model.execute(x, outNames);
    const list = Array.isArray(ys) ? ys : [ys];
    const layout = opts.nchw ? 'nchw' : opts.int32 ? 'int32' : 'nhwc';
    const rec = { input: { u8: b64(u8), shape: [1, h, w, ch], repeat, scale, offset, layout }, outputs: {} };
    outNames.forEach((n, i) => { rec.outputs[n.replace(/:0$/, '')] = recordOutput(list[i], stride, opts.rows); });
    if (name === 'centernet') rec.topk = topk(list[0], 100);
    result.cases[label] = rec;
    tf.dispose([x, ...list]);
  }
  const file = path.join(outDir, `${name}.json.gz`);
  fs.writeFileSync(file, zlib.gzipSync(JSON.stringify(result), { level: 9 }));
  console.log(name, outNames.join(','), fs.statSync(file).size, 'bytes');
}

async function main() {
  const [srcDir, imagePath, outDir, ...names] = process.argv.slice(2);
  if (!srcDir || !imagePath || !outDir) {
    console.error('usage: node tools/record_tfjs_reference.mjs <extracted-dir> <face.jpg> <out-dir> [model ...]');
    process.exit(2);
  }
  await tf.setBackend('cpu');
  const img = jpeg.decode(fs.readFileSync(imagePath), { useTArray: true });
  fs.mkdirSync(outDir, { recursive: true });
  for (const name of names.length ? names : Object.keys(MODELS)) await recordModel(name, srcDir, img, outDir);
}

main().catch((err) => { console.error(err); process.exit(1); });
