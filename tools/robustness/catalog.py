"""The robustness run's scenarios, as data: which tests run, on which device (the runner's model
behind tools/faultproxy.py, the runner's model direct, the suite's own model, or no pytest at all
for bad input), which fault or signal hits them, and what must come of it (exit code, verdicts,
the tests that must pass after the fault, a bound in time, a secret, memory and size limits)."""
from __future__ import annotations

import signal
from dataclasses import dataclass

from fixtures.verdicts import BROKEN, DEVICE_FAULT, INTERRUPTED, NEW, NOT_RUN, PASS

PASSWORD_ENV = "ESP_AT_WIFI_PASSWORD"
SESSION_STOPS = "the session stops"
USAGE_ERROR = 4                       # pytest.ExitCode.USAGE_ERROR
ARGPARSE_ERROR = 2
SESSION_STOP_EXIT = 2                 # pytest.ExitCode.INTERRUPTED

WSOPEN = "tests/conformance/test_wsopen.py::"
WSCLOSE = "tests/conformance/test_wsclose.py::"
WSCFG = "tests/conformance/test_wscfg.py::"
KEEPALIVE = "tests/conformance/test_keepalive.py::"

OPENS = WSOPEN + "test_open_prints_connected_once_then_ok"       # sends AT+WSOPEN= (1 s)
QUERY = WSOPEN + "test_query_without_connection_answers_only_ok"  # sends AT+WSOPEN? only
CFG_EXAMPLE = WSCFG + "test_doc_example_is_accepted_to_the_byte"
OPENS_AGAIN = WSCLOSE + "test_the_id_opens_again_at_once"
NO_PONG = KEEPALIVE + "test_no_pong_within_timeout_aborts_the_connection"   # about 4 s
CLOSE_OK = WSCLOSE + "test_close_answers_ok_and_the_link_is_gone"

LATER = (QUERY, CFG_EXAMPLE, OPENS_AGAIN)          # after the fault: the device is back, a link opens
CFG_SET = WSCFG + "test_set_answers_ok_and_nothing_else[buffer-size-left-off]"
LATER_NO_OPEN = (QUERY, CFG_EXAMPLE, CFG_SET)      # no AT+WSOPEN=: for a fault still armed on it
WIFI_AP = ("--wifi-ap", "lab:right-pass")         # the runner's model: one network
WIFI_PASSWORD = "wrong-s3cret-7f3a"


@dataclass(frozen=True)
class When:
    """When the signal goes: `delay_s` after the `test`-th selected test (1-based) started (its
    node id on the verbose terminal) or finished (its line in the verdict log), or `delay_s`
    after the start (event "start")."""
    event: str = "start"            # "start" | "started" | "finished"
    test: int = 0
    delay_s: float = 0.0


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: str                                  # what the table calls it
    device: str = "proxy"                       # proxy: model + faultproxy; model: model direct;
                                                # suite: the suite's own model; none: no pytest
    faults: tuple[str, ...] = ()                # faultproxy SPECs
    model_args: tuple[str, ...] = ()            # `python -m sim` arguments (proxy, model)
    tests: tuple[str, ...] = ()                 # node ids, run in this order
    keyword: str | None = None                  # or -k over tests/conformance
    pytest_args: tuple[str, ...] = ()
    command: tuple[str, ...] = ()               # device "none": `python -m ...` argv; {busy} is a
                                                # port the runner holds busy
    env: tuple[tuple[str, str], ...] = ()
    exit_code: int = 1
    verdicts: tuple[tuple[str, str], ...] = ()  # node id substring -> PASS, NOT RUN or a verdict
                                                # (alternatives separated by |)
    must_pass: tuple[str, ...] = ()             # the tests after the fault: "recovered"
    signal: int | None = None
    when: When | None = None
    secret: str | None = None
    stop_line: str | None = None                # the one line a session stop prints
    error_line: str | None = None               # bad input: the one line with the error
    intruder: bool = False
    max_peak_mib: float | None = None
    max_artifacts_mib: float | None = None
    bound_s: float = 120.0                      # finished within this, or it is a hang
    expected_s: float = 20.0                    # for scheduling: longest first

    @property
    def bad_input(self) -> bool:
        return self.error_line is not None

    def expected(self) -> dict[str, str]:
        return dict(self.verdicts)


def _fault(name: str, spec: str, verdict: str, *, later=LATER, bound_s=120.0, expected_s=25.0,
           **extra) -> Scenario:
    """A fault on the first test's AT+WSOPEN= (or `spec`'s trigger), the later tests passing."""
    return Scenario(name=name, fault=spec, faults=(spec,), tests=(OPENS, *later),
                    verdicts=((OPENS, verdict), *((t, PASS) for t in later)), must_pass=later,
                    exit_code=1, bound_s=bound_s, expected_s=expected_s, **extra)


def _signal(name: str, sig: int) -> Scenario:
    tests = (QUERY, NO_PONG, CLOSE_OK)
    return Scenario(name=name, fault=f"{signal.Signals(sig).name} mid-test", device="suite",
                    tests=tests, verdicts=((QUERY, PASS), (NO_PONG, INTERRUPTED),
                                           (CLOSE_OK, NOT_RUN)),
                    signal=sig, when=When("started", 2, 1.5), exit_code=SESSION_STOP_EXIT,
                    bound_s=60.0, expected_s=15.0)


