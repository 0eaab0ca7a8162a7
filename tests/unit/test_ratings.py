"""OpenSkill Plackett-Luce ratings, the final score and the chain's fixed point."""

from __future__ import annotations

import math

import numpy as np
import pytest
from openskill.models import PlackettLuce

from aggregator.ratings import (
    Rating,
    RatingConfig,
    RatingError,
    competition_ranks,
    final_scores,
    from_fixed,
    rating_weight,
    reliability,
    to_fixed,
    update_ratings,
)


def test_competition_ranks_tie_equal_scores_and_put_non_finite_last() -> None:
    assert competition_ranks([3.0, 1.0, 1.0, math.nan, -math.inf, 5.0]) == [1, 2, 2, 4, 4, 0]


def test_update_ratings_orders_mu_by_score() -> None:
    ratings = update_ratings({}, {"0xa": 0.3, "0xb": 0.1, "0xc": -0.2})

    assert ratings["0xa"].mu > ratings["0xb"].mu > ratings["0xc"].mu
    assert all(r.sigma < 25.0 / 3.0 for r in ratings.values())


OFF = RatingConfig(weight="confidence", reliability_power=0.0)  # OpenSkill and the confidence weight alone


def test_update_ratings_matches_openskill_directly() -> None:
    model = PlackettLuce()
    [[winner], [loser]] = model.rate([[model.rating()], [model.rating()]], ranks=[0, 1])

    ratings = update_ratings({}, {"0xloser": 0.0, "0xwinner": 1.0}, OFF)

    assert ratings["0xwinner"] == Rating(winner.mu, winner.sigma)
    assert ratings["0xloser"] == Rating(loser.mu, loser.sigma)


def test_equal_scores_from_equal_priors_give_equal_ratings() -> None:
    ratings = update_ratings({}, {"0xa": 0.5, "0xb": 0.5, "0xc": 0.1})

    assert ratings["0xa"] == ratings["0xb"]
    assert ratings["0xa"].mu > ratings["0xc"].mu


def test_absent_trainers_keep_their_rating_and_newcomers_start_at_the_default() -> None:
    prior = {"0xold": Rating(30.0, 2.0), "0xabsent": Rating(10.0, 3.0)}
    prior_copy = dict(prior)

    ratings = update_ratings(prior, {"0xold": 0.1, "0xnew": 0.2})

    assert ratings["0xabsent"] == Rating(10.0, 3.0)
    assert ratings["0xnew"].mu > 25.0 and ratings["0xold"].mu < 30.0
    assert prior == prior_copy


def test_update_ratings_is_deterministic_whatever_the_mapping_order() -> None:
    scores = {"0xc": 0.2, "0xa": 0.9, "0xb": 0.2}

    first = update_ratings({}, scores)
    second = update_ratings({}, dict(reversed(list(scores.items()))))

    assert first == second


def test_a_lone_participant_is_not_rated() -> None:
    assert update_ratings({}, {"0xa": 1.0}, OFF) == {"0xa": Rating()}
    assert update_ratings({"0xa": Rating(20.0, 1.0)}, {"0xa": 1.0}, OFF) == {"0xa": Rating(20.0, 1.0)}
    assert update_ratings({}, {"0xa": 1.0}) == {"0xa": Rating(played=1, good=1)}  # only the record moves


def test_ordinal_weight_is_one_half_for_a_newcomer_and_grows_with_the_ordinal() -> None:
    ordinal = RatingConfig(weight="ordinal", reliability_power=0.0)
    weights = [rating_weight(Rating(mu, 1.0), ordinal) for mu in (-10.0, 0.0, 3.0, 10.0, 40.0)]

    assert rating_weight(Rating(), ordinal) == pytest.approx(0.5)
    assert weights == sorted(weights) and weights[0] > 0.0 and weights[-1] < 1.0 and weights[0] < weights[-1]


def test_confidence_weight_ignores_mu_and_grows_as_uncertainty_shrinks() -> None:
    by_mu = {rating_weight(Rating(mu, 4.0), OFF) for mu in (-10.0, 0.0, 25.0, 40.0)}
    by_sigma = [rating_weight(Rating(10.0, sigma), OFF) for sigma in (25.0 / 3.0, 6.0, 3.0, 1.0)]

    assert rating_weight(Rating(), OFF) == pytest.approx(0.5)
    assert len(by_mu) == 1  # a trainer ranked last every round keeps the weight of one ranked first
    assert by_sigma == sorted(by_sigma) and by_sigma[0] == pytest.approx(0.5) and by_sigma[-1] < 1.0


def test_final_score_is_gate_times_positive_score_times_weight() -> None:
    newcomer = Rating()  # weight 1/2
    strong = Rating(mu=25.0 / 6.0 * math.log(3.0) + 3.0, sigma=1.0)  # ordinal = scale * ln 3: weight 3/4

    scores = final_scores(
        [True, True, False, True, True],
        [0.2, 0.2, 0.9, -0.4, math.nan],
        [newcomer, strong, strong, strong, strong],
        RatingConfig(weight="ordinal", reliability_power=0.0),
    )

    np.testing.assert_allclose(scores, [0.1, 0.15, 0.0, 0.0, 0.0])


