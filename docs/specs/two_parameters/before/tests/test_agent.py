import math

from trainc.agent import Agent
from trainc.losses import masked_entropy
from trainc.policy import Policy


def test_step_picks_the_largest_logit() -> None:
    assert Agent(Policy([0.1, 2.0, 0.5])).step(1.0) == 1


def test_loss_is_finite() -> None:
    loss = Agent(Policy([0.1, 2.0])).loss(1.0, 0.5, None)
    assert math.isfinite(loss)


def test_entropy_of_uniform() -> None:
    assert abs(masked_entropy([math.log(0.5)] * 2) - math.log(2)) < 1e-9