def _bad_pytest(name: str, args: tuple[str, ...], error_line: str, **extra) -> Scenario:
    return Scenario(name=name, fault="bad input: " + " ".join(args), device="suite",
                    tests=(QUERY,), pytest_args=args, verdicts=((QUERY, NOT_RUN),),
                    exit_code=USAGE_ERROR, error_line=error_line, bound_s=60.0, expected_s=5.0,
                    **extra)


def _bad_command(name: str, command: tuple[str, ...], error_line: str) -> Scenario:
    return Scenario(name=name, fault="bad input: python -m " + " ".join(command), device="none",
                    command=command, exit_code=ARGPARSE_ERROR, error_line=error_line,
                    bound_s=20.0, expected_s=3.0)


SCENARIOS: list[Scenario] = [
    _fault("reboot", "reboot@AT+WSOPEN=", DEVICE_FAULT),
    _fault("garbage", "garbage@AT+WSOPEN=", DEVICE_FAULT),
    _fault("lone-prompt", "prompt@AT+WSOPEN=", DEVICE_FAULT),
    # The header's 100 bytes are then the command's own output, not followed by CR-LF: a
    # +WS_DATA in a broken form, which fails the test (NEW), not a fault (esp_at/exchange.py).
    _fault("header-no-payload", "header@AT+WSOPEN=", NEW),
    _fault("stall-60s", "stall:60@AT+WSOPEN=", DEVICE_FAULT, bound_s=240.0, expected_s=100.0),
    Scenario(name="gone", fault="gone@AT+WSOPEN=", faults=("gone@AT+WSOPEN=",),
             tests=(OPENS, *LATER),
             verdicts=((OPENS, f"{DEVICE_FAULT}|{BROKEN}"), *((t, NOT_RUN) for t in LATER)),
             exit_code=SESSION_STOP_EXIT, stop_line=SESSION_STOPS, bound_s=150.0,
             expected_s=60.0),
    _fault("port-drop-5s", "drop:5@AT+WSOPEN=", BROKEN, bound_s=150.0, expected_s=30.0),
    _fault("flood-32MB", "flood:33554432@AT+WSOPEN=", DEVICE_FAULT, max_peak_mib=200.0,
           max_artifacts_mib=10.0, bound_s=240.0, expected_s=60.0),
    Scenario(name="busy-restore", fault="busy:2@AT+WSOPEN?", faults=("busy:2@AT+WSOPEN?",),
             tests=(OPENS, *LATER), verdicts=tuple((t, PASS) for t in (OPENS, *LATER)),
             must_pass=LATER, exit_code=0),
    _fault("busy-test", "busy:50@AT+WSOPEN=", DEVICE_FAULT, later=LATER_NO_OPEN),
    _signal("sigint", signal.SIGINT),
    _signal("sigterm", signal.SIGTERM),
    Scenario(name="wifi-join-fails", fault="Wi-Fi join with a wrong password", device="model",
             model_args=WIFI_AP, tests=(QUERY, CFG_EXAMPLE),
             pytest_args=("--wifi-ssid", "lab"), env=((PASSWORD_ENV, WIFI_PASSWORD),),
             verdicts=((QUERY, NOT_RUN), (CFG_EXAMPLE, NOT_RUN)), exit_code=SESSION_STOP_EXIT,
             stop_line=SESSION_STOPS, secret=WIFI_PASSWORD, bound_s=120.0, expected_s=40.0),
    # The control: the password from the environment does reach the device, and is in no
    # artifact of a passing run either.
    Scenario(name="wifi-join-ok", fault="Wi-Fi join, password from the environment",
             device="model", model_args=WIFI_AP, tests=(QUERY, CFG_EXAMPLE),
             pytest_args=("--wifi-ssid", "lab"), env=((PASSWORD_ENV, "right-pass"),),
             verdicts=((QUERY, PASS), (CFG_EXAMPLE, PASS)), exit_code=0, secret="right-pass",
             bound_s=90.0, expected_s=10.0),
    Scenario(name="intruder", fault="a stranger on the endpoint", device="suite",
             tests=(NO_PONG, QUERY, CFG_EXAMPLE),
             pytest_args=("-p", "tools.robustness_intruder"),
             verdicts=((NO_PONG, BROKEN), (QUERY, PASS), (CFG_EXAMPLE, PASS)),
             must_pass=(QUERY, CFG_EXAMPLE), intruder=True, exit_code=1, bound_s=90.0,
             expected_s=15.0),
    _bad_pytest("at-port-nobody", ("--at-port", "socket://127.0.0.1:1"), "127.0.0.1:1"),
    _bad_pytest("at-port-no-such-device", ("--at-port", "/dev/ttyNOPE"), "/dev/ttyNOPE"),
    _bad_pytest("at-port-bad-url", ("--at-port", "foo://x"), "foo://x"),
    _bad_pytest("at-port-bad-port", ("--at-port", "socket://127.0.0.1:99999"), "99999"),
    _bad_pytest("ws-host-not-here", ("--ws-host", "10.255.255.1"), "10.255.255.1"),
    _bad_pytest("wifi-password-on-command-line",
                ("--wifi-ssid", "lab", "--wifi-password", "x"), PASSWORD_ENV),
    _bad_command("servers-port-busy", ("servers", "--port", "{busy}"), "{busy}"),
    _bad_command("sim-port-busy", ("sim", "--listen", "127.0.0.1:{busy}"), "{busy}"),
]
BY_NAME = {s.name: s for s in SCENARIOS}
