"""Fixtures the model's unit tests share (tests/unit/test_sim*.py): a model, its AT port with
echo off, and a raw WebSocket server that records the wire."""
import pytest

from tests.unit.test_sim import OK, AtPort, WsServer, start_model


@pytest.fixture
def sim_model():
    m = start_model()
    yield m
    m.stop()


@pytest.fixture
def sim_at(sim_model):
    port = AtPort(sim_model.url)
    assert port.cmd("ATE0").endswith(OK)
    yield port
    port.close()


@pytest.fixture
def raw_ws():
    s = WsServer()
    yield s
    s.stop()
