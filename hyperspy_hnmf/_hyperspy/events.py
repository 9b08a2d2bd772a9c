"""Electron event lists as lazy HyperSpy signals with sparse chunks.

:func:`events_to_signal` bins the events with
:func:`hyperspy_hnmf.events.events_to_array` (memory ∝ events) and wraps
them as a lazy 4D ``Signal2D`` (scan y, scan x | detector y, detector x)
whose dask chunks are pydata ``sparse.COO`` arrays, the layout HyperSpy and
pyxem use for sparse lazy data. Only the compact CSR blocks are held; a
chunk's COO form is made when the chunk is read, so
``s.decomposition(algorithm="hnmf")`` reads the counts chunk by chunk, one
pass per iteration, and never densifies them.
"""

import uuid

import numpy as np

from ..events import (_check_shape, csr_row_blocks, events_to_array, grid_coordinates,
                      row_chunks)

__all__ = ["events_to_signal"]


def _coo_chunk(block, lines, scan_width, detector_shape):
    """A CSR block of ``lines`` scan lines as a 4D ``sparse.COO`` (no dense copy)."""
    import sparse

    coords = grid_coordinates(block.indptr, block.indices, scan_width, detector_shape[1])
    return sparse.COO(coords, block.data, shape=(lines, scan_width) + tuple(detector_shape),
                      has_duplicates=False, sorted=True)


def _check_scale(name, value):
    if value is None:
        return
    try:
        ok = np.isfinite(float(value)) and float(value) != 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a finite nonzero number (the size of one step), got "
                         f"{value!r}.")


def _check_offset(offset):
    """``detector_offset``: two finite numbers (detector y, detector x)."""
    try:
        values = tuple(float(v) for v in offset)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 2 or not all(np.isfinite(values)):
        raise ValueError(f"detector_offset must be two finite numbers, the calibrated position "
                         f"of detector pixel (0, 0) as (y, x), got {offset!r}.")
    return values


def _axis(name, size, scale, units, offset, navigate):
    return {"name": name, "size": size, "scale": 1.0 if scale is None else float(scale),
            "units": units, "offset": float(offset), "navigate": navigate}


def events_to_signal(events, scan_shape, detector_shape, *, time_window=None, chunks=None,
                     scan_scale=None, scan_units=None, detector_scale=None,
                     detector_units=None, detector_offset=None, title="Electron events"):
    """A lazy 4D ``Signal2D`` of binned electron events, with sparse chunks.

    Parameters
    ----------
    events : dict of 1D arrays, structured array or 2D array (n_events, 4 or 5)
        Columns scan y, scan x, detector y, detector x (integer pixels)
        [, time]; see :func:`hyperspy_hnmf.events.events_to_array`.
    scan_shape, detector_shape : (int, int)
        Probe positions and detector pixels (rows, columns).
    time_window : (float, float), optional
        Keep events with ``start <= time < stop`` only.
    chunks : int, optional
        Scan lines per dask chunk; default: about 2**22 events per chunk.
    scan_scale, detector_scale : float, optional
        Size of one probe step / one detector pixel (default 1).
    scan_units, detector_units : str, optional
        E.g. ``"nm"`` and ``"1/nm"`` (or ``"mrad"``).
    detector_offset : (float, float), optional
        Calibrated position of detector pixel (0, 0) (default: the centre of
        the detector is 0).
    title : str

    Returns
    -------
    hyperspy.signals.LazySignal2D
        Navigation (scan x, scan y), signal (detector x, detector y); the
        data are a dask array of ``sparse.COO`` chunks of float32 counts, so
        ``s.decomposition(algorithm="hnmf", loss="kl", output_dimension=k)``
        works without densifying. Many other HyperSpy operations expect
        dense chunks: ``s.inav[y, x].compute()`` gives one sparse pattern;
        for a dense view of a small part use ``.data.map_blocks(lambda b:
        b.todense())``.

    Raises
    ------
    ValueError
        As :func:`hyperspy_hnmf.events.events_to_array`, and for a scale
        that is not a finite nonzero number or a ``detector_offset`` that
        is not two finite numbers, before the events are binned.
    ImportError
        Without the optional package ``sparse`` (``pip install
        hyperspy_hnmf[events]``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> events = np.stack([rng.integers(0, 4, 500), rng.integers(0, 6, 500),
    ...                    rng.integers(0, 8, 500), rng.integers(0, 8, 500)], axis=1)
    >>> s = events_to_signal(events, (4, 6), (8, 8), scan_scale=2.0, scan_units="nm")
    >>> s.data.shape, type(s.data._meta).__name__, s.axes_manager[0].units
    ((4, 6, 8, 8), 'COO', 'nm')
    >>> float(s.data.sum().compute())
    500.0
    """
    try:
        import sparse  # noqa: F401
    except ImportError:
        raise ImportError(
            "events_to_signal needs the package 'sparse' (pydata sparse) for HyperSpy's lazy "
            "sparse data: pip install 'hyperspy_hnmf[events]' (or pip install sparse). "
            "hyperspy_hnmf.events.events_to_array works without it.") from None
    import dask.array as da
    import hyperspy.api as hs
    import sparse

    # Everything is checked before the events are binned.
    scan_shape = _check_shape("scan_shape", scan_shape)
    detector_shape = _check_shape("detector_shape", detector_shape)
    for name, value in (("scan_scale", scan_scale), ("detector_scale", detector_scale)):
        _check_scale(name, value)
    if detector_offset is not None:
        detector_offset = _check_offset(detector_offset)
    if chunks is not None:
        row_chunks(scan_shape[0], chunks)
    matrix = events_to_array(events, scan_shape, detector_shape, time_window=time_window)
    if chunks is None:
        per_line = max(1.0, matrix.nnz / scan_shape[0])
        chunks = max(1, int(2**22 // per_line))
    lines = row_chunks(scan_shape[0], chunks)
    blocks = csr_row_blocks(matrix, [n * scan_shape[1] for n in lines])
    name = "events-" + uuid.uuid4().hex
    graph = {(name, i, 0, 0, 0): (_coo_chunk, block, n, scan_shape[1], detector_shape)
             for i, (block, n) in enumerate(zip(blocks, lines))}
    meta = sparse.COO.from_numpy(np.zeros((0,) * 4, dtype=matrix.dtype))
    data = da.Array(graph, name, chunks=(tuple(lines), (scan_shape[1],)) +
                    tuple((n,) for n in detector_shape), dtype=matrix.dtype, meta=meta)
    if detector_offset is None:
        step = 1.0 if detector_scale is None else float(detector_scale)
        detector_offset = tuple(-step * (n // 2) for n in detector_shape)
    axes = [_axis("scan y", scan_shape[0], scan_scale, scan_units, 0.0, True),
            _axis("scan x", scan_shape[1], scan_scale, scan_units, 0.0, True),
            _axis("detector y", detector_shape[0], detector_scale, detector_units,
                  detector_offset[0], False),
            _axis("detector x", detector_shape[1], detector_scale, detector_units,
                  detector_offset[1], False)]
    signal = hs.signals.Signal2D(data, axes=axes).as_lazy()
    signal.metadata.General.title = title
    signal.metadata.set_item("Signal.quantity", "Counts (electrons)")
    signal.metadata.set_item("Acquisition_instrument.events.n_events", int(matrix.data.sum(dtype=np.float64)))
    if time_window is not None:
        signal.metadata.set_item("Acquisition_instrument.events.time_window",
                                 [float(t) for t in time_window])
    return signal
