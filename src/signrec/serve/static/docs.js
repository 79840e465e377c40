// The API description, rendered from the server's own /openapi.json (so it cannot drift from the code) without
// any file from the internet: signrec serve runs offline.
"use strict";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function schemaText(spec, schema) {
  if (!schema) return "";
  if (schema.$ref) {
    const name = schema.$ref.split("/").pop();
    const s = spec.components.schemas[name];
    const fields = Object.entries(s.properties || {}).map(([k, v]) =>
      `  "${k}": ${v.type || (v.anyOf || []).map((a) => a.type).join(" | ") || "object"}` +
      `${v.description ? `   // ${v.description}` : ""}`);
    return `{\n${fields.join(",\n")}\n}`;
  }
  return JSON.stringify(schema);
}

async function render() {
  const spec = await (await fetch("/openapi.json")).json();
  document.getElementById("description").textContent = spec.info.description;
  const origin = location.origin;
  document.getElementById("examples").textContent =
    `curl -F file=@clip.mp4 ${origin}/api/predict\n` +
    `curl -H "Content-Type: video/mp4" -H "X-Filename: clip.mp4" --data-binary @clip.mp4 "${origin}/api/predict?top_k=3"\n` +
    `curl ${origin}/api/info`;
  const box = document.getElementById("endpoints");
  box.replaceChildren();
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(methods)) {
      const div = el("div", undefined, "endpoint");
      const h = el("h3");
      h.append(el("span", method.toUpperCase(), "method"), path);
      div.append(h, el("p", op.summary || ""));
      if (op.description) div.append(el("p", op.description));
      const params = op.parameters || [];
      if (params.length) {
        const t = el("table");
        t.append(el("tr"));
        t.rows[0].append(el("th", "parameter"), el("th", "in"), el("th", "default"), el("th", "meaning"));
        for (const p of params) {
          const r = el("tr");
          r.append(el("td", p.name), el("td", p.in), el("td", String(p.schema?.default ?? "")),
            el("td", p.description || ""));
          t.append(r);
        }
        div.append(t);
      }
      if (op.requestBody) {
        div.append(el("p", "Request body: " + Object.keys(op.requestBody.content).join(" or ")));
      }
      const t = el("table");
      t.append(el("tr"));
      t.rows[0].append(el("th", "status"), el("th", "meaning"));
      for (const [status, r] of Object.entries(op.responses || {})) {
        const row = el("tr");
        row.append(el("td", status), el("td", r.description || ""));
        t.append(row);
      }
      div.append(t);
      const ok = op.responses?.["200"]?.content?.["application/json"]?.schema;
      if (ok && ok.$ref) div.append(el("pre", schemaText(spec, ok)));
      box.append(div);
    }
  }
}

render().catch((e) => {
  document.getElementById("endpoints").textContent = `Could not read /openapi.json: ${e.message}`;
});
