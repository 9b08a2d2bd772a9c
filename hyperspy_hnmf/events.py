"""Electron event lists (event-driven detectors) as sparse count matrices.

A Timepix3-class detector reports electrons, not frames: one event per
electron, with the probe position (scan y, scan x), the detector pixel
(detector y, detector x) and often a time stamp. A 4D scan at a few counts
per pattern is more than 99 % zeros, so the events are binned straight into
a sparse matrix (probe positions × detector pixels; counts summed over
events that hit the same pixel at the same position), never into frames.
Memory and time are proportional to the number of events.

The matrix goes into every fit of the package unchanged
(:class:`~hyperspy_hnmf.HNMF`, :func:`~hyperspy_hnmf.solvers.nmf`, the
hierarchies): the KL and Frobenius products read its nonzeros only.
:func:`hyperspy_hnmf.events_to_signal` makes a HyperSpy signal of it.
"""

import uuid

import numba
import numpy as np
import scipy.sparse as sp

__all__ = ["EVENT_COLUMNS", "events_to_array"]

#: Names of the event columns, in the order of a 2D event array.
EVENT_COLUMNS = ("scan_y", "scan_x", "detector_y", "detector_x", "time")


def _columns(events):
    """The event columns as a dict of 1D arrays (views where possible)."""
    if isinstance(events, dict):
        missing = [name for name in EVENT_COLUMNS[:4] if name not in events]
        if missing:
            raise ValueError(
                f"The event dict lacks the column(s) {missing}; it needs {list(EVENT_COLUMNS[:4])} "
                "and optionally 'time'.")
        columns = {name: np.asarray(events[name]) for name in EVENT_COLUMNS if name in events}
    else:
        events = np.asarray(events)
        if events.dtype.names is not None:
            missing = [name for name in EVENT_COLUMNS[:4] if name not in events.dtype.names]
            if missing:
                raise ValueError(
                    f"The structured event array lacks the field(s) {missing}; it has "
                    f"{list(events.dtype.names)} and needs {list(EVENT_COLUMNS[:4])} "
                    "(and optionally 'time').")
            columns = {name: events[name] for name in EVENT_COLUMNS if name in events.dtype.names}
        elif events.ndim == 2 and events.shape[1] in (4, 5):
            columns = {name: events[:, c] for c, name in enumerate(EVENT_COLUMNS[:events.shape[1]])}
        else:
            raise ValueError(
                f"Events must be a dict of columns, a structured array or a 2D array with 4 or 5 "
                f"columns (scan y, scan x, detector y, detector x[, time]); got an array of shape "
                f"{events.shape}.")
    lengths = {name: column.shape for name, column in columns.items()}
    if any(len(shape) != 1 for shape in lengths.values()) or len(set(lengths.values())) != 1:
        raise ValueError(f"Every event column must be 1D and of the same length, got {lengths}.")
    return columns


def _positions(columns, scan_shape, detector_shape):
    """The four position columns as integers, checked against the shapes (nothing copied for ints)."""
    limits = dict(zip(EVENT_COLUMNS[:4], tuple(scan_shape) + tuple(detector_shape)))
    what = {"scan_y": "scan height", "scan_x": "scan width", "detector_y": "detector height",
            "detector_x": "detector width"}
    out = []
    for name, size in limits.items():
        column = columns[name]
        if column.dtype.kind == "f":
            if column.size and not np.all(np.isfinite(column)):
                bad = int(np.count_nonzero(~np.isfinite(column)))
                raise ValueError(f"Event column '{name}' holds {bad} NaN or infinite position(s); "
                                 "positions must be pixel indices (integers): drop those events "
                                 "first.")
            if column.size and not np.all(column == np.floor(column)):
                raise ValueError(f"Event column '{name}' holds non-integer positions; positions "
                                 "must be pixel indices (integers).")
            column = column.astype(np.int64)
        elif column.dtype.kind not in "ui":
            raise ValueError(f"Event column '{name}' has dtype {column.dtype}; positions must be "
                             "integer pixel indices.")
        if column.size:
            low, high = int(column.min()), int(column.max())
            if low < 0 or high >= size:
                bad = int(np.count_nonzero((column < 0) | (column >= size)))
                raise ValueError(
                    f"{bad} event(s) lie outside the {what[name]} {size}: column '{name}' spans "
                    f"{low} to {high}, allowed 0 to {size - 1}. Check scan_shape={tuple(scan_shape)}"
                    f", detector_shape={tuple(detector_shape)} and the column order (scan y, scan "
                    "x, detector y, detector x), or drop those events first.")
        out.append(column)
    return out


