"""The robustness run's runner: one scenario's processes. It starts the runner's model and
tools/faultproxy.py in front of it (helpers that announce their URL), then the suite (or, for bad
input, the command) through tools/suite_run.py in a session of its own, sends the scenario's
signal when it is due, kills the session (and every process carrying the run's mark) at the
bound, looks for processes left behind, and has the judge (judge.py) say what fell short."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.model_process import read_announcements
from fixtures.verdicts import NOT_RUN, PASS
from tools.robustness.catalog import PASSWORD_ENV, Scenario, When
from tools.robustness.judge import judge, records_of, seen_verdict, size_mib
from tools.robustness_intruder import INTRUDER_LOG_ENV
from tools.suite_run import ROOT, SUITE, read_jsonl, read_verdict_log, run_bounded
from tools.suite_run import pytest_argv as suite_argv

ANNOUNCE_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
LEFTOVER_GRACE_S = 5.0          # a process of the session still there this long after exit: left
RUN_MARK_ENV = "ESP_AT_ROBUSTNESS_RUN"   # in the environment of everything a scenario starts
live_sessions: set[int] = set()  # session leaders running now (killed if the runner is stopped)


# ---- processes of a session --------------------------------------------------------------------

def session_processes(sid: int, ps_output: str | None = None, mark: str | None = None
                      ) -> list[tuple[int, str]]:
    """(pid, command) of every process whose session id is `sid` (`ps -eo pid=,sid=,args=`),
    and of every process whose environment carries `mark` (RUN_MARK_ENV): the suite starts its
    model in a session of its own, so the session id alone would miss it."""
    if ps_output is None:
        ps_output = subprocess.run(["ps", "-eo", "pid=,sid=,args="], capture_output=True,
                                   text=True, check=False).stdout
    found = []
    for line in ps_output.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit() and (
                int(parts[1]) == sid or (mark and carries_mark(int(parts[0]), mark))):
            found.append((int(parts[0]), parts[2] if len(parts) > 2 else ""))
    return found


def carries_mark(pid: int, mark: str) -> bool:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return f"{RUN_MARK_ENV}={mark}".encode() in environ.split(b"\0")


def kill_session(sid: int, mark: str | None = None) -> list[tuple[int, str]]:
    """SIGKILL every process of the session (and every marked one); returns those it found."""
    found = session_processes(sid, mark=mark)
    for pid, _ in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return found


def leftovers(sid: int, grace_s: float = LEFTOVER_GRACE_S, mark: str | None = None
              ) -> list[tuple[int, str]]:
    """Processes of the session (or marked) still there `grace_s` after its leader exited (then
    killed)."""
    deadline = time.monotonic() + grace_s
    while True:
        found = session_processes(sid, mark=mark)
        if not found:
            return []
        if time.monotonic() >= deadline:
            return kill_session(sid, mark)
        time.sleep(0.2)


# ---- running one scenario ---------------------------------------------------------------------

@dataclass
class Result:
    name: str
    fault: str
    ok: bool = False
    reasons: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    exit_code: int | None = None
    hang: bool = False
    peak_mib: float | None = None
    artifacts_mib: float | None = None
    recovered: str = "-"            # yes / no / - (nothing to recover to)
    verdicts: dict[str, str] = field(default_factory=dict)   # test name -> verdict seen
    leftover: list[str] = field(default_factory=list)
    signal_sent_s: float | None = None
    dir: str = ""

    @property
    def verdict_summary(self) -> str:
        if not self.verdicts:
            return f"exit {self.exit_code}" if self.exit_code is not None else ""
        faults = [v for v in self.verdicts.values() if v not in (PASS, NOT_RUN)]
        counts = [f"{n} {label}" for label, n in (
            ("passed", sum(v == PASS for v in self.verdicts.values())),
            ("not run", sum(v == NOT_RUN for v in self.verdicts.values()))) if n]
        return ", ".join(list(dict.fromkeys(faults)) + counts)


class Announced:
    """A helper process (the runner's model or proxy) that prints its URL on one line; its
    later stdout and its stderr go to a log."""

    def __init__(self, argv: list[str], prefix: str, log: Path, env: dict[str, str]) -> None:
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")
        self.process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=self._log, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        live_sessions.add(self.process.pid)
        self.url = self._read(prefix)
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self, prefix: str) -> str:
        found, seen = read_announcements(self.process.stdout, (prefix,), ANNOUNCE_TIMEOUT_S)
        if prefix in found:
            return found[prefix]
        self.stop()
        tail = self.log.read_text(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"{' '.join(self.process.args[1:4])} did not print {prefix!r} "
                           f"(exit {self.process.poll()}): {tail[0] if tail else seen!r}")

    def _drain(self) -> None:
        try:
            for chunk in iter(lambda: self.process.stdout.read1(4096), b""):
                self._log.write(chunk)
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT_S)
        live_sessions.discard(self.process.pid)
        self._log.close()


def pytest_argv(scenario: Scenario, d: Path, at_url: str | None) -> list[str]:
    extra = ["-k", scenario.keyword] if scenario.keyword else []
    extra += ["--basetemp", str(d / "tmp")]
    if importlib.util.find_spec("pytest_randomly") is not None:
        extra += ["-p", "no:randomly"]
    return suite_argv(scenario.tests or (SUITE,), verbose=True,
                      device=("--at-port", at_url) if at_url is not None else (),
                      verdict_log=d / "verdicts.jsonl", junit=d / "junit.xml",
                      alluredir=d / "reports" / "allure-results",
                      extra=(*extra, *scenario.pytest_args))


@dataclass
class Session:
    exit_code: int | None
    wall_s: float
    peak_kib: int
    hang: bool
    leftover: list[tuple[int, str]]
    signal_sent_s: float | None


def signal_due(scenario: Scenario, started: float, now: float, stdout: Path, log: Path,
               since: dict) -> bool:
    """True once the scenario's signal should go (`since` remembers when its event was seen)."""
    when = scenario.when or When()
    if "at" not in since:
        if when.event == "start":
            since["at"] = started
        elif when.event == "started":
            nodeid = scenario.tests[when.test - 1]
            if stdout.exists() and nodeid in stdout.read_text(errors="replace"):
                since["at"] = now
        elif when.event == "finished":
            if len(read_jsonl(log)) >= when.test:
                since["at"] = now
        else:
            raise ValueError(f"unknown signal event {when.event!r}")
    return "at" in since and now >= since["at"] + when.delay_s


def _as_from_a_terminal() -> None:
    """In the child, before exec: SIGINT as a terminal gives it. A shell that starts a job in
    the background (make under CI, `cmd &`) ignores SIGINT, the child inherits that, and Python
    then installs no KeyboardInterrupt handler: a SIGINT scenario would test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_process(argv: list[str], env: dict[str, str], d: Path, scenario: Scenario) -> Session:
    """Run argv in a session of its own with stdout/stderr in D (tools/suite_run.run_bounded);
    signal it as the scenario says; at the bound kill the session and every marked process;
    then look for leftovers."""
    stdout, log, mark = d / "stdout.txt", d / "verdicts.jsonl", env.get(RUN_MARK_ENV)
    since: dict = {}
    sent: list[float] = []

    def tick(pid: int, elapsed: float) -> None:
        if scenario.signal is not None and not sent and signal_due(
                scenario, 0.0, elapsed, stdout, log, since):
            os.kill(pid, scenario.signal)
            sent.append(elapsed)

    finished = run_bounded(argv, stdout=stdout, stderr=d / "stderr.txt",
                           timeout_s=scenario.bound_s, env=env, on_start=live_sessions.add,
                           on_tick=tick,
                           kill=lambda pid: kill_session(pid, mark),
                           preexec_fn=_as_from_a_terminal)
    left = leftovers(finished.pid, mark=mark)
    live_sessions.discard(finished.pid)
    return Session(finished.exit_code, round(finished.wall_s, 1), finished.peak_kib,
                   finished.timed_out, left, round(sent[0], 1) if sent else None)


def busy_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    return sock


def scenario_env(scenario: Scenario, d: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env.update(PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    env[RUN_MARK_ENV] = f"{scenario.name}-{uuid.uuid4().hex}"   # inherited by all it starts
    if scenario.intruder:
        env[INTRUDER_LOG_ENV] = str(d / "intruder.jsonl")
    env.update(dict(scenario.env))
    return env


def execute(scenario: Scenario, out: Path) -> Result:
    try:
        return _execute(scenario, out)
    except Exception as exc:                     # the runner's own fault: said, not a crash
        return Result(scenario.name, scenario.fault, dir=str(out / scenario.name),
                      reasons=[f"runner error: {type(exc).__name__}: {exc}"])


def _execute(scenario: Scenario, out: Path) -> Result:
    d = out / scenario.name
    shutil.rmtree(d, ignore_errors=True)
    (d / "reports").mkdir(parents=True)
    result = Result(scenario.name, scenario.fault, dir=str(d))
    helpers: list[Announced] = []
    held: socket.socket | None = None
    env = scenario_env(scenario, d)
    helper_env = {k: v for k, v in env.items() if k not in (PASSWORD_ENV, RUN_MARK_ENV)}
    try:
        at_url = None
        if scenario.device in ("proxy", "model"):
            model = Announced([sys.executable, "-m", "sim", *scenario.model_args], "AT port: ",
                              d / "runner" / "model.log", helper_env)
            helpers.append(model)
            at_url = model.url
        if scenario.device == "proxy":
            argv = [sys.executable, "-m", "tools.faultproxy", "--target", at_url]
            for spec in scenario.faults:
                argv += ["--fault", spec]
            proxy = Announced(argv, "proxy port: ", d / "runner" / "proxy.log", helper_env)
            helpers.append(proxy)
            at_url = proxy.url
        error_line = scenario.error_line
        if scenario.device == "none":
            held = busy_port()
            port = str(held.getsockname()[1])
            argv = [sys.executable, "-m", *(a.replace("{busy}", port) for a in scenario.command)]
            error_line = (error_line or "").replace("{busy}", port)
        else:
            argv = pytest_argv(scenario, d, at_url)
        (d / "runner").mkdir(exist_ok=True)
        (d / "runner" / "argv.txt").write_text(" ".join(argv) + "\n")
        session = run_process(argv, env, d, scenario)
    except RuntimeError as exc:
        result.reasons.append(str(exc))
        return result
    finally:
        for helper in reversed(helpers):
            helper.stop()
        if held is not None:
            held.close()
    result.wall_s, result.exit_code, result.hang = session.wall_s, session.exit_code, session.hang
    result.peak_mib = round(session.peak_kib / 1024, 1)
    result.signal_sent_s = session.signal_sent_s
    result.leftover = [f"{pid} {args[:120]}" for pid, args in session.leftover]
    result.reasons = judge(scenario, d, session, error_line)
    records = read_verdict_log(d / "verdicts.jsonl")
    result.verdicts = {}
    for key, want in scenario.verdicts:
        mine = records_of(key, records)
        result.verdicts[key.rpartition("::")[2]] = seen_verdict(mine[0]) if mine else NOT_RUN
    if scenario.must_pass:
        result.recovered = "yes" if all(
            records_of(k, records) and all(seen_verdict(r) == PASS for r in records_of(k, records))
            for k in scenario.must_pass) else "no"
    result.artifacts_mib = round(size_mib(d, skip=(d / "tmp", d / "runner")), 2)
    result.ok = not result.reasons
    return result
