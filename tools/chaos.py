"""Break a multi-worker search on purpose and check that nothing measured is lost.

Starts a throwaway PostgreSQL cluster on loopback (or uses --storage), runs
`codesign search --workers 2` on it with a third `codesign worker` joined by
hand, and meanwhile:

1. SIGKILLs the hand-joined worker while it evaluates a trial: that trial must
   become FAIL and be run again by another worker;
2. stops the database mid-search and keeps it down until a worker has found
   it gone (at least 4 s, at most 60 s): the workers must retry with back-off
   and go on;
3. exports a model onto a full disk (a 64 KB tmpfs, or an injected ENOSPC
   where mounting is not allowed, which is then said): a clear error, the
   study intact, and the export rerun elsewhere works.

Prints trials asked, completed, failed, retried, lost (must be 0) and run
twice (must be 0); exits 1 if any check fails.

    .venv/bin/python tools/chaos.py --quick
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from codesign.engine.shared_study import INFRASTRUCTURE  # noqa: E402
from codesign.run.storage import engine_url, mask_url  # noqa: E402
from codesign.scale.pgcluster import Cluster  # noqa: E402

CODESIGN = [sys.executable, "-m", "codesign.cli"]
TINY = ["--space", "tiny", "--seed", "0", "--quality-samples", "0", "--finetune-epochs", "1",
        "--latency", "measured", "--no-report"]
STUDY = "chaos"


def _running_of(engine: sqlalchemy.Engine, pid: int) -> list[int]:
    """Numbers of the RUNNING trials that process ``pid`` claimed."""
    sql = sqlalchemy.text(
        "select t.number from trials t join studies s on s.study_id = t.study_id "
        "join trial_user_attributes a on a.trial_id = t.trial_id "
        "join trial_user_attributes c on c.trial_id = t.trial_id "
        "where s.study_name = :study and t.state = 'RUNNING' and a.key = 'worker' "
        "and a.value_json like :pid and c.key = 'candidate'")
    try:
        with engine.connect() as c:
            return [r[0] for r in c.execute(sql, {"study": STUDY, "pid": f'%"pid": {pid},%'})]
    except sqlalchemy.exc.SQLAlchemyError:
        return []


def _complete(engine: sqlalchemy.Engine) -> int:
    sql = sqlalchemy.text(
        "select count(*) from trials t join studies s on s.study_id = t.study_id "
        "where s.study_name = :study and t.state = 'COMPLETE'")
    try:
        with engine.connect() as c:
            return int(c.execute(sql, {"study": STUDY}).scalar() or 0)
    except sqlalchemy.exc.SQLAlchemyError:
        return 0


def _wait(cond: object, timeout: float, proc: subprocess.Popen, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        if proc.poll() is not None:
            return False
        time.sleep(step)
    return False


def tally(url: str, asked: int) -> dict[str, int]:
    """Trials asked, completed, failed, retried, lost and run twice, from the study."""
    import optuna
    from optuna.trial import TrialState

    from codesign.run.study import load_study

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_study(f"{url}#{STUDY}")
    trials = study.get_trials(deepcopy=False)
    by_number = {t.number: t for t in trials}
    retries: dict[int, list[int]] = {}
    for t in trials:
        if "retry_of" in t.user_attrs:
            retries.setdefault(int(t.user_attrs["retry_of"]), []).append(t.number)

    def completed_later(n: int) -> int:
        """COMPLETE trials that re-ran trial n (following retries of retries)."""
        total = 0
        for r in retries.get(n, []):
            state = by_number[r].state
            total += 1 if state == TrialState.COMPLETE else 0
            total += completed_later(r) if state == TrialState.FAIL else 0
        return total

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = [t for t in trials if t.state == TrialState.FAIL]
    interrupted = [t for t in failed if t.params and str(
        t.user_attrs.get("fail_reason", "")).startswith(INFRASTRUCTURE)]
    lost = sum(1 for t in interrupted if completed_later(t.number) == 0)
    lost += max(0, asked - len(complete))
    twice = sum(max(0, completed_later(t.number) - 1) for t in interrupted)
    numbers = [t.number for t in complete]
    twice += len(numbers) - len(set(numbers))
    return {"asked": asked, "completed": len(complete), "failed": len(failed),
            "retried": sum(1 for t in trials if "retry_of" in t.user_attrs
                           and t.state in (TrialState.COMPLETE, TrialState.FAIL)),
            "lost": lost, "run twice": twice,
            "running": sum(1 for t in trials if t.state == TrialState.RUNNING)}


def disk_full_export(run: Path, trial: int, work: Path, env: dict[str, str]
                     ) -> tuple[bool, str]:
    """Export onto a full disk, check the error and the study, export again elsewhere."""
    full = work / "full"
    full.mkdir()
    mounted = False
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)],
                                 capture_output=True).returncode == 0
    target = full / "model.tflite"
    try:
        if mounted:
            (full / "filler").write_bytes(b"\0" * 60 * 1024)  # leave less than a model
            how = "a 64 KB tmpfs, nearly filled"
            proc = subprocess.run([*CODESIGN, "export", str(run), "--trial", str(trial),
                                   "--out", str(target)], capture_output=True, text=True,
                                  env=env, cwd=ROOT, timeout=300)
            code, err = proc.returncode, proc.stderr.strip()
        else:
            how = "injected OSError(ENOSPC) (mounting a tmpfs is not permitted here)"
            code, err = _injected_export(run, trial, target)
    finally:
        if mounted:
            subprocess.run(["umount", str(full)], capture_output=True)
    clear = code == 2 and "No space left on device" in err and "Traceback" not in err
    again = subprocess.run([*CODESIGN, "export", str(run), "--trial", str(trial), "--out",
                            str(work / "ok" / "model.tflite")], capture_output=True, text=True,
                           env=env, cwd=ROOT, timeout=300)
    ok = clear and again.returncode == 0 and (work / "ok" / "model.tflite").is_file()
    return ok, (f"disk full while exporting ({how}): exit {code}, {err!r}; rerun elsewhere: "
                f"exit {again.returncode}")


def _injected_export(run: Path, trial: int, target: Path) -> tuple[int, str]:
    """Run the export in this process with every file write raising ENOSPC."""
    from unittest import mock

    from codesign.errors import CodesignError
    from codesign.export import export_trial

    def full(self: Path, *a: object, **k: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    try:
        with mock.patch.object(Path, "write_bytes", full), \
                mock.patch.object(Path, "write_text", full):
            export_trial(run, trial, target)
    except CodesignError as exc:
        return 2, f"codesign: error: {exc}"
    return 0, ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small settings (the CI test)")
    ap.add_argument("--storage", default=None,
                    help="a PostgreSQL URL to use (default: a throwaway cluster; the database "
                         "restart needs that one)")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None, help="run directory (default: temp)")
    args = ap.parse_args()
    trials = args.trials or (20 if args.quick else 40)
    epochs = "4" if args.quick else "10"
    cluster = None if args.storage else Cluster().init()
    url = args.storage or cluster.url  # type: ignore[union-attr]
    work = Path(tempfile.mkdtemp(prefix="codesign-chaos-"))
    run = args.out or work / "run"
    os.environ["CODESIGN_STORAGE"] = url  # how `codesign export` finds the password
    env = {**os.environ, "CODESIGN_DB_WAIT_S": "120"}
    engine = sqlalchemy.create_engine(engine_url(url), pool_pre_ping=True)
    checks: list[tuple[bool, str]] = []
    search = victim = None
    t0 = time.monotonic()
    try:
        search = subprocess.Popen(
            [*CODESIGN, "search", *TINY, "--epochs", epochs, "--trials", str(trials),
             "--workers", "2", "--storage", url, "--study", STUDY, "--out", str(run)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out_lines: list[str] = []
        err_lines: list[str] = []
        readers = [threading.Thread(target=lines.extend, args=(stream,), daemon=True)
                   for lines, stream in ((out_lines, search.stdout), (err_lines, search.stderr))]
        for reader in readers:
            reader.start()
        if not _wait(lambda: (run / "config.json").is_file() and (run / "storage.json").is_file(),
                     120, search):
            raise RuntimeError("the search did not start")
        vlog = open(work / "victim.log", "w")  # noqa: SIM115
        victim = subprocess.Popen([*CODESIGN, "worker", "--out", str(run), "--study", STUDY],
                                  cwd=ROOT, env=env, stdout=vlog, stderr=subprocess.STDOUT)
        killed: list[int] = []
        got = _wait(lambda: bool(killed.extend(_running_of(engine, victim.pid)) or killed),
                    300, victim, 0.02)
        if got and killed:
            os.kill(victim.pid, signal.SIGKILL)
            victim.wait()
            print(f"[{time.monotonic() - t0:5.1f} s] SIGKILLed worker {victim.pid} while it ran "
                  f"trial {killed[0]}", flush=True)
        checks.append((bool(got and killed), f"worker killed mid-trial: trial {killed}"))

        restarted = False
        if cluster is not None:
            _wait(lambda: _complete(engine) >= trials // 2, 300, search)
            if search.poll() is None:
                done = _complete(engine)
                cluster.stop("fast")
                down = time.monotonic()
                print(f"[{down - t0:5.1f} s] database stopped at {done} complete trials; "
                      "down until a worker finds it gone (4-60 s)", flush=True)
                time.sleep(4)
                _wait(lambda: any("unreachable" in line for line in err_lines), 56, search, 0.2)
                cluster.start()
                restarted = True
                print(f"[{time.monotonic() - t0:5.1f} s] database started again after "
                      f"{time.monotonic() - down:.0f} s", flush=True)
        search.wait(timeout=900)
        for reader in readers:
            reader.join(timeout=10)
        out, err = "".join(out_lines), "".join(err_lines)
        checks.append((search.returncode == 0,
                       f"search ended with exit code {search.returncode}"))
        if search.returncode != 0:
            print(mask_url(err[-3000:]), file=sys.stderr)
            raise RuntimeError("the search failed")
        retried_db = "unreachable" in err and "retrying" in err
        if cluster is not None:
            checks.append((restarted and retried_db,
                           "database restarted mid-search; the workers retried and went on"
                           if retried_db else "no worker saw the database restart"))
        checks.append(("pw-" not in (out + err) or cluster is None,
                       "no password in the search's output"))
        t = tally(url, trials)
        checks.append((t["lost"] == 0 and t["run twice"] == 0 and t["completed"] == trials
                       and t["running"] == 0, "exact count, none lost or run twice"))
        if killed:
            failed_killed = [n for n in killed if n in _failed_numbers(url)]
            checks.append((bool(failed_killed), f"killed trial {killed[0]} is FAIL and retried"))
        front = json.loads((run / "pareto.json").read_text())["points"]
        before = tally(url, trials)
        ok, line = disk_full_export(run, front[0]["trial"], work, env)
        checks.append((ok and tally(url, trials) == before, line + "; study intact"))
        print(f"trials asked {t['asked']}, completed {t['completed']}, failed {t['failed']}, "
              f"retried {t['retried']}, lost {t['lost']}, run twice {t['run twice']}")
    finally:
        for proc in (victim, search):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=60)
        engine.dispose()
        if cluster is not None:
            cluster.destroy()
    for ok, line in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {mask_url(line)}")
    print(f"chaos: {sum(ok for ok, _ in checks)} of {len(checks)} checks passed in "
          f"{time.monotonic() - t0:.0f} s (run dir {run})")
    return 0 if all(ok for ok, _ in checks) else 1


def _failed_numbers(url: str) -> set[int]:
    from optuna.trial import TrialState

    from codesign.run.study import load_study

    study = load_study(f"{url}#{STUDY}")
    return {t.number for t in study.get_trials(deepcopy=False)
            if t.state == TrialState.FAIL and any(
                r.user_attrs.get("retry_of") == t.number for r in study.get_trials(
                    deepcopy=False))}


if __name__ == "__main__":
    sys.exit(main())
