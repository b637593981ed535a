"use strict";
// The dashboard page: everything it shows comes from the /v1 API with the session cookie, so it sees
// exactly what the user's token may see. Text from the API is only ever set as textContent.

const state = {token: null, projects: [], stream: null};

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (value === true) node.setAttribute(key, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function api(method, path, body) {
  const options = {method, headers: {}, credentials: "same-origin"};
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (response.status === 401) {
    window.location.assign("/ui/login");
    throw new Error("not logged in");
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) throw new Error(errorMessage(response.status, data));
  return data;
}

// The service's own errors ({"detail": ...}) and the OpenStack APIs' ({"badRequest": {"message": ...}},
// {"error": {"message": ...}}, {"message": ...}).
function errorMessage(status, data) {
  if (data && typeof data.detail === "string") return data.detail;
  if (data && typeof data.message === "string") return data.message;
  const inner = data && Object.values(data).find((v) => v && typeof v.message === "string");
  return inner ? inner.message : status + " " + JSON.stringify(data && data.detail);
}

function projectPath(suffix) {
  return "/v1/projects/" + state.token.project_id + suffix;
}

function show(...nodes) {
  if (state.stream) {
    state.stream.close();
    state.stream = null;
  }
  document.getElementById("error").textContent = "";
  document.getElementById("view").replaceChildren(...nodes.flat(2).filter((n) => n !== null && n !== undefined));
}

function fail(error) {
  document.getElementById("error").textContent = error.message;
}

function table(rows, columns, render) {
  if (!rows.length) return el("p", {class: "empty"}, "None.");
  return el("table", {},
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", {}, c)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, render(row).map((cell) => el("td", {}, cell))))));
}

// --- views -------------------------------------------------------------------------------

async function templatesView() {
  const list = await api("GET", "/v1/job_templates");
  show(el("h2", {}, "Job templates"), table(list, ["Name", "Playbook", "Description", ""], (t) => [
    t.name, t.playbook, t.description,
    el("a", {href: "#/launch/" + t.id, class: "button", "data-launch": t.name}, "Launch")]));
}

// One form field per property of the template's JSON Schema.
function field(name, spec, required) {
  const label = spec.title || name;
  const common = {name, id: "var-" + name, "data-type": spec.type || "string", required: required};
  let input;
  if (spec.enum) {
    input = el("select", common, (required ? [] : [el("option", {value: ""}, "")]).concat(
      spec.enum.map((v) => el("option", {value: JSON.stringify(v), selected: spec.default === v}, String(v)))));
    input.dataset.type = "enum";
  } else if (spec.type === "boolean") {
    input = el("input", Object.assign(common, {type: "checkbox", checked: spec.default === true}));
  } else if (spec.type === "integer" || spec.type === "number") {
    input = el("input", Object.assign(common, {type: "number", step: spec.type === "integer" ? "1" : "any",
      min: spec.minimum, max: spec.maximum, value: spec.default}));
  } else if (spec.type === "array" || spec.type === "object") {
    input = el("textarea", Object.assign(common, {placeholder: "JSON"}),
      spec.default === undefined ? "" : JSON.stringify(spec.default));
  } else {
    input = el("input", Object.assign(common, {type: "text", minlength: spec.minLength, maxlength: spec.maxLength,
      pattern: spec.pattern, value: spec.default}));
  }
  return el("label", {}, label + (required ? " *" : ""), input,
    spec.description ? el("small", {}, spec.description) : null);
}

function formValues(form, schema) {
  const values = {};
  for (const input of form.querySelectorAll("[data-type]")) {
    const type = input.dataset.type;
    if (type === "boolean") {
      values[input.name] = input.checked;
      continue;
    }
    if (input.value === "") continue;
    if (type === "integer" || type === "number") values[input.name] = Number(input.value);
    else if (type === "enum" || type === "array" || type === "object") values[input.name] = JSON.parse(input.value);
    else values[input.name] = input.value;
  }
  return values;
}

async function launchView(templateId) {
  const [template, credentials] = await Promise.all([
    api("GET", "/v1/job_templates/" + templateId), api("GET", projectPath("/credentials"))]);
  const schema = template.extra_vars_schema || {};
  const required = new Set(schema.required || []);
  const props = Object.entries(schema.properties || {});
  // One key per form shown: a double submit launches one job.
  const key = crypto.randomUUID();
  const form = el("form", {id: "launch-form"},
    props.map(([name, spec]) => field(name, spec, required.has(name))),
    credentials.length ? el("fieldset", {}, el("legend", {}, "Credentials"), credentials.map((c) =>
      el("label", {}, el("input", {type: "checkbox", name: "credential", value: c.id}),
        c.name + " (" + c.variables.join(", ") + ")"))) : null,
    el("button", {type: "submit", id: "launch-submit"}, "Launch"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const job = await api("POST", projectPath("/job_templates/" + templateId + "/launch"), {
        extra_vars: formValues(form, schema), idempotency_key: key,
        credentials: [...form.querySelectorAll("input[name=credential]:checked")].map((i) => i.value)});
      window.location.hash = "#/jobs/" + job.id;
    } catch (error) {
      fail(error);
    }
  });
  show(el("h2", {}, "Launch " + template.name), el("p", {}, template.description), form);
}

async function jobsView() {
  const jobs = await api("GET", projectPath("/jobs"));
  show(el("h2", {}, "Jobs"), table(jobs, ["Job", "Status", "Template", "Created"], (j) => [
    el("a", {href: "#/jobs/" + j.id}, j.id.slice(0, 8)), el("span", {class: "status " + j.status}, j.status),
    j.template_id.slice(0, 8), j.created_at]));
}

async function jobView(jobId) {
  const job = await api("GET", projectPath("/jobs/" + jobId));
  const status = el("span", {id: "job-status", class: "status " + job.status}, job.status);
  const log = el("pre", {id: "job-log"});
  const cancel = el("button", {id: "cancel", onclick: async () => {
    try {
      await api("POST", projectPath("/jobs/" + jobId + "/cancel"));
    } catch (error) {
      fail(error);
    }
  }}, "Cancel");
  show(el("h2", {}, "Job " + jobId.slice(0, 8), " ", status), cancel, log);
  // EventSource reconnects by itself with Last-Event-ID, which the stream resumes from: nothing lost.
  const stream = new EventSource(projectPath("/jobs/" + jobId + "/stream"));
  state.stream = stream;
  stream.addEventListener("job_event", (message) => {
    const event = JSON.parse(message.data);
    if (event.stdout) log.append(event.stdout + "\n");
    if (status.textContent === "pending") {
      status.textContent = "running";
      status.className = "status running";
    }
  });
  stream.addEventListener("end", (message) => {
    const end = JSON.parse(message.data);
    status.textContent = end.status;
    status.className = "status " + end.status;
    cancel.remove();
    stream.close();
  });
}

const KINDS = {
  instances: [["Name", "State", "vCPUs", "RAM MB", "Host"], (i) => [i.name, i.state, i.vcpus, i.ram_mb, i.host]],
  networks: [["Name", "Type", "Segment", "MTU", "Shared"], (n) => [n.name, n.type, n.segmentation_id, n.mtu,
    n.shared ? "yes" : ""]],
  volumes: [["Name", "Size GB", "Status", "Host"], (v) => [v.name, v.size_gb, v.status, v.host]],
  images: [["Name", "Format", "Size", "Status"], (i) => [i.name, i.format, i.size, i.status]],
};

async function resourcesView() {
  const views = await Promise.all(Object.keys(KINDS).map((kind) => api("GET", projectPath("/resources/" + kind))));
  show(el("h2", {}, "Resources"), views.map((view) => el("section", {id: "resources-" + view.kind},
    el("h3", {}, view.kind),
    view.available ? table(view.items, KINDS[view.kind][0], KINDS[view.kind][1])
      : el("p", {class: "empty"}, "Not available in this cloud yet."),
    view.errors.map((e) => el("p", {class: "error"}, e.host + ": " + e.msg)))));
}

// --- instances: the compute API (Nova), as the openstack command sees it ----------------------------

const COMPUTE = "/compute/v2.1";
const NETWORKING = "/networking/v2.0";

async function networksView() {
  const [{networks}, {subnets}] = await Promise.all([
    api("GET", NETWORKING + "/networks"), api("GET", NETWORKING + "/subnets")]);
  const cidrs = Object.fromEntries(subnets.map((s) => [s.id, s.cidr]));
  show(el("h2", {}, "Networks"), table(networks, ["Name", "Status", "Subnets", "Shared", "External"], (n) => [
    n.name, el("span", {class: "status " + n.status.toLowerCase(), "data-network": n.name}, n.status),
    n.subnets.map((id) => cidrs[id] || id).join(", "), n.shared ? "yes" : "", n["router:external"] ? "yes" : ""]));
}

// --- security groups: the networking API's groups and rules, as Horizon shows them ---------------------

function ruleText(r) {
  const ports = r.port_range_min === null ? "any" : r.port_range_min === r.port_range_max || r.port_range_max === null
    ? String(r.port_range_min) : r.port_range_min + "-" + r.port_range_max;
  return [r.direction, r.protocol || "any", ports];
}

async function securityGroupsView() {
  const {security_groups: groups} = await api("GET", NETWORKING + "/security-groups");
  const names = Object.fromEntries(groups.map((g) => [g.id, g.name]));
  const create = el("form", {id: "group-form"},
    el("label", {}, "Name", el("input", {name: "name", required: true, maxlength: 255})),
    el("label", {}, "Description", el("input", {name: "description", maxlength: 255})),
    el("button", {type: "submit", id: "group-submit"}, "Create security group"));
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(create));
    await change(() => api("POST", NETWORKING + "/security-groups", {security_group: values}));
  });
  show(el("h2", {}, "Security groups"), create, groups.map((g) => el("section", {"data-group": g.name},
    el("h3", {}, g.name, " ", el("small", {}, g.description),
      g.name === "default" ? null : el("button", {"data-delete-group": g.name, onclick: () => {
        if (window.confirm("Delete security group " + g.name + "?")) change(() => api("DELETE", NETWORKING + "/security-groups/" + g.id));
      }}, "Delete group")),
    table(g.security_group_rules, ["Direction", "Protocol", "Ports", "Remote", ""], (r) => ruleText(r).concat([
      r.remote_group_id ? "group " + (names[r.remote_group_id] || r.remote_group_id) : r.remote_ip_prefix,
      el("button", {"data-delete-rule": r.id, onclick: () => change(() => api("DELETE", NETWORKING + "/security-group-rules/" + r.id))},
        "Delete rule")])),
    ruleForm(g))));
}