def _check_shape(name, shape):
    given = np.atleast_1d(shape)
    if (given.ndim != 1 or given.size != 2 or given.dtype.kind not in "uif"
            or not np.all(given == np.round(given)) or given.min() < 1):
        raise ValueError(f"{name} must be two positive integers (rows, columns), got "
                         f"{tuple(given.tolist()) if given.ndim == 1 else shape}.")
    return tuple(int(n) for n in given)


def _check_dtype(dtype):
    """The type of the counts: a real floating-point or an integer type."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64) and dtype.kind not in "ui":
        raise ValueError(f"dtype must be float32, float64 or an integer type for counts, got "
                         f"{dtype}.")
    return dtype


def _check_window(time_window):
    """``(start, stop)`` as floats, ``start < stop``."""
    try:
        given = tuple(time_window)
        start, stop = (float(t) for t in given)
    except (TypeError, ValueError):
        raise ValueError(f"time_window must be two numbers (start, stop), got "
                         f"{time_window!r}.") from None
    if not given[0] < given[1]:
        raise ValueError(f"time_window must be (start, stop) with start < stop, got {given}.")
    if not start < stop:
        raise ValueError(f"time_window {given} is compared in float64, where its bounds are "
                         "equal (time stamps beyond 2**53): subtract an offset from the 'time' "
                         "column and the window first.")
    return start, stop


@numba.njit(cache=True, nogil=True)
def _count_rows(sy, sx, time, t0, t1, use_time, nx, n_rows):
    counts = np.zeros(n_rows + 1, dtype=np.int64)
    for e in range(sy.size):
        if use_time and not (t0 <= time[e] < t1):
            continue
        counts[np.int64(sy[e]) * nx + sx[e] + 1] += 1
    return counts


@numba.njit(cache=True, nogil=True)
def _fill_rows(sy, sx, dy, dx, time, t0, t1, use_time, nx, kx, indptr, columns):
    position = indptr[:-1].copy()
    for e in range(sy.size):
        if use_time and not (t0 <= time[e] < t1):
            continue
        row = np.int64(sy[e]) * nx + sx[e]
        columns[position[row]] = np.int64(dy[e]) * kx + dx[e]
        position[row] += 1


@numba.njit(parallel=True, cache=True, nogil=True)
def _merge_rows(indptr, columns, counts):
    """Sort each row's columns and merge duplicates in place; the number kept per row."""
    n = indptr.size - 1
    kept = np.zeros(n + 1, dtype=np.int64)
    for i in numba.prange(n):
        first, last = indptr[i], indptr[i + 1]
        if last == first:
            continue
        columns[first:last] = np.sort(columns[first:last])
        write = first
        counts[write] = 1
        for p in range(first + 1, last):
            if columns[p] == columns[write]:
                counts[write] += 1
            else:
                write += 1
                columns[write] = columns[p]
                counts[write] = 1
        kept[i + 1] = write - first + 1
    return kept


@numba.njit(parallel=True, cache=True, nogil=True)
def _compact(indptr, columns, counts, new_indptr, new_columns, new_counts):
    for i in numba.prange(indptr.size - 1):
        source = indptr[i]
        for p in range(new_indptr[i], new_indptr[i + 1]):
            new_columns[p] = columns[source]
            new_counts[p] = counts[source]
            source += 1


