// A model server in another language: SageMaker's container contract in plain Node.js.
//
//   GET  /ping         200 once the model is loaded
//   POST /invocations  text/csv rows (no header) or JSON {"instances": [[...], ...]}
//
// The model is a logistic regression whose weights live in $SM_MODEL_DIR/model.json
// ({"coef": [...], "intercept": x}). modelhost starts this file as
// `node server.js serve` with SAGEMAKER_BIND_TO_PORT set, like SageMaker starts a container.
"use strict";

const fs = require("fs");
const http = require("http");
const path = require("path");

const port = Number(process.env.SAGEMAKER_BIND_TO_PORT || 8080);
const modelDir = process.env.SM_MODEL_DIR || "/opt/ml/model";
const model = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));

function predict(row) {
  if (row.length !== model.coef.length) {
    throw { status: 400, message: `expected ${model.coef.length} features, got ${row.length}` };
  }
  let z = model.intercept;
  for (let i = 0; i < row.length; i++) z += model.coef[i] * row[i];
  return 1 / (1 + Math.exp(-z));
}

function parseCsv(text) {
  return text.split(/\r?\n/).filter((line) => line.trim() !== "").map((line) =>
    line.split(",").map((field) => {
      const value = Number(field);
      if (field.trim() === "" || Number.isNaN(value)) {
        throw { status: 415, message: `not a number: '${field}'` };
      }
      return value;
    }));
}

function answer(res, status, type, body) {
  res.writeHead(status, { "Content-Type": type, "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/ping") return answer(res, 200, "text/plain", "");
  if (req.method !== "POST" || req.url !== "/invocations") {
    return answer(res, 404, "text/plain", "not found");
  }
  const chunks = [];
  req.on("data", (chunk) => chunks.push(chunk));
  req.on("end", () => {
    const text = Buffer.concat(chunks).toString("utf8");
    const type = (req.headers["content-type"] || "text/csv").split(";")[0].trim();
    try {
      if (type === "application/json") {
        const rows = JSON.parse(text).instances;
        const out = JSON.stringify({ predictions: rows.map(predict) });
        return answer(res, 200, "application/json", out);
      }
      if (type !== "text/csv") throw { status: 415, message: `unsupported type ${type}` };
      return answer(res, 200, "text/csv", parseCsv(text).map((r) => String(predict(r))).join("\n"));
    } catch (err) {
      const status = err.status || 400;
      return answer(res, status, "text/plain", err.message || String(err));
    }
  });
});

server.keepAliveTimeout = 75000; // longer than the gateway's idle pool timeout
server.listen(port, "127.0.0.1", () => console.log(`node model server on ${port}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