function ruleForm(group) {
  const form = el("form", {class: "rule-form", "data-rule-form": group.name},
    el("select", {name: "direction"}, el("option", {value: "ingress"}, "ingress"), el("option", {value: "egress"}, "egress")),
    el("select", {name: "protocol"}, ["tcp", "udp", "icmp", "any"].map((p) => el("option", {value: p}, p))),
    el("input", {name: "port_range_min", type: "number", min: 0, max: 65535, placeholder: "port (or ICMP type)"}),
    el("input", {name: "port_range_max", type: "number", min: 0, max: 65535, placeholder: "to port"}),
    el("input", {name: "remote_ip_prefix", placeholder: "remote CIDR (any)", maxlength: 64}),
    el("button", {type: "submit"}, "Add rule"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const rule = {security_group_id: group.id, direction: values.direction, protocol: values.protocol === "any" ? null : values.protocol};
    for (const key of ["port_range_min", "port_range_max"]) if (values[key] !== "") rule[key] = Number(values[key]);
    if (values.remote_ip_prefix) rule.remote_ip_prefix = values.remote_ip_prefix;
    await change(() => api("POST", NETWORKING + "/security-group-rules", {security_group_rule: rule}));
  });
  return form;
}

// A change through the API, then the view again (or the API's message).
async function change(call) {
  try {
    await call();
    await route();
  } catch (error) {
    fail(error);
  }
}