def test_final_scores_reject_misaligned_inputs_and_infinite_scores() -> None:
    with pytest.raises(RatingError):
        final_scores([True], [0.1, 0.2], [Rating(), Rating()])
    with pytest.raises(RatingError):
        final_scores([True], [math.inf], [Rating()])


def test_to_fixed_rounds_x_times_1e6() -> None:
    assert to_fixed(25.0) == 25_000_000
    assert to_fixed(8.333333333333334) == 8_333_333
    assert to_fixed(-0.0000016) == -2
    assert from_fixed(to_fixed(0.123456)) == 0.123456
    with pytest.raises(RatingError):
        to_fixed(math.nan)


def test_custom_rating_config_changes_the_starting_rating() -> None:
    ratings = update_ratings({}, {"0xa": 1.0}, RatingConfig(mu=10.0, sigma=2.0, reliability_power=0.0))

    assert ratings["0xa"] == Rating(10.0, 2.0)


def test_reliability_is_the_beta_posterior_mean_of_good_rounds_raised_to_the_power() -> None:
    cube = RatingConfig(reliability_power=3.0)

    assert reliability(Rating(), cube) == 0.125  # fresh: (1/2)^3
    assert reliability(Rating(played=8, good=8), cube) == pytest.approx((9 / 10) ** 3)
    assert reliability(Rating(played=8, good=2), cube) == pytest.approx((3 / 10) ** 3)
    assert reliability(Rating(played=8, good=2), OFF) == 1.0
    with pytest.raises(RatingError):
        reliability(Rating(played=1, good=2), cube)
    with pytest.raises(RatingError):
        RatingConfig(reliability_power=-1.0)


def test_the_weight_of_a_record_of_rejections_falls_and_a_fresh_account_never_beats_a_clean_record() -> None:
    config = RatingConfig(reliability_power=3.0)
    honest: dict[str, Rating] = {}
    for _ in range(6):  # 0xh accepted every round; 0xn accepted in round 1 only, rejected (-inf) afterwards
        first = not honest
        honest = update_ratings(honest, {"0xh": 0.1, "0xn": 0.1 if first else -math.inf, "0xz": 0.0},
                                config, good={"0xh", "0xz"} | ({"0xn"} if first else set()))
    fresh = update_ratings({}, {"0xf": 0.1, "0xg": 0.0}, config)["0xf"]

    assert (honest["0xh"].played, honest["0xh"].good) == (6, 6)
    assert (honest["0xn"].played, honest["0xn"].good) == (6, 1)
    assert honest["0xn"].mu < honest["0xh"].mu
    w_honest, w_noisy = rating_weight(honest["0xh"], config), rating_weight(honest["0xn"], config)
    assert reliability(honest["0xn"], config) / reliability(honest["0xh"], config) == pytest.approx((2 / 7) ** 3)
    assert w_noisy / w_honest == pytest.approx((2 / 7) ** 3)  # the record weight: the reliability alone
    assert rating_weight(fresh, config) < w_honest
    confidence = RatingConfig(weight="confidence", reliability_power=3.0)
    w_confident = rating_weight(honest["0xn"], confidence) / rating_weight(honest["0xh"], confidence)
    assert w_confident < 0.03  # (2/7)^3 = 0.023, and the confidence parts differ by under 10 %


def _ranked_rounds(config: RatingConfig, rounds: int) -> dict[str, Rating]:
    """`rounds` rounds of four accounts that finish in the same order every round, all accepted."""
    ratings: dict[str, Rating] = {}
    for _ in range(rounds):
        ratings = update_ratings(ratings, {"0xfirst": 0.4, "0xsecond": 0.3, "0xthird": 0.2, "0xlast": 0.1}, config)
    return ratings


def test_plackett_luce_shrinks_sigma_faster_for_an_account_that_ranks_low() -> None:
    # Why pay does not read the rating: ranked last every round, an account ends with less uncertainty, so a
    # higher confidence weight, than one ranked first; splitting an account in two lowers both halves' ranks.
    ratings = _ranked_rounds(RatingConfig(weight="confidence"), 15)
    confidence = RatingConfig(weight="confidence")

    assert ratings["0xlast"].sigma < ratings["0xfirst"].sigma
    assert rating_weight(ratings["0xlast"], confidence) > 1.1 * rating_weight(ratings["0xfirst"], confidence)


def test_record_weight_depends_on_the_record_alone_not_on_rank_or_rating() -> None:
    config = RatingConfig()
    ratings = _ranked_rounds(config, 15)
    weights = {rating_weight(rating, config) for rating in ratings.values()}

    assert config.weight == "record"  # the default for new tasks
    assert weights == {(16 / 17) ** 3}  # 15 rounds played, 15 accepted, whatever the ranks
    assert rating_weight(Rating(), config) == (1 / 2) ** 3  # a newcomer
    assert rating_weight(Rating(mu=40.0, sigma=1.0, played=4, good=3), config) == (4 / 6) ** 3
    assert rating_weight(Rating(mu=-40.0, sigma=8.0, played=4, good=3), config) == (4 / 6) ** 3
    assert rating_weight(Rating(mu=3.0, sigma=2.0), RatingConfig(reliability_power=0.0)) == 1.0  # value alone
