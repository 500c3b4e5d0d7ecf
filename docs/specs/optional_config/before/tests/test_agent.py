from agentb.agent import Agent
from agentb.network import Network
from agentb.policy import ConstantPolicy, NetPolicy


def test_net_policy_acts_through_the_network() -> None:
    agent = Agent(NetPolicy(Network()))
    assert agent.step([1.0, 2.0], 0.5) == {"op": 6.5, "slot": 7.5}
    assert agent.estimate([1.0]) == 2.5


def test_constant_policy() -> None:
    policy = ConstantPolicy()
    assert policy.act([1.0], 3.0) == {"op": 3.0, "slot": 3.0}
    assert policy.value([1.0]) == 0.0
