"""The compose sidecar (`edgespec.sim.edge_link`) without a container: the EDGE_* variables parse
(and bad ones fail naming the variable), both mechanisms build the commands of `edgespec sim`'s
shaping (netem; tbf + nftables drop + redirect to the DelayProxy), and the proxy keeps the asked
mean and range of extra RTT. The real run is tests/deploy/test_compose_up.py."""

from __future__ import annotations

import pytest

from edgespec.net.link import LinkSpec
from edgespec.sim import edge_link
from edgespec.sim.edge_link import EdgeLinkConfig

ENV = {"EDGE_DELAY": "40ms", "EDGE_JITTER": "5ms", "EDGE_LOSS": "2.5%", "EDGE_RATE": "500kbit"}


@pytest.fixture
def recorded(record_sh):
    """Record the commands edge_link would run (every one succeeds)."""
    return record_sh(edge_link)


def test_variables_parse_with_units():
    cfg = EdgeLinkConfig.from_env({**ENV, "EDGE_DELAY": "0.04s"})
    assert (cfg.delay_ms, cfg.jitter_ms, cfg.loss_pct, cfg.rate_mbit) == (40.0, 5.0, 2.5, 0.5)
    assert EdgeLinkConfig.from_env({}).delay_ms == 0
    assert EdgeLinkConfig.from_env({"EDGE_RATE": "1gbit"}).rate_mbit == 1000


@pytest.mark.parametrize("name, value", [("EDGE_DELAY", "40 parsecs"), ("EDGE_RATE", "fast"),
                                         ("EDGE_LOSS", "100%"), ("EDGE_MECHANISM", "magic"), ("EDGE_TARGET", "nohost")])
def test_bad_variable_is_named(name, value):
    with pytest.raises(ValueError, match=name):
        EdgeLinkConfig.from_env({**ENV, name: value})


def test_proxy_keeps_the_mean_and_range_of_the_extra_rtt():
    link = EdgeLinkConfig.from_env(ENV).proxy_link()
    assert link == LinkSpec(rtt_ms=35.0, jitter_ms=5.0)  # [35, 45] ms, mean 40: netem's delay 40ms +- 5ms


def test_netem_shapes_eth0_with_every_variable(recorded):
    commands = edge_link.MECHANISMS["netem"][0](EdgeLinkConfig.from_env(ENV), "10.0.0.2")
    assert commands == ["tc qdisc replace dev eth0 root netem delay 40ms 5ms loss 2.5% rate 0.5mbit"]


def test_userspace_uses_tbf_an_nft_drop_and_redirects_the_draft_to_the_proxy(recorded):
    cfg = EdgeLinkConfig.from_env(ENV)
    commands = edge_link.MECHANISMS["userspace"][0](cfg, "10.0.0.2")
    assert commands[0].startswith("tc qdisc replace dev eth0 root tbf rate 0.5mbit")
    assert any("oifname eth0 numgen random mod 10000 < 250 drop" in c for c in commands)
    redirect = [c for c in commands if "redirect" in c]
    assert redirect == ["nft add rule ip edge_link_nat out ip daddr 10.0.0.2 tcp dport 50051 meta skuid != 0 "
                        f"redirect to :{cfg.proxy_port}"]
    # re-applying (a container restart) first removes what a previous run added
    assert ("nft", "delete", "table", "ip", "edge_link_nat") in recorded


def test_auto_falls_back_to_userspace_without_netem(recorded, monkeypatch):
    monkeypatch.setattr(edge_link, "netem_available", lambda: False)
    assert edge_link.choose_mechanism("auto") == "userspace"
    with pytest.raises(edge_link.LabError, match="no netem"):
        edge_link.choose_mechanism("netem")
    monkeypatch.setattr(edge_link, "netem_available", lambda: True)
    assert edge_link.choose_mechanism("auto") == "netem"
