"""The default loss fits the data: KL for counted electrons, Frobenius otherwise."""

import dask.array as da
import numpy as np
import pytest

import hyperspy_hnmf  # noqa: F401  (registers the algorithm)
from hyperspy_hnmf import HNMF
from hyperspy_hnmf._checks import looks_like_counts, resolve_loss
from hyperspy_hnmf.data import get_ground_truth, score_signal, synthetic_4dstem


@pytest.fixture(scope="module")
def counts():
    rng = np.random.default_rng(0)
    return rng.poisson(rng.random((60, 3)) @ rng.random((3, 40)) * 6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.float32, np.float64])
def test_integer_counts_get_the_kl_loss(counts, dtype):
    model = HNMF(3, random_state=0).fit(counts.astype(dtype))
    assert model.loss_ == "kullback-leibler"
    assert model._solver == "mu"


def test_non_integer_data_get_the_frobenius_loss(counts):
    model = HNMF(3, random_state=0).fit(counts + 0.25)
    assert model.loss_ == "frobenius" and model._solver == "hals"


def test_a_frobenius_only_solver_keeps_the_frobenius_loss(counts):
    assert HNMF(3, solver="hals", random_state=0).fit(counts).loss_ == "frobenius"
    assert HNMF(3, loss="kl", random_state=0).fit(counts + 0.25).loss_ == "kullback-leibler"


def test_lazy_counts_are_judged_by_dtype_or_first_chunk(counts):
    assert looks_like_counts(da.from_array(counts.astype(np.uint16), chunks=(20, -1)))
    floats = counts.astype(np.float32)
    floats[30:] += 0.5  # only later chunks are not integers: the first chunk decides
    assert looks_like_counts(da.from_array(floats, chunks=(20, -1)))
    assert not looks_like_counts(da.from_array(floats[30:], chunks=(20, -1)))
    model = HNMF(3, random_state=0).fit(da.from_array(counts.astype(np.uint16), chunks=(20, -1)))
    assert model.loss_ == "kullback-leibler"


def test_resolve_loss_names_and_errors():
    assert resolve_loss("auto") == 2.0  # no data: Frobenius
    assert resolve_loss("KL") == 1.0 and resolve_loss(0.5) == 0.5
    with pytest.raises(ValueError, match="Valid losses are 'auto', 'frobenius'"):
        resolve_loss("poisson")


def test_default_decomposition_of_counted_4dstem_is_right_and_says_why(capsys):
    s = synthetic_4dstem(scan_shape=(32, 32), detector_shape=(32, 32), random_state=0)
    k = get_ground_truth(s).n_components
    s.decomposition(algorithm="hnmf", output_dimension=k, random_state=0, print_info=True)
    assert "loss=kullback-leibler (beta=1, chosen by loss='auto': the data are integer counts)" \
        in capsys.readouterr().out
    info = s.learning_results.hnmf
    assert info["loss"] == "kullback-leibler" and info["loss_requested"] == "auto"
    default_score = score_signal(s).score
    s.decomposition(algorithm="hnmf", output_dimension=k, random_state=0, loss="frobenius",
                    print_info=False)
    frobenius_score = score_signal(s).score
    # The old default (Frobenius on raw counts) was far worse on the same data.
    assert default_score > 0.9 and default_score > frobenius_score + 0.2, (
        default_score, frobenius_score)
