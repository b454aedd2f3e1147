import math

import numpy as np
import pytest

from edgebnn.exits import normalized_entropy, should_exit, softmax, summarize


def test_entropy_of_softmax_2_1_0_matches_the_published_value():
    assert normalized_entropy(softmax([2.0, 1.0, 0.0])) == pytest.approx(0.757679, abs=5e-7)


def test_entropy_of_uniform_is_one_and_of_one_hot_is_zero():
    assert normalized_entropy(np.full(7, 1 / 7)) == pytest.approx(1.0)
    assert normalized_entropy([0.0, 1.0, 0.0]) == 0.0


@pytest.mark.parametrize("n", [2, 3, 10, 64, 65, 1000])
def test_softmax_and_summary_agree_with_the_definition(n):
    logits = np.random.default_rng(n).standard_normal(n).astype(np.float32) * 4
    p, (label, confidence, eta) = softmax(logits), summarize(logits)
    expected = np.exp(logits.astype(np.float64) - logits.max())
    expected /= expected.sum()
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    assert eta == pytest.approx(-(expected * np.log(expected)).sum() / math.log(n), abs=1e-12)
    assert (label, confidence) == (expected.argmax(), pytest.approx(expected.max(), rel=1e-12))


def test_softmax_and_summary_survive_extreme_logits():
    logits = np.array([1e30, -1e30, 0.0], np.float32)
    assert softmax(logits).tolist() == [1.0, 0.0, 0.0]
    assert summarize(logits) == (0, 1.0, 0.0)


def test_threshold_zero_never_exits_and_one_exits_all_but_uniform():
    assert not should_exit(0.0, 0.0)
    assert should_exit(0.999, 1.0)
    assert not should_exit(1.0, 1.0)