async function instancesView() {
  const {servers} = await api("GET", COMPUTE + "/servers/detail");
  const busy = servers.some((s) => s.status === "BUILD" || s.status === "REBOOT" || s["OS-EXT-STS:task_state"]);
  show(el("h2", {}, "Instances"),
    el("a", {href: "#/launch-instance", class: "button", id: "launch-instance"}, "Launch instance"),
    table(servers, ["Name", "Status", "Flavor", "Image", "Addresses", ""], (s) => [
      s.name, el("span", {class: "status " + s.status.toLowerCase(), "data-server": s.name}, s.status,
        s["OS-EXT-STS:task_state"] ? " (" + s["OS-EXT-STS:task_state"] + ")" : ""),
      s.flavor.id, s.image ? s.image.id : "",
      Object.entries(s.addresses).map(([net, ips]) => net + ": " + ips.map((i) => i.addr).join(", ")).join("; "),
      el("span", {}, s.fault ? el("small", {class: "error"}, s.fault.message) : null,
        el("button", {"data-delete": s.name, onclick: () => deleteInstance(s)}, "Delete"))]));
  // While something is changing, look again shortly (only while this view is the one shown).
  if (busy) setTimeout(() => { if (window.location.hash === "#/instances") route(); }, 1500);
}

async function deleteInstance(server) {
  if (!window.confirm("Delete instance " + server.name + "?")) return;
  try {
    await api("DELETE", COMPUTE + "/servers/" + server.id);
    await route();
  } catch (error) {
    fail(error);
  }
}