@numba.njit(parallel=True, cache=True, nogil=True)
def grid_coordinates(indptr, indices, scan_width, detector_width):
    """4D coordinates (scan y, scan x, detector y, detector x) of the nonzeros of CSR rows.

    Rows are probe positions ``y * scan_width + x``; columns detector pixels
    ``v * detector_width + u``. Returns an int64 array of shape (4, nnz) in
    the CSR order (row-major sorted when the CSR indices are sorted).
    """
    out = np.empty((4, indices.size), dtype=np.int64)
    for i in numba.prange(indptr.size - 1):
        y, x = divmod(i, scan_width)
        for p in range(indptr[i], indptr[i + 1]):
            out[0, p] = y
            out[1, p] = x
            v, u = divmod(np.int64(indices[p]), detector_width)
            out[2, p] = v
            out[3, p] = u
    return out


def _binned(columns, scan_shape, detector_shape, time_window, dtype):
    """CSR arrays ``(indptr, indices, data)`` of the binned events."""
    sy, sx, dy, dx = _positions(columns, scan_shape, detector_shape)
    n_rows = scan_shape[0] * scan_shape[1]
    n_columns = detector_shape[0] * detector_shape[1]
    use_time = time_window is not None
    if use_time:
        if "time" not in columns:
            raise ValueError("time_window needs a 'time' column (the fifth column of a 2D event "
                             "array, or the field/key 'time').")
        t0, t1 = _check_window(time_window)
        time = np.asarray(columns["time"])
        if time.dtype.kind not in "uif":
            raise ValueError(f"The 'time' column has dtype {time.dtype}; time stamps must be "
                             "numbers.")
    else:
        t0 = t1 = 0.0
        time = np.zeros(1)
    indptr = np.cumsum(_count_rows(sy, sx, time, t0, t1, use_time, scan_shape[1], n_rows))
    index_type = np.int32 if n_columns < 2**31 else np.int64
    indices = np.empty(int(indptr[-1]), dtype=index_type)
    _fill_rows(sy, sx, dy, dx, time, t0, t1, use_time, scan_shape[1], detector_shape[1],
               indptr, indices)
    # Integer counts are summed in int64 where one probe position has more
    # events than the requested type holds, then checked: never wrapped.
    count_type = dtype
    if dtype.kind in "ui" and indices.size and np.diff(indptr).max() > np.iinfo(dtype).max:
        count_type = np.dtype(np.int64)
    data = np.empty(indices.size, dtype=count_type)
    kept = np.cumsum(_merge_rows(indptr, indices, data))
    if kept[-1] == indices.size:  # no duplicates: the arrays are already compact
        return indptr, indices, _as_counts(data, dtype, indptr, scan_shape, detector_shape)
    new_indices = np.empty(int(kept[-1]), dtype=index_type)
    new_data = np.empty(new_indices.size, dtype=count_type)
    _compact(indptr, indices, data, kept, new_indices, new_data)
    return kept, new_indices, _as_counts(new_data, dtype, kept, scan_shape, detector_shape)


def _as_counts(data, dtype, indptr, scan_shape, detector_shape):
    """The summed counts in ``dtype``; ValueError if the largest does not fit."""
    if data.dtype == dtype:
        return data
    largest = int(np.argmax(data))
    if data[largest] > np.iinfo(dtype).max:
        row = int(np.searchsorted(indptr, largest, side="right")) - 1
        raise ValueError(
            f"{int(data[largest])} events hit one detector pixel at probe position "
            f"{divmod(row, scan_shape[1])} (scan y, scan x), more than dtype {dtype} holds "
            f"({np.iinfo(dtype).max}). Use a wider type, e.g. dtype=np.uint32 or np.float32.")
    return data.astype(dtype)


def row_chunks(n_scan_rows, chunks):
    """Scan lines per chunk: ``chunks`` lines each, the last one shorter."""
    if isinstance(chunks, (bool, np.bool_)) or not float(chunks).is_integer():
        raise ValueError(f"chunks must be a positive number of scan lines, got {chunks}.")
    chunks = int(chunks)
    if chunks < 1:
        raise ValueError(f"chunks must be a positive number of scan lines, got {chunks}.")
    return [min(chunks, n_scan_rows - start) for start in range(0, n_scan_rows, chunks)]


def csr_row_blocks(matrix, rows):
    """Views of consecutive row blocks of a CSR matrix (``rows``: block sizes); no copy of the data."""
    blocks, start = [], 0
    for size in rows:
        first, last = matrix.indptr[start], matrix.indptr[start + size]
        indptr = matrix.indptr[start:start + size + 1] - first
        blocks.append(sp.csr_matrix((matrix.data[first:last], matrix.indices[first:last], indptr),
                                    shape=(size, matrix.shape[1]), copy=False))
        start += size
    return blocks


