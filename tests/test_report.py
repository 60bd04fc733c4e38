"""The Pareto report: the page in headless Chromium, PNGs, summary, several runs, errors."""

from __future__ import annotations

import base64
import datetime
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState, create_trial

from codesign.report.build import write_report
from tests.conftest import run_cli

EVIL = '<img src=x onerror="window.__pwned=1"></script><script>window.__pwned=2</script>'
REPORT_SECONDS = 10.0


# --- headless Chromium over the DevTools protocol on a pipe ------------------------------


class Browser:
    """Debian's Chromium, headless, driven through ``--remote-debugging-pipe``.

    Commands go to the browser's fd 3 and answers come from its fd 4, each a
    JSON message ended by a NUL byte. Every event is kept, so console errors,
    uncaught exceptions and network requests can be checked after the page ran.
    """

    def __init__(self, width: int = 1280, height: int = 1300) -> None:
        exe = shutil.which("chromium")
        if exe is None:
            pytest.fail("chromium missing: run tools/setup_browser.sh (make test does)")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def pipe_fds() -> None:  # in the child: the pipe ends become fds 3 and 4
            high_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            high_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(high_r, 3)
            os.dup2(high_w, 4)

        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe",
             "--no-first-run", "--no-default-browser-check", "--disable-extensions",
             "--hide-scrollbars", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=pipe_fds, close_fds=False,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0,
             browser: bool = False) -> dict[str, Any]:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            if select.select([self._from_child], [], [], left)[0]:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed its pipe (did it start?)")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def open(self, page: Path, timeout: float = 60.0) -> None:
        """Load a file and wait for its load event."""
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = self.send("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, browser=True)
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": page.resolve().as_uri()})
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == "Page.loadEventFired" for e in self.events):
            self.events.append(self._read(deadline))

    def evaluate(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return res.get("result", {}).get("value")

    def wait_for_plots(self, timeout: float = 60.0) -> int:
        """Wait until plotly has drawn every figure of the page; return their number."""
        expected = self.evaluate("document.querySelectorAll('div.plot').length")
        deadline = time.monotonic() + timeout
        drawn = 0
        while time.monotonic() < deadline:
            drawn = self.evaluate("Number(document.body.getAttribute('data-plots-drawn')||0)")
            if drawn >= expected:
                return expected
            time.sleep(0.1)
        raise AssertionError(f"plotly drew {drawn} of {expected} figures in {timeout} s; "
                             f"errors: {self.errors()}")

    def screenshot(self, path: Path) -> Path:
        res = self.send("Page.captureScreenshot", {"format": "png"})
        path.write_bytes(base64.b64decode(res["data"]))
        return path

    def errors(self) -> list[str]:
        """Uncaught exceptions, console errors and error log entries of the page."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(json.dumps(p.get("exceptionDetails", {}))[:400])
            elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(json.dumps(p.get("args", []))[:400])
            elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(json.dumps(p["entry"])[:400])
        return out

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events
                if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True, timeout=5)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


def view_page(page: Path, shot: Path) -> dict[str, Any]:
    """Open a report in Chromium, wait for its plots, screenshot it, collect what it did."""
    b = Browser()
    try:
        b.open(page)
        plots = b.wait_for_plots()
        front = b.evaluate(
            "Array.from(document.querySelectorAll('[data-front-points]'))"
            ".map(e => [e.id, Number(e.getAttribute('data-front-points'))])")
        pwned = b.evaluate("window.__pwned === undefined ? null : window.__pwned")
        text = b.evaluate("document.body.innerText")
        b.screenshot(shot)
        return {"plots": plots, "front": dict(front), "errors": b.errors(), "pwned": pwned,
                "requests": b.requests(), "text": text}
    finally:
        b.close()


def offline(requests: list[str]) -> list[str]:
    """Requests that would need a network (the page may only read itself and data: URLs)."""
    return [u for u in requests if not u.startswith(("file:", "data:", "about:"))]


# --- the real tiny search -----------------------------------------------------------------


@pytest.fixture(scope="module")
def real_report(base_run: Path, tmp_path_factory: pytest.TempPathFactory
                ) -> tuple[Path, float, str]:
    out = tmp_path_factory.mktemp("report")
    t0 = time.monotonic()
    proc = run_cli("report", str(base_run), "--out", str(out))
    seconds = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, seconds, proc.stdout


def test_search_writes_the_report_by_default(base_run: Path) -> None:
    report = base_run / "report"
    assert (report / "index.html").is_file()
    assert (report / "summary.md").is_file()
    assert (report / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_in_headless_chromium(base_run: Path, real_report: tuple[Path, float, str],
                                     tmp_path: Path) -> None:
    out, seconds, stdout = real_report
    points = json.loads((base_run / "pareto.json").read_text())["points"]
    assert f"({len(points)} Pareto points" in stdout
    assert re.search(r" in \d+\.\d s$", stdout.strip())
    assert seconds < REPORT_SECONDS + 5, f"codesign report took {seconds:.1f} s"  # + startup
    seen = view_page(out / "index.html", tmp_path / "report.png")
    assert seen["errors"] == []
    assert offline(seen["requests"]) == []
    assert seen["front"] == {"r0-pareto": len(points)}
    assert seen["plots"] >= 5
    shot = (tmp_path / "report.png").read_bytes()
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 20_000
    text = seen["text"]
    for heading in ("Pareto front", "Pareto models", "Predicted vs measured", "Search history",
                    "Setting"):
        assert heading in text
    for p in points:
        assert f"codesign export {base_run} --trial {p['trial']} --out trial-{p['trial']}.tflite" \
            in text


def test_report_files_and_summary(base_run: Path, real_report: tuple[Path, float, str]) -> None:
    out, _, _ = real_report
    html = (out / "index.html").read_text()
    assert re.findall(r"<(?:script|link|img)[^>]+(?:src|href)=", html) == []  # all inline
    for name in ("pareto.png", "layers.png", "history.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    points = json.loads((base_run / "pareto.json").read_text())["points"]
    assert summary.startswith("# codesign report")
    assert "| model |" in summary
    for p in points:
        assert f"| trial {p['trial']} |" in summary
    assert "codesign search --data digits" in summary
    assert "optuna " in summary  # package versions


# --- made-up runs: predictors, several profiles, escaping, errors -------------------------


LAYERS = [("stem_conv", "conv", 8), ("s1b1_dw", "depthwise", 8), ("s1b1_project", "conv", 8),
          ("s2b1_expand", "conv", 16), ("s2b1_dw", "depthwise", 16), ("classifier", "dense", 10)]


def _candidate(res: int, prune: float, precision: str) -> dict[str, Any]:
    return {"resolution": res, "depths": [1, 1],
            "prune": {"stem_conv": prune, "s1_project": prune},
            "precision": {name: precision for name, _, _ in LAYERS}}


def _layers(prune: float, precision: str, depth2: bool = True) -> list[dict[str, Any]]:
    keep = [layer for layer in LAYERS if depth2 or not layer[0].startswith("s2")]
    return [{"name": n, "kind": k, "precision": precision,
             "channels": c if n == "classifier" else max(1, int(c * (1 - prune)))}
            for n, k, c in keep]


def _measure(median: float, acc: float, size: int, cand: dict, layers: list) -> dict[str, Any]:
    return {"val_accuracy": acc, "test_accuracy": acc - 0.01,
            "latency_ms": {"median": median, "p90": median * 1.05, "std": median * 0.02,
                           "mean": median, "min": median * 0.95, "runs": 30, "warmup": 5,
                           "peak_memory_mb": 0.5, "device": "local", "runtime": "test 1.0"},
            "size_bytes": size, "size_gzip_bytes": size // 2, "candidate": cand,
            "layers": layers}


def make_run(root: Path, profile: str, speed: float, predictors: bool, schema: int = 1,
             extra: bool = False, ram: bool = False) -> Path:
    """A small run directory with the files codesign search writes, made up."""
    root.mkdir(parents=True)
    storage = f"sqlite:///{root / 'study.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="codesign", storage=storage,
                                directions=["maximize", "minimize"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "latency_ms"])
    study.set_user_attr("profile", {"name": profile, "runtime": "ai-edge-litert",
                                    "runtime_version": "2.3.0", "resolver": "auto",
                                    "threads": 1, "path": f"/somewhere/{profile}.toml",
                                    "runner": {"device": f"board <{profile}>"}})
    study.set_user_attr("data_info", {"name": "digits", "seed": 0,
                                      "labels": [str(i) for i in range(10)]})
    dist = {"resolution": CategoricalDistribution([16, 20, 24]),
            "prune": CategoricalDistribution([0.0, 0.25, 0.5]),
            "precision": CategoricalDistribution(["int8", "float32"])}
    start = datetime.datetime(2026, 1, 1, 12, 0, 0)
    grid = [(16, 0.5, "int8"), (16, 0.0, "int8"), (24, 0.5, "float32"), (24, 0.0, "float32"),
            (16, 0.5, "float32"), (24, 0.0, "int8")] + ([(20, 0.25, "int8")] if extra else [])
    for n, (res, prune, prec) in enumerate(grid):
        cand = _candidate(res, prune, prec)
        median = speed * (0.01 + 0.004 * (res == 24) + 0.006 * (prune == 0.0)
                          + 0.01 * (prec == "float32") + 0.035 * (res == 20))
        acc = 0.80 + 0.05 * (res == 24) + 0.06 * (prune == 0.0) + 0.01 * (prec == "float32") \
            + 0.15 * (res == 20)
        attrs = _measure(median, acc, 20000 + 3000 * n, cand, _layers(prune, prec, n % 2 == 0))
        if ram:  # schema 2: the tensor arena TFLM measured
            arena = 4096 * (1 + (res == 24) + (prune == 0.0) + 2 * (prec == "float32"))
            attrs["ram"] = {"bytes": arena + 64, "recorded_bytes": arena, "head_bytes": arena // 2,
                            "tail_bytes": arena // 2, "source": "tflm"}
        attrs["times"] = {"build": 0.1, "bn_recalibration": 0.05, "conversion": 0.2,
                          "accuracy": 0.02, "latency": 0.03, "total": 0.45}
        if predictors:
            attrs["latency_predicted_ms"] = median * (1.1 if n % 2 else 0.93)
            attrs["accuracy_predicted"] = acc - 0.02 * (n % 3 - 1)
        if predictors and n == 2:
            attrs["latency_ms"]["source"] = "predicted"
        trial = create_trial(
            params={"resolution": res, "prune": prune, "precision": prec}, distributions=dist,
            values=[acc, median], user_attrs=attrs,
            constraints={"latency": 1.0 if n == 4 else -1.0})
        trial.datetime_start = start + datetime.timedelta(seconds=n)
        trial.datetime_complete = start + datetime.timedelta(seconds=n, milliseconds=450)
        study.add_trial(trial)
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "boom"}))
    done = [t for t in study.trials if t.state == TrialState.COMPLETE and t.constraints["latency"]
            <= 0]
    front = [t for t in done if not any(
        o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values
        for o in done)]
    front.sort(key=lambda t: t.values[1])
    points = []
    for t in front:
        rec = {k: t.user_attrs[k] for k in ("val_accuracy", "test_accuracy", "size_bytes",
                                             "size_gzip_bytes", "candidate", "layers")}
        lat = t.user_attrs["latency_ms"]
        rec.update(trial=t.number, model=f"models/trial-{t.number}.tflite",
                   manifest=f"models/trial-{t.number}.json", peak_memory_mb=0.5,
                   latency_ms={"median": lat["median"], "p90": lat["p90"], "std": lat["std"],
                               "device": "local", "runtime": "test 1.0",
                               "predicted": t.user_attrs.get("latency_predicted_ms")},
                   search={"val_accuracy": t.values[0] - 0.02,
                           "test_accuracy": t.values[0] - 0.03, "latency_ms": lat["median"]},
                   finetune={"method": "float_then_quantize", "epochs": 1})
        if ram:
            arena = t.user_attrs["ram"]
            rec.update(ram_bytes=arena["bytes"], flash_bytes=rec["size_bytes"],
                       ram={k: arena[k] for k in ("head_bytes", "tail_bytes", "source")})
            del rec["peak_memory_mb"]
        points.append(rec)
    refs = []
    for prec, slow in (("float32", 0.05), ("int8", 0.03)):
        r = _measure(speed * slow, 0.9, 90000, _candidate(24, 0.0, prec), _layers(0.0, prec))
        r["name"] = f"max-{prec}"
        r["model"] = f"cache/reference-max-{prec}.tflite"
        refs.append(r)
    doc = {"schema_version": schema,
           "run": {"data": "digits", "profile": {"name": profile, "runtime": "ai-edge-litert",
                                                 "runtime_version": "2.3.0", "resolver": "auto",
                                                 "threads": 1},
                   "space": "tiny", "sampler": "nsga2", "seed": 0, "trials": 6, "epochs": 10,
                   "finetune_epochs": 1, "latency": "hybrid" if predictors else "measured",
                   "accuracy": "hybrid" if predictors else "measured",
                   "package_versions": {"optuna": optuna.__version__, "codesign": "0.1.0"}},
           "points": points, "references": refs}
    (root / "pareto.json").write_text(json.dumps(doc))
    (root / "references.json").write_text(json.dumps(refs))
    (root / "config.json").write_text(json.dumps({"identity": {
        "objectives": ["accuracy", "latency"], "budgets": {
            "max_latency_ms": 0.05 * speed, **({"max_ram_kb": 14.0} if ram else {})},
        "space": {"name": "tiny", "resolutions": [16, 24], "prune_ratios": [0.0, 0.5],
                  "stages": [{"channels": 8, "min_depth": 1, "max_depth": 1}]}},
        "trials": 6}))
    if predictors:
        fid = {"n": 4, "predictor": {"kendall_tau": 0.6, "rmse": 0.02},
               "mean": {"kendall_tau": 0.0, "rmse": 0.05},
               "second_evaluation": {"kendall_tau": 0.9, "rmse": 0.01}}
        (root / "predictor_fidelity.json").write_text(json.dumps({
            "chosen": "mlp", "meets_target": True,
            "fidelity": {"mlp": {"float": fid, "quantized": fid},
                         "boosted": {"float": fid, "quantized": fid}}}))
    return root


@pytest.fixture(scope="module")
def made_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    base = tmp_path_factory.mktemp("made")
    return [make_run(base / "fast", "xnnpack-1t", 1.0, predictors=True),
            make_run(base / "slow", f"board{EVIL}", 3.0, predictors=False, extra=True)]


def test_several_runs_compared_and_escaped(made_runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "compare"
    rep = write_report(made_runs, out, labels=["fast one", f"slow {EVIL}"])
    assert rep.index == out / "index.html"
    assert {p.name for p in rep.pngs} >= {"run1-pareto.png", "run2-pareto.png", "fronts.png",
                                           "run1-predicted.png", "run1-layers.png"}
    html = rep.index.read_text()
    body = html.split("</head>", 1)[1]
    assert "<img src=x" not in body and "<script>window.__pwned" not in body
    assert "&lt;img src=x" in body
    summary = rep.summary.read_text()
    prose = re.sub(r"```.*?```", "", summary, flags=re.S)  # code blocks show commands as typed
    assert "<img" not in prose and "&lt;img" in prose and "not measured" in prose
    seen = view_page(rep.index, tmp_path / "compare.png")
    assert seen["errors"] == []
    assert seen["pwned"] is None
    assert offline(seen["requests"]) == []
    fronts = [len(json.loads((r / "pareto.json").read_text())["points"]) for r in made_runs]
    assert seen["front"] == {"r0-pareto": fronts[0], "r1-pareto": fronts[1]}
    text = seen["text"]
    assert "Runs compared" in text and "not measured" in text
    assert f"slow {EVIL}" in text  # shown as text, not run
    assert "within ±10 %" in text  # the predictors' fidelity table
    assert "This run used no predictors" in text  # the second run's section


def test_cross_device_table_holds_only_measurements(made_runs: list[Path]) -> None:
    from codesign.report.load import load_run
    from codesign.report.stats import candidate_key, cross_device, measured_latencies

    runs = [load_run(r) for r in made_runs]
    rows = cross_device(runs)
    refs = [r for r in rows if r.name.startswith("max-")]
    assert len(refs) == 2 and all(c.latency_ms is not None for r in refs for c in r.cells)
    # the slow run's most accurate model is a candidate the fast run never tried
    unique = next(r for r in rows if r.home == 1 and r.name == "trial 6")
    assert unique.cells[0].latency_ms is None and unique.cells[0].source == "not measured"
    assert unique.cells[1].latency_ms is not None
    # a trial whose latency was only predicted is no measurement of that candidate
    fast = runs[0]
    predicted = next(t for t in fast.complete if not t.latency_measured)
    assert candidate_key(predicted.attrs["candidate"]) not in measured_latencies(fast)
    assert candidate_key(predicted.attrs["candidate"]) in measured_latencies(runs[1])
    assert sum(c.latency_ms is None for r in rows for c in r.cells) >= 1


def test_predicted_latency_trials_and_fidelity(made_runs: list[Path]) -> None:
    from codesign.report.facts import fidelity_table
    from codesign.report.figures import latency_pairs
    from codesign.report.load import load_run

    run = load_run(made_runs[0])
    pairs = latency_pairs(run)
    assert len(pairs) == 5  # trial 5 kept its prediction: no measured pair
    headers, rows = fidelity_table(run, 1000.0, "µs")
    assert rows[0][1] == "5" and "1 kept the prediction untimed" in rows[0][0]
    assert any("accuracy predictor mlp (kept)" in r[0] for r in rows)


def test_schema_version_it_does_not_read_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path / "v4", "xnnpack-1t", 1.0, predictors=False, schema=4)
    proc = run_cli("report", str(run))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "schema_version 4" in lines[0] and "versions 1, 2 and 3" in lines[0]
    assert not (run / "report").exists()


def test_schema_1_runs_still_report_without_ram(made_runs: list[Path], tmp_path: Path) -> None:
    """Runs written before RAM was recorded (schema 1) report, saying RAM is not recorded."""
    from codesign.report.facts import front_table, model_rows
    from codesign.report.load import load_run

    run = load_run(made_runs[0])
    assert run.pareto["schema_version"] == 1
    assert all(p["ram_bytes"] is None and p["flash_bytes"] == p["size_bytes"]
               for p in run.points)
    headers, rows = front_table(run, 1000.0, "µs")
    col = headers.index("RAM KB (not recorded)")
    assert {r[col] for r in rows} == {"not recorded"}
    assert ("RAM", "not recorded (a run of codesign before RAM was recorded)") in model_rows(
        run, run.points[0], 1000.0, "µs")
    rep = write_report([made_runs[0]], tmp_path / "rep")
    assert not (tmp_path / "rep" / "ram.png").exists() and rep.index.is_file()


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    for args, words in (([str(tmp_path / "missing")], "is not a directory"),
                        ([str(tmp_path)], "has no pareto.json")):
        proc = run_cli("report", *args)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
    (tmp_path / "pareto.json").write_text("{not json")
    proc = run_cli("report", str(tmp_path))
    assert proc.returncode == 2 and "unreadable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ram_is_plotted_and_tabled_for_schema_2(tmp_path: Path) -> None:
    from codesign.report.facts import front_table, model_rows
    from codesign.report.load import load_run
    from codesign.report.ram import ram_figure, ram_points

    root = make_run(tmp_path / "v2", "tflm", 1.0, predictors=False, schema=2, ram=True)
    run = load_run(root)
    headers, rows = front_table(run, 1000.0, "µs")
    col = headers.index("RAM KB (TFLM arena)")
    assert [r[col] for r in rows[: len(run.points)]] == [
        f"{p['ram_bytes'] / 1024:.1f}" for p in run.points]
    text = dict(model_rows(run, run.points[0], 1000.0, "µs"))["RAM"]
    assert "measured by TFLM's recording allocator" in text and "activations (head)" in text
    data = ram_points(run)
    assert data is not None and data.budget_kb == 14.0 and data.label == "TFLM arena"
    assert len(data.trials) == 6 and {t[2] for t in data.trials} == set(range(6))
    fig = ram_figure(run)
    front = next(tr for tr in fig.data if tr.meta == "ram-front")
    assert sorted(front.x) == sorted(p["ram_bytes"] / 1024 for p in run.points)
    assert any(shape.x0 == 14.0 for shape in fig.layout.shapes)  # the budget line
    rep = write_report([root], tmp_path / "rep")
    assert (tmp_path / "rep" / "ram.png").stat().st_size > 10_000
    assert "ram.png" in rep.summary.read_text() and 'data-role="ram"' in rep.index.read_text()


def test_a_reference_no_trial_dominates_is_shown_and_its_export_given(tmp_path: Path) -> None:
    """Schema 3 marks such a reference ``offered``: the table, the plot and the export say so."""
    from codesign.report.facts import front_table
    from codesign.report.figures import pareto_figure
    from codesign.report.load import load_run

    root = make_run(tmp_path / "v3", "xnnpack-1t", 1.0, predictors=False, schema=3)
    doc = json.loads((root / "pareto.json").read_text())
    for ref in doc["references"]:
        ref["offered"] = ref["name"] == "max-int8"
    (root / "pareto.json").write_text(json.dumps(doc))
    run = load_run(root)
    _, rows = front_table(run, 1000.0, "µs")
    names = [r[0] for r in rows[len(run.points):]]
    assert names == ["max-float32", "max-int8 (no trial dominates it)"]
    stars = next(tr for tr in pareto_figure(run, 1000.0, "µs").data if tr.meta == "references")
    assert list(stars.text) == ["max-float32", "max-int8 (no trial dominates it)"]
    write_report([root], tmp_path / "rep")
    command = f"codesign export {root} --reference max-int8 --out max-int8.tflite"
    assert command in (tmp_path / "rep" / "summary.md").read_text()
    assert command in (tmp_path / "rep" / "index.html").read_text()
    assert "--reference max-float32" not in (tmp_path / "rep" / "summary.md").read_text()
    old = load_run(make_run(tmp_path / "v2", "xnnpack-1t", 1.0, predictors=False, schema=2))
    assert [r["offered"] for r in old.references] == [None, None]  # schema 2: not recorded
