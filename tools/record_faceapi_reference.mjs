// Record face-api's own outputs for the face-api -> ONNX converter test (tests/models/test_faceapi.py).
//
// face-api ships weights without a graph, so the reference is face-api's own TypeScript networks
// (AgeGenderNet, FaceExpressionNet from its no-bundle ES module) on TensorFlow.js's pure-JS CPU backend:
//   mkdir -p /tmp/tfjsref && cd /tmp/tfjsref && npm init -y && \
//     npm install @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 && \
//     npm pack @vladmandic/face-api@1.7.15 && tar xzf vladmandic-face-api-1.7.15.tgz
//   # the no-bundle module imports tfjs's dist/index.js files, which Node's ESM loader cannot resolve:
//   sed -e 's#from"@tensorflow/\([a-z-]*\)/dist/index.js"#from"@tensorflow/\1"#g' \
//     package/dist/face-api.esm-nobundle.js > faceapi.mjs
//   # then, from the repository root:
//   node tools/record_faceapi_reference.mjs /tmp/tfjsref /tmp/tfjsref/package/model \
//     tests/fixtures/faceapi_reference.json
//
// Inputs are [1, 112, 112, 3] float32 RGB 0..255 made by formulas the test repeats (no image stored):
//   "ramp":   x[i] = (i * 7919) % 251                 (i = flat NHWC index)
//   "smooth": x[y, x, c] = 127.5 + 100 * sin(0.11 * x + 0.07 * y + 2.1 * c)
import fs from 'node:fs';
import path from 'node:path';

const [refDir, modelDir, outFile] = process.argv.slice(2);
const faceapi = await import(path.resolve(refDir, 'faceapi.mjs'));
const tf = faceapi.tf;
await tf.setBackend('cpu');
await tf.ready();

function weightMap(manifest) {
  const groups = JSON.parse(fs.readFileSync(path.join(modelDir, manifest)));
  const specs = [];
  const buffers = [];
  for (const g of groups) {
    specs.push(...g.weights);
    for (const p of g.paths) buffers.push(fs.readFileSync(path.join(modelDir, p)));
  }
  const buf = Buffer.concat(buffers);
  return tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length), specs);
}

const S = 112;
const inputs = {
  ramp: Float32Array.from({ length: S * S * 3 }, (_, i) => (i * 7919) % 251),
  smooth: Float32Array.from({ length: S * S * 3 }, (_, i) => {
    const c = i % 3; const x = Math.floor(i / 3) % S; const y = Math.floor(i / (3 * S));
    return 127.5 + 100 * Math.sin(0.11 * x + 0.07 * y + 2.1 * c);
  }),
};

const ageGender = new faceapi.AgeGenderNet();
ageGender.loadFromWeightMap(weightMap('age_gender_model-weights_manifest.json'));
const expression = new faceapi.FaceExpressionNet();
expression.loadFromWeightMap(weightMap('face_expression_model-weights_manifest.json'));

const out = { package: '@vladmandic/face-api@1.7.15', tfjs: tf.version.tfjs, backend: tf.getBackend(), cases: {} };
for (const [name, data] of Object.entries(inputs)) {
  // A NetInput of one 112x112 tensor: face-api's own input path (no resize at this size).
  const ag = ageGender.forwardInput(new faceapi.NetInput([tf.tensor3d(data, [S, S, 3])]));
  const ex = expression.forwardInput(new faceapi.NetInput([tf.tensor3d(data, [S, S, 3])]));
  out.cases[name] = {
    age: Array.from(ag.age.dataSync()),
    gender: Array.from(ag.gender.dataSync()),
    expression: Array.from(ex.dataSync()),
  };
}
fs.writeFileSync(outFile, JSON.stringify(out, null, 1) + '\n');
console.log(`wrote ${outFile}`);