def events_to_array(events, scan_shape, detector_shape, *, time_window=None, chunks=None,
                    dtype=np.float32):
    """Bin an electron event list into a sparse count matrix (probe positions × detector pixels).

    Parameters
    ----------
    events : dict of 1D arrays, structured array or 2D array (n_events, 4 or 5)
        Columns ``scan_y``, ``scan_x``, ``detector_y``, ``detector_x`` (integer pixel
        indices) and optionally ``time``: dict keys or field names, or the
        columns of a 2D array in that order.
    scan_shape : (int, int)
        Probe positions (rows, columns) of the scan.
    detector_shape : (int, int)
        Detector pixels (rows, columns).
    time_window : (float, float), optional
        Keep the events with ``start <= time < stop`` only (a dose or frame
        selection); needs the ``time`` column.
    chunks : int, optional
        ``None``: one scipy CSR matrix. An integer: a dask array whose chunks
        are CSR matrices of ``chunks`` scan lines each (``chunks * scan_shape[1]``
        rows), read chunk by chunk by the fits (one pass per iteration) and
        never densified.
    dtype : numpy dtype, default float32
        Type of the counts: float32 (exact up to 2**24 per voxel, and what
        the fits compute in), float64 or an integer type (e.g. uint16;
        counts never wrap around: a voxel with more events than the type
        holds raises a ValueError).

    Returns
    -------
    scipy.sparse.csr_matrix or dask.array.Array, shape (scan pixels, detector pixels)
        Row ``y * scan_shape[1] + x`` is probe position ``(y, x)``; column
        ``v * detector_shape[1] + u`` is detector pixel ``(v, u)``; counts of
        events hitting the same pixel at the same position are summed.

    Raises
    ------
    ValueError
        Missing columns, non-integer or non-finite positions, events outside
        the scan or detector (with the column, its range and the allowed
        range), a bad ``time_window``, ``chunks`` or ``dtype``, before
        anything is built; a voxel whose count an integer ``dtype`` cannot
        hold (naming the probe position).

    Notes
    -----
    Memory is proportional to the number of events (about 8 bytes per
    distinct (position, pixel) pair, plus the same again while binning);
    two counting passes over the events (numba) sort them by probe position
    without a global sort.

    Examples
    --------
    >>> events = {"scan_y": [0, 0, 1], "scan_x": [1, 1, 0],
    ...           "detector_y": [2, 2, 0], "detector_x": [3, 3, 1]}
    >>> X = events_to_array(events, (2, 2), (4, 4))
    >>> X.shape, X.nnz, float(X[1, 2 * 4 + 3]), float(X[2, 1])
    ((4, 16), 2, 2.0, 1.0)
    >>> events_to_array(events, (2, 2), (4, 4), chunks=1).chunks
    ((2, 2), (16,))
    """
    scan_shape = _check_shape("scan_shape", scan_shape)
    detector_shape = _check_shape("detector_shape", detector_shape)
    columns = _columns(events)
    dtype = _check_dtype(dtype)
    if chunks is not None:
        row_chunks(scan_shape[0], chunks)  # checked before the binning
    indptr, indices, data = _binned(columns, scan_shape, detector_shape, time_window, dtype)
    shape = (scan_shape[0] * scan_shape[1], detector_shape[0] * detector_shape[1])
    matrix = sp.csr_matrix((data, indices, indptr), shape=shape, copy=False)
    if chunks is None:
        return matrix
    import dask.array as da

    rows = [lines * scan_shape[1] for lines in row_chunks(scan_shape[0], chunks)]
    name = "events-" + uuid.uuid4().hex
    graph = {(name, i, 0): block for i, block in enumerate(csr_row_blocks(matrix, rows))}
    return da.Array(graph, name, chunks=(tuple(rows), (shape[1],)), dtype=matrix.dtype,
                    meta=sp.csr_matrix((0, 0), dtype=matrix.dtype))
