"""`--profile auto`: the profile read from AT+CMD? and AT+GMR (fixtures/profile.py), line by line."""
import pytest

from fixtures.profile import compile_date, detect, resolve

BASIC = frozenset({"AT", "AT+GMR", "AT+CMD", "AT+RST"})
SEED = BASIC | {"AT+WSCFG", "AT+WSOPEN", "AT+WSSEND", "AT+WSCLOSE"}
WSHEAD = SEED | {"AT+WSHEAD"}
CURRENT = WSHEAD | {"AT+WSDATAFMT"}


def gmr(compiled: str) -> list[bytes]:
    """AT+GMR as ESP-AT prints it."""
    return [b"AT version:4.0.0.0(s-4b27c7a - ESP32C2 - Jul 28 2023 08:13:03)",
            b"SDK version:v5.0.4-dirty", f"compile time(4b27c7a):{compiled}".encode(),
            b"Bin version:v4.0.0.0(ESP32C2-4MB)"]


@pytest.mark.parametrize("commands,compiled,expected", [
    (SEED, "Dec 20 2022 10:00:00", "seed"),
    (SEED, "Jan  9 2026 10:00:00", "seed"),          # a new build without AT+WSHEAD is still seed
    (WSHEAD, "Mar  1 2023 09:00:00", "wshead"),      # before the auth field's firmware (2023-07)
    (WSHEAD, "Jul  1 2023 09:00:00", "auth"),
    (WSHEAD, "Aug 31 2024 23:59:59", "auth"),
    (WSHEAD, "Sep  1 2024 00:00:00", "tls"),
    (WSHEAD, "Nov 11 2025 12:00:00", "tls"),
    (CURRENT, "Jan 15 2026 12:00:00", "current"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_commands_then_the_compile_date_pick_the_profile(commands, compiled, expected):
    found = detect(commands, gmr(compiled))
    assert found.name == expected, found.reason
    assert "AT+CMD? lists" in found.reason


def test_without_a_readable_date_the_oldest_candidate_is_taken():
    found = detect(WSHEAD, [b"AT version:4.0.0.0", b"compile time:unknown"])
    assert found.name == "wshead"
    assert "no readable compile time" in found.reason


def test_the_model_names_its_profile_and_that_decides():
    lines = [b"AT version:4.1.1.0(esp-at-ws reference model - profile tls - defects none - ESP32C2)"]
    found = detect(SEED, lines)                     # even against the command list
    assert found.name == "tls" and "reference model" in found.reason


def test_no_command_list_is_taken_as_the_seed():
    found = detect(None, gmr("Sep  1 2024 00:00:00"))
    assert found.name == "seed" and "AT+CMD? did not answer" in found.reason
    assert found.missing() == []


def test_an_explicit_profile_the_device_lacks_commands_of_is_reported():
    found = resolve("current", WSHEAD, gmr("Jan 15 2026 12:00:00"))
    assert found.name == "current"
    assert found.missing() == ["AT+WSDATAFMT"]
    assert resolve("auto", WSHEAD, gmr("Jan 15 2026 12:00:00")).reason.startswith("auto: ")


def test_compile_date_reads_esp_at_s_line():
    assert compile_date(gmr("Sep  3 2024 07:56:04")).isoformat() == "2024-09-03"
    assert compile_date([b"compile time:Foo 3 2024"]) is None
