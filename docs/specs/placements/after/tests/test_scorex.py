import math
import random

from scorex import losses
from scorex.agent import Agent
from scorex.scorers import ClippedScorer, ConstantScorer, LinearScorer
from scorex.train import evaluate


def test_the_agent_scores_with_its_scorer() -> None:
    agent = Agent(LinearScorer([1.0, 2.0]))
    assert agent.act([1.0, 1.0], 0.5) == 3.5
    assert agent.best([1.0, 1.0]) == 1
    assert isinstance(agent.rng, random.Random)


def test_a_subclass_delegates_and_clips() -> None:
    assert Agent(ClippedScorer([1.0])).act([3.0], 0.0) == 1.0


def test_a_structural_scorer() -> None:
    scorer = ConstantScorer()
    assert scorer.score(random.Random(0), [1.0], 2.0) == 2.0
    assert scorer.rank(random.Random(0), [5.0, 1.0]) == [0, 1]


def test_losses() -> None:
    assert abs(losses.entropy([0.5, 0.5], reduction="mean") - math.log(2)) < 1e-9
    agent = Agent(LinearScorer([1.0]))
    assert math.isfinite(agent.loss([[1.0], [2.0]], [1.0, 2.0]))
    total, ent = evaluate(agent, [[1.0], [3.0]], [1.0, 3.0])
    assert math.isfinite(total) and ent > 0