async function launchInstanceView() {
  const [{flavors}, images, {keypairs}, {networks}, {security_groups: groups}] = await Promise.all([
    api("GET", COMPUTE + "/flavors/detail"), api("GET", "/image/v2/images").catch(() => ({images: []})),
    api("GET", COMPUTE + "/os-keypairs"), api("GET", NETWORKING + "/networks").catch(() => ({networks: []})),
    api("GET", NETWORKING + "/security-groups").catch(() => ({security_groups: []}))]);
  const choose = (name, items, label, optional) => el("label", {}, name,
    el("select", {name: name.toLowerCase().replace(" ", "_"), required: !optional},
      (optional ? [el("option", {value: ""}, "(none)")] : []).concat(items.map((i) => el("option", {value: i[0]}, label(i))))));
  const form = el("form", {id: "instance-form"},
    el("label", {}, "Name", el("input", {name: "name", required: true, maxlength: 255})),
    choose("Flavor", flavors.map((f) => [f.id, f]), ([, f]) => f.name + " (" + f.vcpus + " vCPU, " + f.ram + " MB)"),
    choose("Image", images.images.map((i) => [i.id, i]), ([, i]) => i.name),
    choose("Network", networks.filter((n) => n.status === "ACTIVE" && !n["router:external"]).map((n) => [n.id, n]),
      ([, n]) => n.name, true),
    choose("Key pair", keypairs.map((k) => [k.keypair.name, k]), ([name]) => name, true),
    // Left at (none), the server's ports go in the project's default group.
    choose("Security group", groups.map((g) => [g.id, g]), ([, g]) => g.name, true),
    el("button", {type: "submit", id: "instance-submit"}, "Launch"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    const server = {name: values.name, flavorRef: values.flavor, imageRef: values.image,
      networks: values.network ? [{uuid: values.network}] : "none"};
    if (values.key_pair) server.key_name = values.key_pair;
    if (values.security_group) server.security_groups = [{name: values.security_group}];
    try {
      await api("POST", COMPUTE + "/servers", {server});
      window.location.hash = "#/instances";
    } catch (error) {
      fail(error);
    }
  });
  show(el("h2", {}, "Launch instance"), form);
}

// --- frame --------------------------------------------------------------------------------

// Views render one after another, and a view asked for while another was loading replaces any asked for
// before it: a slow view's answer never lands over the one the user went to after it (a click during the
// first page's load would otherwise show that page, not the one clicked).
let rendering = Promise.resolve();
let routesAsked = 0;

function route() {
  const asked = ++routesAsked;
  rendering = rendering.then(() => (asked === routesAsked ? render() : undefined));
  return rendering;
}

async function render() {
  const [, page, id] = (window.location.hash || "#/templates").split("/");
  try {
    if (page === "launch") await launchView(id);
    else if (page === "instances") await instancesView();
    else if (page === "networks") await networksView();
    else if (page === "security-groups") await securityGroupsView();
    else if (page === "launch-instance") await launchInstanceView();
    else if (page === "jobs" && id) await jobView(id);
    else if (page === "jobs") await jobsView();
    else if (page === "resources") await resourcesView();
    else await templatesView();
  } catch (error) {
    fail(error);
  }
}

async function start() {
  state.token = await api("GET", "/v1/auth/tokens");
  document.getElementById("whoami").textContent = state.token.user + (state.token.role ? " (" + state.token.role + ")" : "");
  const projects = await api("GET", "/v1/projects");
  const select = document.getElementById("project-switch");
  select.replaceChildren(el("option", {value: ""}, "(no project)"),
    ...projects.map((p) => el("option", {value: p.id, selected: p.id === state.token.project_id}, p.name)));
  select.addEventListener("change", async () => {
    try {
      await api("PUT", "/ui/session", {project: select.value});
      window.location.reload();
    } catch (error) {
      fail(error);
    }
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("DELETE", "/ui/session");
    window.location.assign("/ui/login");
  });
  window.addEventListener("hashchange", route);
  if (!state.token.project_id) {
    show(el("p", {}, "Choose a project to work in."));
    return;
  }
  await route();
}

start().catch(fail);
