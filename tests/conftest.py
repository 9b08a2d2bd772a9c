"""Shared test helpers."""

import contextlib
import warnings

import pytest


@pytest.fixture
def local_cluster():
    """A context manager starting a ``dask.distributed`` LocalCluster and its client.

    ``with local_cluster(n_workers, threads_per_worker, processes) as client:``
    makes the client dask's scheduler inside the block; both are closed on
    leaving it. Skips the test when ``distributed`` is not installed.
    """
    distributed = pytest.importorskip("distributed")

    @contextlib.contextmanager
    def start(n_workers=2, threads_per_worker=1, processes=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster = distributed.LocalCluster(n_workers=n_workers,
                                               threads_per_worker=threads_per_worker,
                                               processes=processes, dashboard_address=None)
            client = distributed.Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()

    return start
