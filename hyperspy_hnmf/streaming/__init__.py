"""NMF of data larger than memory: dask arrays read chunk by chunk.

The algorithms live in :mod:`hyperspy_hnmf.solvers` and the data interface in
:mod:`hyperspy_hnmf.matrix`; this module gathers the names that concern data
read in passes:

- :func:`streaming_nmf`: exact NMF (Frobenius or Kullback-Leibler), one pass
  over the data per iteration, the same iterates as the in-memory solver;
- :func:`randomized_nmf`: Frobenius NMF of a randomized compression of the
  data (a few passes), refined by exact passes;
- :class:`StreamedMatrix`: the data as a row-chunked dask array, with the
  one-pass products the solvers need.

Only the maps and components (small) are held in memory. The same code runs
with dask's local schedulers and under a ``dask.distributed`` client.
"""

from ..matrix import StreamedMatrix, as_row_chunks, compute_dtype
from ..solvers import randomized_nmf, streaming_nmf

# StreamedMatrix, as_row_chunks and compute_dtype stay importable from here; they are
# documented where they live, in hyperspy_hnmf.matrix.
__all__ = ["randomized_nmf", "streaming_nmf"]
